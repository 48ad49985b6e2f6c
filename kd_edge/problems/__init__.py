"""Problems: each PDE declared once, with a reference solution computed without any network.

    problem = kd_edge.problems.get("burgers")            # or get("burgers", nu=0.005)
    points, values = problem.reference_grid()            # standard evaluation grid
    residuals = problem.residual(model, collocation)     # autograd, one tensor per equation

A new PDE is a Problem subclass in one file, made known with kd_edge.problems.register.
"""

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
    _REGISTRY[cls.name] = cls
    return cls


def names() -> list[str]:
    """Names of the registered problems."""
    return sorted(_REGISTRY)


def get(name: str, **coefficients) -> Problem:
    """The problem called `name`, with coefficients overriding its defaults."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown problem {name!r}; valid problems: {', '.join(names())}")
    cls = _REGISTRY[name]
    valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(coefficients) - set(valid))
    if unknown:
        raise ValueError(f"{name} has no coefficient {', '.join(map(repr, unknown))}; "
                         f"valid coefficients: {', '.join(valid) or 'none'}")
    return cls(**coefficients)


for _cls in (BurgersProblem, AllenCahnProblem, BlackScholesProblem, KovasznayProblem, TaylorGreenProblem,
             PoissonProblem, HeatProblem, WaveProblem):
    register(_cls)

__all__ = ["AutogradFields", "Condition", "FiniteDifferenceFields", "Problem", "get", "names", "register",
           "sample_box"] + [c.__name__ for c in _REGISTRY.values()]
