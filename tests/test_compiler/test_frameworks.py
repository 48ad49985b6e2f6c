"""Networks built by the PINN frameworks themselves, where they install from the registry:
DeepXDE (pinned in requirements.txt, torch backend). PINA and PhysicsNeMo pull in Lightning and a
large stack; their architectures are tested in plain PyTorch (tests/peer_networks.py)."""

import json
import os
import warnings

import numpy as np
import pytest
import torch

import kd_edge

os.environ.setdefault("DDE_BACKEND", "pytorch")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    dde = pytest.importorskip("deepxde", reason="apt/pip: DeepXDE is pinned in requirements.txt (make setup)")


def compiled(net, tmp_path):
    net.eval()
    artifact = kd_edge.compile(net, torch.zeros(4, 2), tmp_path / "a")
    return artifact, json.loads((artifact / "manifest.json").read_text())["runtime"]


def parity(net, artifact):
    x = np.random.default_rng(0).uniform(-1, 1, size=(200, 2)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(kd_edge.Solver(artifact).predict(x), net(torch.from_numpy(x)).numpy(),
                                   rtol=0, atol=1e-5)


@pytest.mark.parametrize("activation", ["tanh", "silu", "sin", "sigmoid", "relu"])
def test_deepxde_fnn_fuses(tmp_path, activation):
    torch.manual_seed(0)
    net = dde.nn.FNN([2] + [20] * 3 + [1], activation, "Glorot normal")
    artifact, runtime = compiled(net, tmp_path)
    assert runtime["kind"] == "fused" and runtime["layers"][0][2] == [activation]
    parity(net, artifact)


def test_deepxde_pfnn_runs_on_the_vm_with_the_reason(tmp_path):
    torch.manual_seed(0)
    net = dde.nn.PFNN([2, [20, 20], [20, 20], 2], "tanh", "Glorot normal")  # one sub-network per output
    with pytest.warns(kd_edge.compiler.build.FallbackWarning):
        artifact, runtime = compiled(net, tmp_path)
    assert runtime["kind"] == "vm" and "not the previous layer's output" in runtime["fallback_reason"]
    parity(net, artifact)
