"""Turns the ``module->Attr`` strings of a config into the objects they name.

Two forms, as upstream's YAML files use them:

- dotted: ``tutorial.example_math_agent.math_agent->ExampleMathLearn``, imported with
  ``importlib`` from ``sys.path`` (the working directory is added when the module is not found
  otherwise, because the ``astuner`` console script does not put it there). Seed-era paths that
  start with ``astune.`` resolve to ``astuner.``.
- file: ``path/to/agent.py->ExampleMathLearn`` (relative to the working directory, or absolute;
  a config file's values arrive here already absolute, resolved against the config's folder by
  ``astuner.config.paths``). Each file is loaded once, under a module name derived from its
  absolute path, so two files that share a basename never shadow each other (upstream keyed them
  by basename and silently returned the wrong one).

``locate`` only checks that the module or file exists, without running it, so a run can reject a
mistyped name before importing anything heavy; ``resolve`` imports it and returns the attribute.

Every failure is a ``ResolveError`` naming the string. A module that exists but fails while
importing (a missing dependency, a syntax error) is reported as that failure, with the original
exception chained, never as "module not found". Imports are serialised by one re-entrant lock:
the import system is not safe against two threads executing the same new module at once.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

SEPARATOR = "->"
OLD_PACKAGE = "astune"
PACKAGE = "astuner"

_LOCK = threading.RLock()
_FILE_MODULES: dict[Path, ModuleType] = {}


class ResolveError(ValueError):
    """A ``module->Attr`` string that cannot be resolved; the message quotes the string."""


def split_spec(spec: str) -> tuple[str, str]:
    """``"pkg.mod->Cls"`` -> ``("pkg.mod", "Cls")``; anything but exactly one ``->`` is an error."""
    if not isinstance(spec, str):
        raise ResolveError(f"expected a 'module->Attr' string, got {spec!r}")
    count = spec.count(SEPARATOR)
    if count != 1:
        forms = "'package.module->Class' or 'path/file.py->Class'"
        raise ResolveError(f"{spec!r}: expected exactly one '->' (as in {forms}), found {count}")
    module_part, attr = (part.strip() for part in spec.split(SEPARATOR))
    if not module_part or not attr:
        raise ResolveError(f"{spec!r}: both sides of '->' must be non-empty")
    return module_part, attr


def resolve(spec: str) -> Any:
    """Import the module (or file) of ``spec`` and return its attribute."""
    module_part, attr = split_spec(spec)
    with _LOCK:
        if module_part.endswith(".py"):
            module = _load_file(module_part, spec)
        else:
            module = _import_dotted(module_part, spec)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ResolveError(_missing_attr_message(spec, module, attr)) from None


def locate(spec: str) -> None:
    """Check that the module (or file) of ``spec`` exists, without running the module itself.

    Used before a run creates anything, so that a mistyped ``module->Class`` fails fast and
    without the module's own (often heavy) imports. The file form checks that the file exists; the
    dotted form asks the import system for the module's spec (the working directory is tried as
    ``resolve`` tries it), which imports its parent packages but not the module. Not guaranteed:
    that the module imports cleanly or defines the attribute; only ``resolve`` can tell.
    """
    module_part, _attr = split_spec(spec)
    with _LOCK:
        if module_part.endswith(".py"):
            path = _file_path(module_part)
            if not path.is_file():
                raise ResolveError(_file_not_found_message(spec, path))
            return
        name = canonical_module_name(module_part)
        if name.startswith("."):
            raise ResolveError(f"{spec!r}: relative module names are not supported; use the full dotted path")
        missing = _find_dotted(name, spec)
        if missing is not None and _add_cwd_to_sys_path():
            missing = _find_dotted(name, spec)
        if missing is not None:
            raise ResolveError(_not_found_message(spec, module_part, name, missing))


def _find_dotted(name: str, spec: str) -> ModuleNotFoundError | None:
    """None when the import system can find ``name`` (or already imported it); else what is missing."""
    if name in sys.modules:
        return None
    try:
        found = _find_spec(name)
    except ModuleNotFoundError as exc:
        if not _is_missing_target(exc, name):
            raise _import_failure(spec, f"module '{name}'", exc) from exc
        return exc
    except Exception as exc:  # a parent package raised while being imported
        raise _import_failure(spec, f"a parent package of '{name}'", exc) from exc
    return None if found is not None else ModuleNotFoundError(f"No module named {name!r}", name=name)


def _find_spec(name: str) -> Any:
    """The import system's spec for ``name`` without executing it: its parent packages are imported,
    then each ``sys.meta_path`` finder is asked in turn, as ``import`` itself does."""
    parent = name.rpartition(".")[0]
    path = None
    if parent:
        path = getattr(importlib.import_module(parent), "__path__", None)
        if path is None:
            raise ModuleNotFoundError(f"No module named {name!r}; {parent!r} is not a package", name=name)
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        found = find(name, path) if find is not None else None
        if found is not None:
            return found
    return None


def canonical_module_name(module_part: str) -> str:
    """Seed-era ``astune`` / ``astune.x`` module paths name today's ``astuner`` package."""
    if module_part == OLD_PACKAGE or module_part.startswith(OLD_PACKAGE + "."):
        return PACKAGE + module_part[len(OLD_PACKAGE):]
    return module_part


