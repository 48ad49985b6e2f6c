"""train_teacher: a high-capacity PINN trained on the physics alone."""

import torch

from kd_edge.training.config import TrainConfig, can_continue, changed_settings, to_dict
from kd_edge.training.evaluate import monitor
from kd_edge.training.models import build_network
from kd_edge.training.trainer import Trainer


def train_pinn(problem, config: TrainConfig, extra_loss=None, checkpoint=None, description="train",
               progress=True, model=None, start=None, device="cpu"):
    """Physics-only training (plus an optional extra loss term); returns (model, history), the
    model in float32 on the CPU wherever it trained (device: cpu, cuda, cuda:N). The model's
    .train_seconds is the training time, counting the runs before a resumed checkpoint, and
    .problem the problem.
    start: (step, history) of a finished run whose weights `model` holds, to continue from.
    Under torch.distributed (torchrun) the ranks train together; see kd_edge.training.parallel."""
    torch.manual_seed(config.seed)
    model = model if model is not None else build_network(problem, config.network)
    trainer = Trainer(problem, model, config, extra_loss=extra_loss, evaluate=monitor(problem),
                      checkpoint=checkpoint, description=description, progress=progress, device=device)
    if start is not None:
        trainer.warm_start(*start)
    trainer.run()
    model.to("cpu", torch.float32).eval()
    model.train_seconds = trainer.elapsed()
    model.problem = problem  # as kd_edge.load_model's modules: compile() names columns after the problem
    return model, trainer.history


def train_teacher(problem, config: TrainConfig, checkpoint=None, progress=True, start_from=None, device="cpu"):
    """Train a teacher PINN on `problem` (PDE residual + initial/boundary conditions, no data).
    start_from: a finished teacher (from load_model) whose config differs from `config` only by a
    smaller L-BFGS budget; training continues from its weights with fresh L-BFGS history.
    Returns the trained module; its training history is on `.history`."""
    start = None
    if start_from is not None:
        old = dict(start_from.info["config"])
        new = to_dict(config)
        if not can_continue(old, new):
            raise ValueError("a teacher continues only when its L-BFGS budget grows; changed: "
                             + ", ".join(changed_settings(old, new)))
        start = (old["adam_steps"] + old["lbfgs_steps"], list(start_from.info.get("history") or []))
    model, history = train_pinn(problem, config, checkpoint=checkpoint, description=f"{problem.name} teacher",
                                progress=progress, model=start_from, start=start, device=device)
    model.history = history
    return model
