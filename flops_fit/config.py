"""Configuration: load, coerce FLOP numbers, validate against the schema and fill defaults.

The schema (``flops_fit/schemas/config.schema.yaml``; the workflow's
``workflow/schemas/config.schema.yaml`` is a link to it) is the single place where every key is
typed, described and defaulted. The workflow and :func:`flops_fit.find_optimal` both go through
:func:`prepare_config`, so a config means the same thing in both.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from flops_fit.errors import ConfigError

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "config.schema.yaml"


#: config sections no sweep result depends on: which recommended runs to verify, and how jobs start
#: (the training worker). The validate rule leaves them out of its rerun trigger and of the validated
#: config, so changing them never re-validates, re-plans, retrains or re-fits the sweep.
NOT_SWEEP_KEYS = ("verify", "worker")


#: ``training`` keys that say how a run executes, not what it computes (torch's CPU threads): left out
#: of the sweep config, so of the validate rule's and the train rule's rerun triggers
EXECUTION_TRAINING_KEYS = ("threads",)


def training_identity(training: dict) -> dict:
    """The ``training`` section without :data:`EXECUTION_TRAINING_KEYS`: the train rule's ``params.training``."""
    return {key: value for key, value in training.items() if key not in EXECUTION_TRAINING_KEYS}


def sweep_config(config: dict) -> dict:
    """``config`` without :data:`NOT_SWEEP_KEYS` and the execution keys of ``training``: what the sweep's
    results depend on."""
    swept = {key: value for key, value in config.items() if key not in NOT_SWEEP_KEYS}
    if isinstance(swept.get("training"), dict):
        swept["training"] = training_identity(swept["training"])
    return swept


def load_schema() -> dict:
    with open(SCHEMA_PATH) as fh:
        return yaml.safe_load(fh)


def _accepts_number(schema: dict) -> bool:
    """The key takes a number: typed number/integer, or an enum with numbers in it (``fit.degree``)."""
    types = schema.get("type")
    types = types if isinstance(types, list) else [types]
    numeric_choice = any(isinstance(v, int | float) and not isinstance(v, bool) for v in schema.get("enum", []))
    return "number" in types or "integer" in types or numeric_choice


def coerce_numbers(value: Any, schema: dict, path: str = "") -> Any:
    """Return ``value`` with numeric strings turned into numbers wherever the schema wants a number.

    YAML 1.1 (PyYAML) reads ``1e18`` as the *string* "1e18"; only ``1.0e+18`` is a float. Users write
    the former, so we convert it rather than reject it, and we name the key when a string is not a
    number at all, so no string is ever carried on as a budget.
    """
    if isinstance(value, dict):
        props = schema.get("properties", {})
        return {k: coerce_numbers(v, props.get(k, {}), f"{path}.{k}" if path else k) for k, v in value.items()}
    if isinstance(value, list):
        item_schema = schema.get("items", {})
        return [coerce_numbers(v, item_schema, f"{path}[{i}]") for i, v in enumerate(value)]
    if (
        isinstance(value, str)
        and _accepts_number(schema)
        and "string" not in str(schema.get("type"))
        and value not in schema.get("enum", [])  # a text choice of an enum, e.g. degree "auto"
    ):
        try:
            number = float(value)
        except ValueError:
            if "enum" in schema:
                return value  # not a number: the schema names the choices
            raise ConfigError(
                f"config key {path!r} must be a number, got the text {value!r}. "
                f"Write it as a number, e.g. 1.0e+18."
            ) from None
        return int(number) if number.is_integer() and "number" not in str(schema.get("type")) else number
    return value


def prepare_config(config: dict) -> dict:
    """Coerce numbers, validate with the JSON schema (``snakemake.utils.validate``) and fill defaults.

    Returns a new dict; raises :class:`ConfigError` with the offending key on failure.
    """
    from jsonschema import ValidationError
    from snakemake.utils import validate

    schema = load_schema()
    prepared = coerce_numbers(copy.deepcopy(config), schema)
    try:
        validate(prepared, str(SCHEMA_PATH), set_default=True)
    except ValidationError as exc:  # snakemake re-raises jsonschema's error type
        raise ConfigError(_describe(exc)) from None
    except Exception as exc:  # snakemake wraps the validation error in a WorkflowError
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ValidationError):
            raise ConfigError(_describe(cause)) from None
        raise ConfigError(f"invalid configuration: {exc}") from None
    return prepared


def _describe(exc: Any) -> str:
    key = ".".join(str(p) for p in exc.absolute_path) or "(top level)"
    message = exc.message
    if exc.validator == "not" and "description" in exc.schema:  # "should not be valid under {...}" hides the rule
        message = f"{exc.instance!r} is not accepted: {exc.schema['description'].rstrip('.')}"
    return (
        f"config key {key!r}: {message}. "
        f"See config/README.md (or flops_fit/schemas/config.schema.yaml) for what this key accepts."
    )


def load_config(path: str | Path) -> dict:
    """Read a YAML config file and :func:`prepare_config` it."""
    with open(path) as fh:
        raw = yaml.safe_load(fh) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(raw).__name__}.")
    return prepare_config(raw)
