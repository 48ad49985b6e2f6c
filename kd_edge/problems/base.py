"""Problem: a PDE declared once, for training (residuals, conditions, sampling) and for
evaluation (a reference solution computed without any network)."""

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from scipy.stats import qmc

from kd_edge.problems.fields import AutogradFields, Fields, FiniteDifferenceFields

SAMPLERS = ("uniform", "lhs", "sobol")


def sample_box(lower, upper, n: int, rng: np.random.Generator, method: str = "uniform") -> np.ndarray:
    """n points in the box [lower, upper] (a fixed coordinate has lower == upper), float64."""
    lower, upper = np.asarray(lower, float), np.asarray(upper, float)
    d = len(lower)
    if method not in SAMPLERS:
        raise ValueError(f"unknown sampler {method!r}; valid: {', '.join(SAMPLERS)}")
    if method == "uniform":
        unit = rng.random((n, d))
    else:
        # scipy's QMC engines spawn a child of a Generator they are given, through a counter
        # that the generator's saved state does not hold: a resumed run would repeat old
        # samples. A seed drawn from rng keeps every draw in rng's state.
        engine_rng = np.random.default_rng(rng.integers(2**63))
        if method == "lhs":
            unit = qmc.LatinHypercube(d=d, rng=engine_rng).random(n)
        else:
            with warnings.catch_warnings():  # training needs coverage, not Sobol's exact balance at 2^m points
                warnings.filterwarnings("ignore", message="The balance properties of Sobol", category=UserWarning)
                unit = qmc.Sobol(d=d, rng=engine_rng).random(n)
    return lower + unit * (upper - lower)


@dataclass
class Condition:
    """An initial or boundary condition: equations that must vanish on a region.

    region: (lower, upper) per input; a coordinate fixed on the region has lower == upper.
    equation: Fields -> tensor or list of tensors, zero where the condition holds.
    """

    name: str
    region: tuple[tuple[float, ...], tuple[float, ...]]
    equation: Callable[[Fields], "torch.Tensor | list[torch.Tensor]"]

    def sample(self, n: int, rng: np.random.Generator, method: str = "uniform") -> np.ndarray:
        return sample_box(*self.region, n, rng, method)


def _as_list(result) -> list[torch.Tensor]:
    return list(result) if isinstance(result, (list, tuple)) else [result]


