"""Choosing a model without the reference solution: its physics on held-out points.

Training draws its points from generators seeded by the config's seed (and the step); these
points come from a generator of their own, so no model has seen them. The reference solution is
never read here: it is for reporting only.
"""

import copy

import numpy as np
import torch

from kd_edge.training.evaluate import errors, predict

VALIDATION_SEED = (0x6B64, 0x7661_6C69)  # a seed no training stream uses (those are seed or [seed, step])
N_INTERIOR = 4096
N_CONDITION = 512
GAUGE_LEVELS = 32  # values of a gauge input (t) shared by the interior points, so pressure's offset per t can go


def held_out_points(problem, n_interior: int = N_INTERIOR, n_condition: int = N_CONDITION):
    """(interior points, [points per condition]): the same for every model of a problem."""
    rng = np.random.default_rng(VALIDATION_SEED)
    interior = problem.sample(n_interior, rng)
    for name in problem.gauge_inputs:  # a few shared values, as the reference grid has
        k = problem.inputs.index(name)
        levels = rng.uniform(problem.bounds[0][k], problem.bounds[1][k], GAUGE_LEVELS)
        interior[:, k] = levels[rng.integers(0, GAUGE_LEVELS, len(interior))]
    return interior, [c.sample(n_condition, rng) for c in problem.conditions()]


def validate(problem, model, teacher=None, exact=None) -> dict:
    """The model's validation numbers on held-out points, in float64:
    "residual": mean squared PDE residual (summed over equations);
    "conditions": {name: mean squared residual of each initial/boundary condition}, leaving out
    those the model meets by construction (`exact`; default: read from a hard-constrained model's
    own config, as training leaves them out);
    "physics": residual + the conditions' sum, the number recipes are chosen by;
    "teacher_gap" (with a teacher): relative L2 distance to the teacher's outputs, worst output
    (pressure up to its gauge, as errors() compares it)."""
    if exact is None:
        exact = _exact_conditions(problem, model)
    interior, on_conditions = held_out_points(problem)
    net = copy.deepcopy(model).double().eval()
    for p in net.parameters():
        p.requires_grad_(False)

    def mean_square(residuals) -> float:
        return float(sum(r.detach().pow(2).mean() for r in residuals))

    residual = mean_square(problem.residual(net, torch.from_numpy(interior).requires_grad_(True)))
    conditions = {c.name: mean_square(problem.condition_residual(c, net, torch.from_numpy(p).requires_grad_(True)))
                  for c, p in zip(problem.conditions(), on_conditions) if c.name not in exact}
    out = {"residual": residual, "conditions": conditions, "physics": residual + sum(conditions.values())}
    if teacher is not None:
        out["teacher_gap"] = errors(problem, predict(net, interior), predict(copy.deepcopy(teacher).double(), interior),
                                    interior)["rel_l2"]
    return out


def _exact_conditions(problem, model) -> tuple:
    from kd_edge.training.config import NetworkConfig, from_dict

    network = getattr(model, "info", {}).get("config", {}).get("network")
    if network is None:  # a model from training, not a file
        if type(model).__name__ == "HardConstrained":
            raise ValueError("a hard-constrained model without its config: pass exact=problem.exact_conditions(network)")
        return ()
    network = from_dict(NetworkConfig, network)
    return problem.exact_conditions(network) if network.hard_constraints else ()


def select(candidates: dict, tolerance: float = 0.01) -> str:
    """The recipe the rule picks from {recipe: validation numbers}, in the order the recipes are
    listed: the lowest held-out physics loss; a later recipe must beat the best so far by more than
    `tolerance` (relative), so a tie goes to the earlier (cheaper, simpler) one."""
    best = None
    for name, numbers in candidates.items():
        if not np.isfinite(numbers["physics"]):
            continue
        if best is None or numbers["physics"] < candidates[best]["physics"] * (1 - tolerance):
            best = name
    if best is None:
        raise ValueError(f"no recipe has a finite validation loss: {sorted(candidates)}")
    return best