def _load_file(module_part: str, spec: str) -> ModuleType:
    """Load a ``.py`` file once per absolute path, registered in ``sys.modules`` under a unique name."""
    path = _file_path(module_part)
    if not path.is_file():
        raise ResolveError(_file_not_found_message(spec, path))
    path = path.resolve()
    cached = _FILE_MODULES.get(path)
    if cached is not None:
        return cached
    name = _file_module_name(path)
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ResolveError(f"{spec!r}: cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise _import_failure(spec, str(path), exc) from exc
    _FILE_MODULES[path] = module
    return module


def _file_path(module_part: str) -> Path:
    """The file a file-form spec names: absolute as given, or relative to the working directory."""
    path = Path(module_part).expanduser()
    return path if path.is_absolute() else Path.cwd() / path


def _file_not_found_message(spec: str, path: Path) -> str:
    return f"{spec!r}: file not found: {path} (relative paths are resolved against the working directory {Path.cwd()})"


def _file_module_name(path: Path) -> str:
    """A module name unique to ``path``: the readable stem plus a hash of the absolute path."""
    stem = re.sub(r"\W", "_", path.stem)
    digest = hashlib.sha1(str(path).encode("utf-8")).hexdigest()[:12]
    return f"_astuner_file_{stem}_{digest}"


def _import_dotted(module_part: str, spec: str) -> ModuleType:
    """Import a dotted module, telling "does not exist" apart from "failed while importing"."""
    name = canonical_module_name(module_part)
    if name.startswith("."):
        raise ResolveError(f"{spec!r}: relative module names are not supported; use the full dotted path")
    for attempt in range(2):
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if not _is_missing_target(exc, name):
                raise _import_failure(spec, f"module '{name}'", exc) from exc
            if attempt == 0 and _add_cwd_to_sys_path():
                continue
            raise ResolveError(_not_found_message(spec, module_part, name, exc)) from None
        except Exception as exc:
            raise _import_failure(spec, f"module '{name}'", exc) from exc
    raise AssertionError("unreachable")


def _is_missing_target(exc: ModuleNotFoundError, name: str) -> bool:
    """True when the module that is missing is ``name`` itself or one of its parent packages."""
    missing = exc.name or ""
    return bool(missing) and (name == missing or name.startswith(missing + "."))


def _add_cwd_to_sys_path() -> bool:
    """Append the working directory to ``sys.path`` (as ``python -m`` would have); False if already there."""
    cwd = os.getcwd()
    if any(os.path.abspath(p or ".") == cwd for p in sys.path):
        return False
    sys.path.append(cwd)
    importlib.invalidate_caches()
    return True


def _not_found_message(spec: str, module_part: str, name: str, exc: ModuleNotFoundError) -> str:
    where = f"module '{name}' not found"
    if name != module_part:
        where += f" (read '{module_part}' as '{name}')"
    if exc.name and exc.name != name:
        where += f": its package '{exc.name}' does not exist"
    hint = "; a file path must end in '.py'" if "/" in module_part or "\\" in module_part else ""
    return f"{spec!r}: {where} (searched the working directory {os.getcwd()} and sys.path){hint}"


def _import_failure(spec: str, what: str, exc: Exception) -> ResolveError:
    """The error for a module that exists but raised while being imported."""
    message = f"{spec!r}: importing {what} failed: {type(exc).__name__}: {exc}"
    if isinstance(exc, ImportError):
        message += " (something that module imports is missing: install it or fix the import)"
    return ResolveError(message)


def _missing_attr_message(spec: str, module: ModuleType, attr: str) -> str:
    """Name the module, suggest the closest name, and list a few of what it defines."""
    public = [n for n in vars(module) if not n.startswith("_")]
    own = [n for n in public if getattr(getattr(module, n), "__module__", None) == module.__name__]
    classes = [n for n in own if inspect.isclass(getattr(module, n))]
    listed = list(dict.fromkeys(classes + own + public))
    where = getattr(module, "__file__", None) or module.__name__
    message = f"{spec!r}: {where} has no attribute '{attr}'"
    guess = difflib.get_close_matches(attr, listed, n=1)
    if guess:
        message += f" (did you mean '{guess[0]}'?)"
    if listed:
        shown = ", ".join(listed[:8]) + (", ..." if len(listed) > 8 else "")
        message += f"; it defines: {shown}"
    else:
        message += "; it defines no public names"
    return message