class Problem:
    """Base class. A subclass sets name, inputs, outputs, lower, upper and coefficients,
    and defines equations(f), conditions(), grid_axes() and either solution(p) (an exact
    solution in torch) or reference(points)."""

    name: str
    inputs: tuple[str, ...]  # one character each: derivative keys are spelled "u_xt"
    outputs: tuple[str, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    coefficients: dict  # the PDE's parameters, e.g. {"nu": 0.0032}
    gauge_outputs: tuple[str, ...] = ()  # outputs defined only up to a constant (pressure) ...
    gauge_inputs: tuple[str, ...] = ()  # ... or up to a function of these inputs (t, in unsteady flow)
    reference_version = 1  # bump when a reference computation changes, to refresh caches

    # --- declared by each problem -------------------------------------------------
    def equations(self, f: Fields) -> list[torch.Tensor]:
        """PDE residuals, one tensor (N,) per equation, zero for the true solution."""
        raise NotImplementedError

    def conditions(self) -> list[Condition]:
        raise NotImplementedError

    def grid_axes(self) -> list[np.ndarray]:
        """1-D coordinates per input of the standard evaluation grid."""
        raise NotImplementedError

    def solution(self, p: torch.Tensor) -> torch.Tensor:
        """Exact solution (N, d_in) -> (N, d_out) in torch, where one is known."""
        raise NotImplementedError(f"{self.name} has no closed-form solution")

    def constrain(self, p: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        """Hard constraints: a network's raw output (N, d_out) at points p (N, d_in) -> an output that
        meets the conditions exact_conditions() names exactly, whatever `raw` is. Plain tensor ops,
        so a constrained network still exports. Problems that declare none raise NotImplementedError."""
        raise NotImplementedError(f"{self.name} declares no hard constraints")

    def exact_conditions(self, network) -> tuple[str, ...]:
        """Names of the conditions a network built with `network` (a NetworkConfig) and passed
        through constrain() meets by construction; training leaves them out of the loss."""
        return ()

    @property
    def has_hard_constraints(self) -> bool:
        return type(self).constrain is not Problem.constrain

    # --- shared behaviour ------------------------------------------------------------
    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.lower, float), np.asarray(self.upper, float)

    def describe(self) -> str:
        return f"{self.name} expects {len(self.inputs)} inputs ({', '.join(self.inputs)})"

    def check_points(self, points) -> np.ndarray:
        """Validate an (N, d_in) array of points inside the domain; return it as float64."""
        p = np.asarray(points.detach().cpu() if torch.is_tensor(points) else points, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != len(self.inputs):
            got = f"{p.shape[1]} columns" if p.ndim == 2 else f"shape {p.shape}"
            raise ValueError(f"input has {got}, {self.describe()}")
        if not np.isfinite(p).all():
            raise ValueError(f"{self.name}: points contain NaN or Inf (first at row {np.argwhere(~np.isfinite(p))[0, 0]})")
        lower, upper = self.bounds
        slack = 1e-6 * (upper - lower)  # float32 points on a bound such as 2 pi overshoot it by an ulp
        outside = (p < lower - slack) | (p > upper + slack)
        if outside.any():
            row, col = np.argwhere(outside)[0]
            raise ValueError(f"{self.name}: point {row} has {self.inputs[col]} = {p[row, col]:g}, outside the "
                             f"domain [{lower[col]:g}, {upper[col]:g}]")
        return p

    def residual(self, model, points: torch.Tensor) -> list[torch.Tensor]:
        """PDE residuals of `model` at `points` (N, d_in), derivatives by autograd."""
        self.check_points(points)
        return _as_list(self.equations(AutogradFields(self.inputs, self.outputs, model, points)))

    def equation_keys(self) -> list[str]:
        """The derivative keys the equations read ("u_t", "u_xx", ...), in the order they read them
        (what a compiled residual needs from the kernel)."""
        keys = []
        inputs = self.inputs

        class Recording(FiniteDifferenceFields):
            def __getitem__(self, key):
                if key not in inputs and "_" in key and key not in keys:
                    keys.append(key)
                return super().__getitem__(key)

        zero = lambda p: np.zeros((len(p), len(self.outputs)))  # noqa: E731: any function will do
        self.equations(Recording(self.inputs, self.outputs, zero, self.sample(2, np.random.default_rng(0)), 1e-3))
        return keys

    def condition_residual(self, condition: Condition, model, points: torch.Tensor) -> list[torch.Tensor]:
        return _as_list(condition.equation(AutogradFields(self.inputs, self.outputs, model, points)))

    def sample(self, n: int, rng: np.random.Generator, method: str = "uniform") -> np.ndarray:
        """n collocation points in the domain."""
        return sample_box(self.lower, self.upper, n, rng, method)

    def reference(self, points) -> np.ndarray:
        """Reference solution at any points of the domain, (N, d_out) float64."""
        p = torch.from_numpy(self.check_points(points))
        with torch.no_grad():
            return self.solution(p).numpy()

    def grid(self) -> np.ndarray:
        """The standard evaluation grid as (M, d_in) points, first input varying slowest."""
        mesh = np.meshgrid(*self.grid_axes(), indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=1)

    def reference_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """(points, values) on the standard grid, cached on disk (KD_EDGE_CACHE, default ~/.cache/kd_edge)."""
        key = json.dumps([self.name, self.reference_version, self.coefficients], sort_keys=True, default=float)

        def compute():
            points = self.grid()
            return {"points": points, "values": self.reference(points)}

        arrays = cached_arrays(self.name, key, compute)
        return arrays["points"], arrays["values"]

    def __repr__(self):
        coefficients = ", ".join(f"{k}={v:g}" for k, v in self.coefficients.items())
        return f"{type(self).__name__}({coefficients})"


def cache_dir() -> Path:
    return Path(os.environ.get("KD_EDGE_CACHE", Path.home() / ".cache" / "kd_edge"))


def cached_arrays(prefix: str, key: str, compute) -> dict:
    """compute() -> {name: array}, kept in cache_dir() under a hash of `key`; written atomically."""
    path = cache_dir() / f"{prefix}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
    if path.exists():
        with np.load(path) as cached:
            return dict(cached)
    arrays = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return arrays
