"""Training stage: teacher PINNs, KD-PINN distillation and the from-scratch control."""

from kd_edge.training.config import DistillConfig, NetworkConfig, TrainConfig, from_dict, to_dict
from kd_edge.training.distill import distill, train_student_scratch
from kd_edge.training.evaluate import evaluate
from kd_edge.training.models import build_network, load_model, save_model
from kd_edge.training.teacher import train_teacher

__all__ = ["DistillConfig", "NetworkConfig", "TrainConfig", "build_network", "distill", "evaluate", "from_dict",
           "load_model", "save_model", "to_dict", "train_student_scratch", "train_teacher"]
