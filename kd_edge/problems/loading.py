"""Problems from outside the package: a Python file, an importable module, or the entry points
installed packages declare. Each one found is registered, so that get(name) and configs see it.

    kd-edge run my_pde.py:Advection          # a class in a file (the only Problem there if no :Class)
    kd-edge run mypackage.pdes:Advection     # a class in an importable module
    kd-edge run advection_1d --problem-file my_pde.py
    # pyproject.toml of a package: [project.entry-points."kd_edge.problems"] advection_1d = "mypackage.pdes:Advection"
"""

import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
import warnings
from pathlib import Path

from kd_edge.problems.base import Problem

ENTRY_POINT_GROUP = "kd_edge.problems"


def _problems_in(module) -> list[type[Problem]]:
    """The Problem subclasses a module defines (not those it imports)."""
    return [c for _, c in inspect.getmembers(module, inspect.isclass)
            if issubclass(c, Problem) and c is not Problem and c.__module__ == module.__name__]


def load_file(path) -> list[type[Problem]]:
    """Import a Python file and register the Problem subclasses it defines; returns them."""
    from kd_edge.problems import register

    return [register(cls) for cls in _problems_in(_import_file(Path(path)))]


def _import_file(path: Path):
    """The module of a Python file, imported once per file and content (an edited file is
    imported afresh), with the file and line in any error."""
    if not path.is_file():
        raise FileNotFoundError(f"no problem file {path}")
    name = "kd_edge_user_" + hashlib.sha256(str(path.resolve()).encode() + path.read_bytes()).hexdigest()[:16]
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except SyntaxError as e:
            raise ValueError(f"{path}:{e.lineno}: syntax error: {e.msg}") from None
        except Exception as e:  # the user's code: whatever it raised, say where
            raise ValueError(f"{path}: importing it failed: {type(e).__name__}: {e}") from None
        sys.modules[name] = module
    return sys.modules[name]


def _class_from(module, class_name, where) -> type[Problem]:
    from kd_edge.problems import register

    obj = getattr(module, class_name, None)
    if obj is None:
        found = ", ".join(c.__name__ for c in _problems_in(module)) or "none"
        raise ValueError(f"{where} has no {class_name!r}; the Problem subclasses it defines: {found}")
    if not (isinstance(obj, type) and issubclass(obj, Problem)):
        raise ValueError(f"{where}:{class_name} is a {type(obj).__name__}, not a subclass of kd_edge.problems.Problem")
    return register(obj)


def resolve(spec: str) -> str:
    """The registered name of the problem `spec` names: a registered or entry-point name,
    FILE.py[:CLASS] or MODULE:CLASS. Loads and registers what it has to."""
    from kd_edge.problems import _REGISTRY, register, unknown_problem

    if spec in _REGISTRY:
        return spec
    path, _, class_name = spec.partition(":") if not spec.endswith(".py") else (spec, "", "")
    if path.endswith(".py"):
        module = _import_file(Path(path))
        classes = [register(cls) for cls in _problems_in(module)]
        if class_name:
            return _class_from(module, class_name, path).name
        if len(classes) != 1:
            names = ", ".join(c.__name__ for c in classes) or "none"
            raise ValueError(f"{path} defines {len(classes)} Problem subclasses ({names}); name one: {path}:CLASS")
        return classes[0].name
    if class_name:
        try:
            module = importlib.import_module(path)
        except ImportError as e:
            raise ValueError(f"cannot import module {path!r} for problem {spec!r}: {e}") from None
        return _class_from(module, class_name, path).name
    load_entry_points()
    if spec in _REGISTRY:
        return spec
    raise unknown_problem(spec)


def load_entry_points():
    """Register the problems installed packages declare in the kd_edge.problems entry-point group.
    One that fails to load is skipped with a warning naming it."""
    from kd_edge.problems import register

    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = entry.load()
            register(cls)
        except Exception as e:  # a broken package must not stop the others
            warnings.warn(f"problem entry point {entry.name!r} ({entry.value}) failed to load: {e}", stacklevel=2)
