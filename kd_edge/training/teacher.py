"""train_teacher: a high-capacity PINN trained on the physics alone."""

import torch

from kd_edge.training.config import TrainConfig
from kd_edge.training.evaluate import monitor
from kd_edge.training.models import build_network
from kd_edge.training.trainer import Trainer


def train_pinn(problem, config: TrainConfig, extra_loss=None, checkpoint=None, description="train",
               progress=True, model=None):
    """Physics-only training (plus an optional extra loss term); returns (model, history)."""
    torch.manual_seed(config.seed)
    model = model if model is not None else build_network(problem, config.network)
    trainer = Trainer(problem, model, config, extra_loss=extra_loss, evaluate=monitor(problem),
                      checkpoint=checkpoint, description=description, progress=progress)
    trainer.run()
    model.eval()
    return model, trainer.history


def train_teacher(problem, config: TrainConfig, checkpoint=None, progress=True):
    """Train a teacher PINN on `problem` (PDE residual + initial/boundary conditions, no data).
    Returns the trained module; its training history is on `.history`."""
    model, history = train_pinn(problem, config, checkpoint=checkpoint, description=f"{problem.name} teacher",
                                progress=progress)
    model.history = history
    return model
