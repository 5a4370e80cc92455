"""Resolve the import references written in a config (``"pkg.module:attr"``, ``"path/file.py:attr"``).

A config names the user's model class, dataset and loss by reference, so a typo in one of them is
the most likely config error. Every error here names the config key, the module or file and the
attribute, and says how to fix it, because the person reading it may be a newcomer running a
sweep on a cluster.
"""

from __future__ import annotations

import __future__

import difflib
import functools
import hashlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
from collections.abc import Collection, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from flops_fit.errors import ConfigError

FORMAT_HINT = (
    "Expected 'package.module:attribute' (an importable module, e.g. 'torch.nn:CrossEntropyLoss') "
    "or 'path/to/file.py:attribute' (a file, relative to the working directory)."
)

_KEYWORD_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def resolve(ref: str, *, key: str, base_dir: Path | str | None = None) -> Any:
    """Import the module or file of ``ref`` and return its (possibly dotted) attribute.

    ``key`` is the config key the reference came from; it heads every error message. A relative
    file path is relative to ``base_dir`` (default: the working directory). A file is imported
    under a unique module name (two files both called ``model.py`` do not clash) and its folder is
    put on ``sys.path`` so that it can import its sibling files.
    """
    if not isinstance(ref, str) or ref.count(":") < 1:
        raise ConfigError(f"{key}: {ref!r} is not a reference. {FORMAT_HINT}")
    where, _, attr_path = ref.rpartition(":")
    if not where or not attr_path or not all(part.isidentifier() for part in attr_path.split(".")):
        raise ConfigError(f"{key}: {ref!r} is not a reference. {FORMAT_HINT}")
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    if _is_file_ref(where):
        module, owner = _import_file(where, key=key, base=base), f"file {where}"
    else:
        module, owner = _import_module(where, attr_path, key=key, base=base), f"module '{where}'"
    return _get_attr(module, attr_path, key=key, ref=ref, owner=owner)


def _is_file_ref(where: str) -> bool:
    return where.endswith(".py") or "/" in where or os.sep in where


def _import_file(where: str, *, key: str, base: Path) -> ModuleType:
    path = Path(where).expanduser()
    path = (path if path.is_absolute() else base / path).resolve()
    if not path.is_file():
        raise ConfigError(
            f"{key}: file '{where}' not found (looked for {path}). A relative path is relative to the "
            f"working directory {base}; fix the path or make it absolute."
        )
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    name = "_flops_fit_user_" + re.sub(r"\W", "_", path.stem) + "_" + digest
    if name in sys.modules:  # the model and the dataset may live in the same file: import it once
        return sys.modules[name]
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None  # a .py file always has a source loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ConfigError(
            f"{key}: importing file '{where}' ({path}) raised {type(exc).__name__}: {exc}. "
            "The error is in that file (see the traceback above this message)."
        ) from exc
    return module


def _import_module(where: str, attr_path: str, *, key: str, base: Path) -> ModuleType:
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (where == exc.name or where.startswith(exc.name + ".")):
            raise ConfigError(
                f"{key}: module '{where}' was found but importing it failed: it imports '{exc.name}', "
                f"which is not installed in this Python environment ({sys.executable}). Install it."
            ) from exc
        as_file = base / (where.replace(".", "/") + ".py")
        if as_file.is_file():
            hint = (
                f"There is a file {as_file}: to use it, write '{where.replace('.', '/')}.py:{attr_path}'."
            )
        else:
            hint = (
                "Check the spelling and that the package is installed in this Python environment "
                f"({sys.executable}); a file of your own is written 'path/to/file.py:{attr_path}'."
            )
        raise ConfigError(
            f"{key}: cannot import module '{where}' (no module named '{exc.name}'). {hint}"
        ) from exc
    except Exception as exc:
        raise ConfigError(
            f"{key}: importing module '{where}' raised {type(exc).__name__}: {exc}. "
            "The error is in that module (see the traceback above this message)."
        ) from exc


def _own_names(obj: Any) -> list[str]:
    """Public attributes worth suggesting: not the modules it imported, nor ``from __future__`` flags."""
    return sorted(
        n for n in dir(obj)
        if not n.startswith("_")
        and not isinstance(getattr(obj, n, None), (ModuleType, __future__._Feature))
    )


