"""distill (KD-PINN) and its control, train_student_scratch."""

import copy

import numpy as np
import torch

from kd_edge.training.config import DistillConfig, TrainConfig, training_dtype
from kd_edge.training.losses import gaussian_kl
from kd_edge.training.models import build_network
from kd_edge.training.parallel import current_group
from kd_edge.training.teacher import train_pinn


def _schedule(start: float, end: float, progress: float) -> float:
    return start + (end - start) * progress


class DistillationTerm:
    """lambda(progress) x KL(teacher || student), plus optionally the same Gaussian mismatch on
    first derivatives with respect to the normalised inputs, on points that resample() redraws.
    The trainer redraws them every Adam step; L-BFGS keeps them fixed between its restarts, since
    its line search needs one objective. Under torch.distributed each rank compares on its
    shard of the points, and the term is its share of the global one."""

    def __init__(self, problem, teacher, student, config: DistillConfig, device="cpu"):
        self.dtype, self.device, self.group = training_dtype(config.precision), torch.device(device), current_group()
        teacher = copy.deepcopy(teacher).to(self.device, self.dtype)  # the caller's teacher stays as it was
        self.problem, self.teacher, self.student, self.config = problem, teacher, student, config
        self.rng = np.random.default_rng(config.seed + 1)
        for p in teacher.parameters():
            p.requires_grad_(False)
        probe = self.tensor(problem.sample(8192, np.random.default_rng(config.seed), "sobol"))
        with torch.no_grad():
            answer = teacher(probe)
        want = (len(probe), len(problem.outputs))
        if not torch.is_tensor(answer) or tuple(answer.shape) != want:
            got = tuple(answer.shape) if torch.is_tensor(answer) else type(answer).__name__
            raise ValueError(f"the teacher ({type(teacher).__name__}) must map (n, {len(problem.inputs)}) points "
                             f"({', '.join(problem.inputs)}) to (n, {len(problem.outputs)}) outputs "
                             f"({', '.join(problem.outputs)}); it returned {got}")
        # each output's natural scale: the teacher's spread over the domain
        self.scale = answer.std(dim=0).clamp(min=1e-6)
        lower, upper = problem.bounds
        self.half_range = self.tensor((upper - lower) / 2)
        self.gauge = [problem.outputs.index(name) for name in problem.gauge_outputs]
        self.resample()

    def tensor(self, values: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(values).to(self.device, self.dtype)

    def resample(self):
        self.points = self.tensor(self.problem.sample(self.config.n_distill, self.rng, "uniform"))  # global

    def state(self) -> dict:  # for resumable checkpoints
        return {"rng": self.rng.bit_generator.state, "points": self.points}

    def load_state(self, state: dict):
        self.rng.bit_generator.state, self.points = state["rng"], state["points"].to(self.device, self.dtype)

    def __call__(self, progress: float):
        c = self.config
        weight = _schedule(c.distill_weight, c.distill_weight_final, progress)
        std = _schedule(c.temperature, c.temperature_final, progress) * self.scale
        points, g = self.group.shard(self.points).clone(), self.group
        if not c.match_derivatives:
            with torch.no_grad():
                target = self.teacher(points)
            kl = gaussian_kl(self.in_student_gauge(target, out := self.student(points)), out, std, g)
            return weight * kl, {"distill": kl.item()}
        points.requires_grad_(True)
        target, target_grads = self._with_gradients(self.teacher, points, create_graph=False)
        out, grads = self._with_gradients(self.student, points, create_graph=True)
        kl = gaussian_kl(self.in_student_gauge(target.detach(), out), out, std, g)
        # derivatives w.r.t. inputs scaled to [-1, 1], in units of the output's std
        derivative = sum(gaussian_kl(tg.detach() * self.half_range, sg * self.half_range,
                                     s.expand_as(self.half_range), g)
                         for tg, sg, s in zip(target_grads, grads, std))
        total = kl + c.derivative_weight * derivative
        return weight * total, {"distill": kl.item(), "distill_derivative": derivative.item()}

    def in_student_gauge(self, target, out):
        """The teacher's outputs with those defined only up to a constant (pressure) shifted by
        their mean gap to the student's: the teacher's arbitrary offset is not knowledge (on
        Kovasznay it was 9 standard deviations of p, and matching it dominated the start of
        training). The shift is detached, a fixed target like the rest."""
        if not self.gauge:
            return target
        target = target.clone()
        gap = self.group.mean(target[:, self.gauge] - out[:, self.gauge].detach())
        target[:, self.gauge] -= gap
        return target

    @staticmethod
    def _with_gradients(model, points, create_graph):
        out = model(points)
        grads = [torch.autograd.grad(out[:, k].sum(), points, create_graph=create_graph, retain_graph=True)[0]
                 for k in range(out.shape[1])]
        return out, grads


def distill(problem, teacher, config: DistillConfig, checkpoint=None, progress=True, device="cpu"):
    """Train a compact student on the physics loss plus lambda x the KD-PINN distillation term.
    Returns the student (on the CPU); its training history is on `.history`."""
    torch.manual_seed(config.seed)
    student = build_network(problem, config.network)
    term = DistillationTerm(problem, teacher, student, config, device)
    model, history = train_pinn(problem, config, extra_loss=term, checkpoint=checkpoint,
                                description=f"{problem.name} student (distilled)", progress=progress, model=student,
                                device=device)
    model.history = history
    return model


def train_student_scratch(problem, config: TrainConfig, checkpoint=None, progress=True, device="cpu"):
    """The control: the student's architecture and budget, trained without the teacher
    (a DistillConfig is accepted; its distillation settings are ignored)."""
    base = {f: getattr(config, f) for f in TrainConfig.__dataclass_fields__}
    model, history = train_pinn(problem, TrainConfig(**base), checkpoint=checkpoint,
                                description=f"{problem.name} student (scratch)", progress=progress, device=device)
    model.history = history
    return model
