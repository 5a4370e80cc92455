"""Build the model class, datasets and loss named in a config and run every check on them.

This is the workflow's ``validate`` rule: it runs in seconds, before any training job, and finds
everything that a config alone can break (references that do not import, kwargs a target does not
accept, sizes the model rejects) plus every interface check that ``find_optimal()`` runs on Python
objects. Independent problems are all reported in one numbered message, so one edit of the config
fixes them all. The training jobs call :func:`build_objects` so that they build exactly what was
validated.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flops_fit.data import describe_dataset, validate_dataset
from flops_fit.errors import ConfigError
from flops_fit.loss import loss_name, validate_loss_fn
from flops_fit.model_contract import (
    CONFIG_NAMES,
    check_model_class,
    check_size_param,
    default_probe_sizes,
    param_counts,
)
from flops_fit.references import build, describe, resolve

#: config section -> whether a function target is called with the kwargs (dataset) or bound (loss)
_SECTIONS = {"dataset": True, "eval_dataset": True, "loss": False}


def build_objects(
    config: dict[str, Any], base_dir: Path | str | None = None
) -> tuple[type, Any, Any | None, Callable]:
    """``(model_cls, dataset, eval_dataset or None, loss_fn)`` built from a schema-validated config.

    Raises one :class:`ConfigError` listing every reference or kwargs problem found.
    """
    objects, problems = _build(config, base_dir)
    _raise_if(problems)
    return objects["model"], objects["dataset"], objects["eval_dataset"], objects["loss"]


def validate_config(
    config: dict[str, Any], *, base_dir: Path | str | None = None, objects: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run every check on the config's objects; return a JSON-serialisable summary of what was built.

    Raises one :class:`ConfigError` whose message numbers every problem found. The summary holds
    the model class with its parameter counts per size, the datasets (type, iterable, length), the
    loss name and the resolved ``fit.loss_floor``; the validate rule writes it to ``results/validated.json``.
    ``objects`` (keys ``model``, ``dataset``, ``eval_dataset``, ``loss``) are the objects themselves,
    checked instead of building the config's references: :func:`flops_fit.find_optimal` is given
    Python objects, not importable names.
    """
    if objects is None:
        objects, problems = _build(config, base_dir)
    else:
        objects, problems = {"model": None, "dataset": None, "eval_dataset": None, "loss": None, **objects}, []
    model_cls, size_param, sizes = objects["model"], config["model"]["size_param"], config["model"].get("sizes")
    model_kwargs = config["model"].get("kwargs") or {}
    counts: dict[Any, tuple[int, int]] = {}
    if model_cls is not None:
        try:
            check_model_class(model_cls, names=CONFIG_NAMES)
            check_size_param(model_cls, size_param, model_kwargs, names=CONFIG_NAMES)
            probe = sizes or default_probe_sizes(model_cls, size_param)  # no sizes: the planner searches the knob
            counts = param_counts(model_cls, size_param, probe, model_kwargs, names=CONFIG_NAMES)
        except (TypeError, ValueError) as exc:
            problems.insert(0, str(exc))  # the model resolved, so this is the first model problem
    checks = {
        "dataset": functools.partial(validate_dataset, name="dataset"),
        "eval_dataset": functools.partial(validate_dataset, name="eval_dataset"),
        "loss": validate_loss_fn,
    }
    for section, check in checks.items():
        if objects[section] is not None:
            try:
                check(objects[section])
            except TypeError as exc:
                target = config[section]["target"]
                problems.append(f"{section}.target: {target!r} gave {describe(objects[section])}: {exc}")
    floor = None
    try:
        floor = loss_floor(config, base_dir)
    except ConfigError as exc:
        problems.append(str(exc))
    _raise_if(problems)
    return {**_summary(config, objects, counts), "loss_floor": floor}


def loss_floor(config: dict[str, Any], base_dir: Path | str | None = None) -> float | None:
    """``fit.loss_floor`` as a number: given as one, or computed by its reference; None without one.

    A reference ``{target, kwargs}`` lets the dataset's own code compute its floor (the Markov
    example's entropy rate from the dataset's kwargs): a function is called with ``kwargs``, any
    other attribute is used as is. The validate rule calls this, so a bad reference fails before any
    training; the fit calls it again (it is cheap). Raises :class:`ConfigError` naming the key.
    """
    value = (config.get("fit") or {}).get("loss_floor")
    if not isinstance(value, dict):
        return None if value is None else float(value)
    key = "fit.loss_floor.target"
    floor = build(resolve(value["target"], key=key, base_dir=base_dir), value.get("kwargs"), key=key)
    if isinstance(floor, bool) or not isinstance(floor, numbers.Real) or not math.isfinite(floor) or floor <= 0:
        raise ConfigError(
            f"fit.loss_floor: {value['target']!r} gave {floor!r} ({describe(floor)}), not a positive number. "
            "Point fit.loss_floor.target at a function that returns the lower bound on the loss (or at a number), "
            "or write the number itself."
        )
    return float(floor)


def _build(config: dict[str, Any], base_dir: Path | str | None) -> tuple[dict[str, Any], list[str]]:
    """Resolve and build each section independently, collecting problems instead of stopping."""
    objects: dict[str, Any] = {"model": None, "dataset": None, "eval_dataset": None, "loss": None}
    problems: list[str] = []
    try:
        objects["model"] = resolve(config["model"]["class"], key="model.class", base_dir=base_dir)
    except ConfigError as exc:
        problems.append(str(exc))
    for section, call_functions in _SECTIONS.items():
        spec = config.get(section) or {}
        if spec.get("target") is None:
            continue
        key = f"{section}.target"
        try:
            target = resolve(spec["target"], key=key, base_dir=base_dir)
            objects[section] = build(target, spec.get("kwargs"), key=key, call_functions=call_functions)
        except ConfigError as exc:
            problems.append(str(exc))
    return objects, problems


def _raise_if(problems: list[str]) -> None:
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        numbered = "\n".join(f"{i}. {p}" for i, p in enumerate(problems, 1))
        raise ConfigError(f"the configuration has {len(problems)} problems:\n{numbered}")


def _summary(
    config: dict[str, Any], objects: dict[str, Any], counts: dict[Any, tuple[int, int]]
) -> dict[str, Any]:
    model_cls = objects["model"]
    datasets = {
        section: None
        if objects[section] is None
        else {"target": config[section]["target"], **describe_dataset(objects[section])}
        for section in ("dataset", "eval_dataset")
    }
    return {
        "model": {
            "class": config["model"]["class"],
            "resolved": f"{model_cls.__module__}.{model_cls.__qualname__}",
            "size_param": config["model"]["size_param"],
            "sizes": None if config["model"].get("sizes") is None else list(config["model"]["sizes"]),
            "params_by_size": {str(size): n for size, (n, _) in counts.items()},
            "params_total_by_size": {str(size): total for size, (_, total) in counts.items()},
        },
        **datasets,
        "loss": {"target": config["loss"]["target"], "name": loss_name(objects["loss"])},
    }
