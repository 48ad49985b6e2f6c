"""Models, artifacts and peers for the latency benchmarks (one compile per session)."""

import os
import sys
from pathlib import Path

os.environ.setdefault("TVM_NUM_THREADS", "2")  # the pool size, fixed for the process

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import kd_edge  # noqa: E402
from kd_edge.measure import onnx_session  # noqa: E402
from kd_edge.networks import MLP  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
THREADS = (1, 2)


def deepxde_fnn():
    """DeepXDE's own FNN (torch backend), 2-20x4-1 tanh: the reference MLP's shape."""
    import warnings

    os.environ.setdefault("DDE_BACKEND", "pytorch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dde = pytest.importorskip("deepxde")
    return dde.nn.FNN([2] + [20] * 4 + [1], "tanh", "Glorot normal")


def pina_residual():
    """PINA's ResidualFeedForward (the modified MLP's gating), 2-20x3-1 tanh."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = pytest.importorskip("pina.model")
    return model.ResidualFeedForward(2, 1, inner_size=20, n_layers=3)


def shipped_problems():
    return sorted(p.parent.name for p in (ROOT / "models").glob("*/student.pt"))


# The reference MLP, networks as PhysicsNeMo, DeepXDE and PINA build them (random weights, 2 inputs;
# plain PyTorch in tests/peer_networks.py where the framework is not installed or lacks a torch
# version), and every shipped student.
PEERS = ("physicsnemo_fc", "physicsnemo_fourier", "deepxde_resnet", "deepxde_fnn", "deepxde_msffn", "pina_residual")
CASES = ["reference_mlp", *PEERS] + shipped_problems()


class Case:
    """One model family: the student (and its teacher, if shipped), its artifact and ONNX sessions."""

    def __init__(self, name, tmp):
        if name == "reference_mlp" or name in PEERS:
            sys.path.insert(0, str(ROOT / "tests"))
            from peer_networks import FourierNet, FullyConnected, MsFFN, ResNet

            torch.manual_seed(0)
            self.student = {"reference_mlp": lambda: MLP(2, 1, 20, 4), "physicsnemo_fc": lambda: FullyConnected(2, 1),
                            "physicsnemo_fourier": lambda: FourierNet(2, 1), "deepxde_resnet": lambda: ResNet(2, 1),
                            "deepxde_fnn": deepxde_fnn, "deepxde_msffn": lambda: MsFFN(2, 1),
                            "pina_residual": pina_residual}[name]().eval()
            self.teacher = None
            self.grid_points = 25_600
            self.sample = lambda n, rng: rng.uniform(-1, 1, size=(n, 2)).astype(np.float32)
        else:
            self.student = kd_edge.load_model(ROOT / "models" / name / "student.pt")
            self.teacher = kd_edge.load_model(ROOT / "models" / name / "teacher.pt")
            problem = self.student.problem
            self.grid_points = len(problem.grid())
            self.sample = lambda n, rng: problem.sample(n, rng).astype(np.float32)
        width = self.student.arch["n_inputs"] if hasattr(self.student, "arch") else 2
        self.artifact = kd_edge.compile(self.student, torch.zeros(4, width), tmp / name)
        self.solvers = {1: kd_edge.Solver(str(self.artifact), threads=1), 2: kd_edge.Solver(str(self.artifact))}
        self.onnx = {t: onnx_session(self.student, width, t) for t in THREADS}

    def points(self, n):
        return self.sample(n, np.random.default_rng(0))


ARTIFACTS = ROOT / "build" / "bench" / "artifacts"  # kept for benchmarks/report.py's kd-edge-run rows


@pytest.fixture(scope="session")
def cases():
    made = {}

    def get(name):
        if name not in made:
            made[name] = Case(name, ARTIFACTS)
        return made[name]

    return get

