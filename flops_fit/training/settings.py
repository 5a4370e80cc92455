"""The ``training:`` settings with the schema's defaults, for callers of ``run_training`` outside the workflow.

The config schema is the one place defaults live; reading them from it keeps the API, the benchmark
and the tests on the same values as the workflow.
"""

from __future__ import annotations

import copy
from typing import Any

from flops_fit.config import load_schema


def _defaults(schema: dict) -> Any:
    if "properties" in schema:
        return {key: _defaults(sub) for key, sub in schema["properties"].items()}
    return copy.deepcopy(schema.get("default"))


def default_settings(**overrides: Any) -> dict:
    """The schema's ``training`` defaults; a dict override updates a section (``checkpoint={"keep": True}``)."""
    settings = _defaults(load_schema()["properties"]["training"])
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(settings.get(key), dict):
            settings[key] = {**settings[key], **value}
        else:
            settings[key] = value
    return settings
