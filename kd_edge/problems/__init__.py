"""Problems: each PDE declared once, with a reference solution computed without any network.

    problem = kd_edge.problems.get("burgers")            # or get("burgers", nu=0.005)
    points, values = problem.reference_grid()            # standard evaluation grid
    residuals = problem.residual(model, collocation)     # autograd, one tensor per equation

A new PDE is a Problem subclass in one file, made known with kd_edge.problems.register.
"""

import difflib
import inspect

from kd_edge.problems.allen_cahn import AllenCahnProblem
from kd_edge.problems.base import Condition, Problem, sample_box
from kd_edge.problems.black_scholes import BlackScholesProblem
from kd_edge.problems.burgers import BurgersProblem
from kd_edge.problems.classic import HeatProblem, PoissonProblem, WaveProblem
from kd_edge.problems.fields import AutogradFields, FiniteDifferenceFields
from kd_edge.problems.navier_stokes import KovasznayProblem, TaylorGreenProblem

_REGISTRY: dict[str, type[Problem]] = {}


def register(cls: type[Problem]) -> type[Problem]:
    """Make a Problem subclass available to get() under cls.name (usable as a decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, Problem)):
        raise TypeError(f"register expects a Problem subclass, got {cls!r}")
    for attr in ("name", "inputs", "outputs"):
        if not hasattr(cls, attr):
            raise TypeError(f"{cls.__name__} must define {attr!r}")
    bad = [n for n in cls.inputs if len(n) != 1] + [n for n in cls.outputs if "_" in n or n in cls.inputs]
    if bad:
        raise ValueError(f"{cls.__name__}: inputs must be single characters and outputs must not contain '_' "
                         f"or repeat an input name; offending: {bad}")
    coefficient_names(cls)  # raises if __init__ does not declare them the one supported way
    _REGISTRY[cls.name] = cls
    return cls


COEFFICIENTS_HOWTO = ("declare each coefficient as a keyword parameter of __init__ with a default, and set "
                      "self.coefficients: def __init__(self, c: float = 1.0): self.c = float(c); "
                      "self.coefficients = {\"c\": self.c}")


def coefficient_names(cls) -> list[str]:
    """The coefficients a problem class takes: the parameters of its own __init__ (none without one)."""
    if cls.__init__ is object.__init__:
        return []
    params = [p for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self"]
    odd = [p.name for p in params if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY)
           or p.default is p.empty]
    if odd:
        raise ValueError(f"{cls.__name__}.__init__ takes {', '.join(odd)} in a way kd-edge cannot pass coefficients "
                         f"to; {COEFFICIENTS_HOWTO}")
    return [p.name for p in params]


def unknown_problem(name: str) -> ValueError:
    close = difflib.get_close_matches(name, names(), n=3)
    hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
    return ValueError(f"unknown problem {name!r}{hint}; valid problems: {', '.join(names())}; or name a Problem "
                      f"class in a file or module: my_pde.py:ClassName, my.module:ClassName")


def names() -> list[str]:
    """Names of the registered problems."""
    return sorted(_REGISTRY)


def get(name: str, **coefficients) -> Problem:
    """The problem called `name`, with coefficients overriding its defaults."""
    if name not in _REGISTRY:
        raise unknown_problem(name)
    cls = _REGISTRY[name]
    valid = coefficient_names(cls)
    unknown = sorted(set(coefficients) - set(valid))
    if unknown:
        close = {u: difflib.get_close_matches(u, valid, n=1) for u in unknown}
        hints = "".join(f" ({u!r}: did you mean {c[0]!r}?)" for u, c in close.items() if c)
        raise ValueError(f"{name} has no coefficient {', '.join(map(repr, unknown))}{hints}; "
                         f"valid coefficients: {', '.join(valid) or f'none ({COEFFICIENTS_HOWTO})'}")
    problem = cls(**coefficients)
    if not isinstance(getattr(problem, "coefficients", None), dict):
        raise ValueError(f"{cls.__name__}.__init__ must set self.coefficients, a dict of its coefficients "
                         f"({{}} if none); {COEFFICIENTS_HOWTO}")
    return problem


for _cls in (BurgersProblem, AllenCahnProblem, BlackScholesProblem, KovasznayProblem, TaylorGreenProblem,
             PoissonProblem, HeatProblem, WaveProblem):
    register(_cls)

__all__ = ["AutogradFields", "Condition", "FiniteDifferenceFields", "Problem", "get", "names", "register",
           "sample_box"] + [c.__name__ for c in _REGISTRY.values()]
