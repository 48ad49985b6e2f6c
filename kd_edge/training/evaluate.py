"""Accuracy of a model against a problem's reference solution."""

import numpy as np
import torch


def predict(model, points: np.ndarray, batch: int = 65536) -> np.ndarray:
    first = next(model.parameters())  # float64 (and on a GPU) while such a training run logs its error
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(points[i:i + batch]).to(first.device, first.dtype))
                               .double().cpu().numpy()
                               for i in range(0, len(points), batch)])


def without_gauge(problem, points: np.ndarray, diff: np.ndarray) -> np.ndarray:
    """diff less its mean offset, taken separately for each value of the problem's gauge inputs
    (pressure in unsteady flow is defined up to a function of t, not just a constant)."""
    keys = [problem.inputs.index(name) for name in problem.gauge_inputs]
    if not keys:
        return diff - diff.mean()
    _, group = np.unique(points[:, keys], axis=0, return_inverse=True)
    group = group.ravel()
    offsets = np.bincount(group, weights=diff) / np.bincount(group)
    return diff - offsets[group]


def errors(problem, predicted: np.ndarray, reference: np.ndarray, points: np.ndarray) -> dict:
    """Relative L2 error and RMSE per output, and their worst over outputs ("rel_l2", "rmse").
    Outputs defined up to a constant (pressure) are compared after removing their offset
    (see without_gauge)."""
    out = {}
    for k, name in enumerate(problem.outputs):
        diff = predicted[:, k] - reference[:, k]
        if name in problem.gauge_outputs:
            diff = without_gauge(problem, points, diff)
        out[f"rel_l2_{name}"] = float(np.linalg.norm(diff) / np.linalg.norm(reference[:, k]))
        out[f"rmse_{name}"] = float(np.sqrt(np.mean(diff**2)))
    out["rel_l2"] = max(out[f"rel_l2_{n}"] for n in problem.outputs)
    out["rmse"] = max(out[f"rmse_{n}"] for n in problem.outputs)
    return out


def evaluate(problem, model, points=None, reference=None) -> dict:
    """Errors of `model` on the problem's reference grid (or on the given points/values)."""
    if points is None:
        points, reference = problem.reference_grid()
    return errors(problem, predict(model, points), reference, points)


def monitor(problem, n_points: int = 4096, seed: int = 0):
    """An evaluate(model) for training logs: errors on a fixed subsample of the reference grid."""
    points, values = problem.reference_grid()
    chosen = np.random.default_rng(seed).choice(len(points), min(n_points, len(points)), replace=False)
    points, values = points[chosen], values[chosen]
    return lambda model: {"rel_l2": errors(problem, predict(model, points), values, points)["rel_l2"]}
