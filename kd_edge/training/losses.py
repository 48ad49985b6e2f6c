"""Loss terms: the physics loss of a PINN and the KD-PINN distillation term."""

import math

import torch

from kd_edge.training.parallel import Group

ONE_PROCESS = Group()  # not data-parallel: the default of every loss


def mean_square(residuals: list[torch.Tensor], group: Group = ONE_PROCESS) -> torch.Tensor:
    return sum(group.share(r.pow(2)) for r in residuals)


def pde_loss(problem, model, points: torch.Tensor, causal_chunks: int = 0, causal_epsilon: float = 1.0,
             time_weight_rate: float = 0.0, group: Group = ONE_PROCESS):
    """Mean squared PDE residual at `points`. With causal_chunks > 0, time is cut into that
    many slices and slice i counts with weight exp(-eps * sum of the losses of slices before
    it), so later times only train once earlier ones are resolved (Wang, Sankaran & Perdikaris 2022).
    With time_weight_rate = a > 0, the squared residual at time t counts with weight proportional
    to exp(a (t_end - t)), normalised to mean 1 over the time interval.
    group: this rank's shard of a global point set; the result is its share of the global loss
    (the slices' losses, and so the causal weights, are those of the global set)."""
    squared = sum(r.pow(2) for r in problem.residual(model, points))  # (N,)
    if causal_chunks <= 0 and time_weight_rate <= 0:
        return group.share(squared)
    column = problem.inputs.index("t")
    t = points[:, column]
    lower, upper = problem.bounds[0][column], problem.bounds[1][column]
    if time_weight_rate > 0:
        # where the dynamics amplify errors (growth rate L), one made at t can grow up to
        # exp(L (t_end - t))-fold by the end (Gronwall), so early residuals matter more than their
        # share of the points; the rate is a setting (Allen-Cahn: L = 5, and rate 5 beat 10)
        span = time_weight_rate * (upper - lower)
        squared = squared * torch.exp(time_weight_rate * (upper - t)) * (span / math.expm1(span))
    if causal_chunks <= 0:
        return group.share(squared)
    chunk = ((t - lower) / (upper - lower) * causal_chunks).long().clamp(0, causal_chunks - 1)
    sums = torch.zeros(causal_chunks, dtype=squared.dtype, device=squared.device).index_add(0, chunk, squared)
    counts = torch.bincount(chunk, minlength=causal_chunks).to(squared.dtype)
    totals = group.sum(torch.cat([sums.detach(), counts]))
    sums_all, counts = totals[:causal_chunks], totals[causal_chunks:].clamp(min=1)
    with torch.no_grad():
        per_chunk = sums_all / counts
        weights = torch.exp(-causal_epsilon * (torch.cumsum(per_chunk, 0) - per_chunk))
    return (weights * (sums / counts)).mean()


def condition_losses(problem, model, condition_points: list[torch.Tensor], exact=(),
                     group: Group = ONE_PROCESS) -> list[torch.Tensor]:
    """Mean squared residual of each condition, leaving out those named in `exact` (met by a hard constraint)."""
    return [mean_square(problem.condition_residual(c, model, p), group)
            for c, p in zip(problem.conditions(), condition_points) if c.name not in exact]


def gaussian_kl(teacher_out: torch.Tensor, student_out: torch.Tensor, std: torch.Tensor,
                group: Group = ONE_PROCESS) -> torch.Tensor:
    """KD-PINN's distillation term: the KL divergence carried from classification to regression.

    Each output at a point is a Gaussian centred on the network's value with standard
    deviation `std` (per output: temperature x the teacher's output scale), the same for
    teacher and student, so KL(teacher || student) = (mu_t - mu_s)^2 / (2 std^2): a
    variance-scaled squared error. It is 0 exactly when the outputs agree."""
    return group.share(((teacher_out - student_out) ** 2 / (2 * std**2)).sum(dim=1))