def _get_attr(module: ModuleType, attr_path: str, *, key: str, ref: str, owner: str) -> Any:
    obj: Any = module
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            names = _own_names(obj)
            raise ConfigError(
                f"{key}: {owner} has no attribute '{part}' (in {ref!r}).{did_you_mean(part, names)} "
                f"Available: {_listing(names)}."
            ) from None
        owner = f"'{part}'"
    return obj


def did_you_mean(name: str, candidates: Collection[str]) -> str:
    """`` Did you mean 'x'?`` for the closest candidates (case-insensitive), or an empty string."""
    lower = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(name.lower(), list(lower), n=3, cutoff=0.6)
    return f" Did you mean {' or '.join(repr(lower[c]) for c in close)}?" if close else ""


def _listing(names: Collection[str], limit: int = 25) -> str:
    if not names:
        return "(nothing)"
    shown = ", ".join(list(names)[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def describe(obj: Any) -> str:
    """A short human name for a class or function (``GPT``, ``make_data``), else ``an object of type X``."""
    if isinstance(obj, functools.partial):
        return describe(obj.func)
    if inspect.isclass(obj) or inspect.isroutine(obj):
        return getattr(obj, "__name__", None) or repr(obj)
    return f"an object of type {type(obj).__name__}"


def call_problems(target: Any, given: Collection[str], *, check_missing: bool = True) -> list[str]:
    """Why ``target(**given)`` would fail on its signature alone, as sentences (empty when fine).

    Two problems are found without calling anything: keyword names the target does not accept
    (listing the accepted ones and close matches) and required parameters that are not given.
    ``check_missing=False`` skips the second check, for functions whose remaining arguments are
    passed at call time (a loss bound with ``functools.partial``).
    Targets whose signature cannot be inspected, and targets taking ``**kwargs``, accept any name.
    """
    try:
        params = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return []
    name = describe(target)
    accepted = [p.name for p in params if p.kind in _KEYWORD_KINDS]
    problems = []
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        unknown = [g for g in given if g not in accepted]
        for g in unknown:
            problems.append(
                f"{name} does not accept the argument '{g}'.{did_you_mean(g, accepted)} "
                f"It accepts: {', '.join(accepted) or 'no keyword arguments'}."
            )
    missing = [
        p.name
        for p in params
        if p.default is p.empty
        and p.kind in (*_KEYWORD_KINDS, inspect.Parameter.POSITIONAL_ONLY)
        and p.name not in given
    ]
    if missing and check_missing:
        verb = "is" if len(missing) == 1 else "are"
        problems.append(f"{name} requires {', '.join(repr(m) for m in missing)}, which {verb} not given.")
    return problems


def build(obj: Any, kwargs: Mapping[str, Any] | None, *, key: str, call_functions: bool = True) -> Any:
    """Turn a resolved reference into the object to use, with the config's kwargs.

    A class is instantiated with ``kwargs``. A function is called with them when ``call_functions``
    (a dataset target: "a callable returning a Dataset"), otherwise used as is (a loss target: "a
    function is used as is"), with non-empty ``kwargs`` bound by ``functools.partial``. Any other
    object (an already built Dataset or loss instance) is used as is and cannot take kwargs.
    ``key`` is the reference's config key (``dataset.target``); kwargs errors name the sibling
    ``.kwargs`` key.
    """
    kwargs = dict(kwargs or {})
    kwargs_key = key.rpartition(".")[0] + ".kwargs" if "." in key else f"{key} kwargs"
    is_function = inspect.isroutine(obj) or isinstance(obj, functools.partial)
    if not (inspect.isclass(obj) or is_function):
        if kwargs:
            raise ConfigError(
                f"{kwargs_key}: {key} is already {describe(obj)}, not a class or function, so it cannot take "
                f"arguments ({', '.join(kwargs)}). Remove {kwargs_key}, or point {key} at a class or function."
            )
        return obj
    binds = is_function and not call_functions
    problems = call_problems(obj, kwargs, check_missing=not binds)
    if problems:
        raise ConfigError(f"{kwargs_key}: " + " ".join(problems) + f" Fix {kwargs_key} in the config.")
    if binds:
        return functools.partial(obj, **kwargs) if kwargs else obj
    try:
        return obj(**kwargs)
    except Exception as exc:
        raise ConfigError(
            f"{key}: {describe(obj)}(**{kwargs_key}) raised {type(exc).__name__}: {exc}"
        ) from exc

