"""Networks built by the PINN frameworks themselves, where they install from the registry:
DeepXDE and PINA, pinned in requirements.txt (DeepXDE's torch backend). PhysicsNeMo cannot be
installed here: its models package imports timm, which imports torchvision, and PyPI's torchvision
for Linux is built against CUDA torch (its operators need libc10_cuda.so; the CPU build is only on
download.pytorch.org). Its networks, and DeepXDE's TensorFlow-only ones, are tested in plain
PyTorch (tests/peer_networks.py, tests/test_compiler/test_kernel.py)."""

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
    dde = pytest.importorskip("deepxde", reason="DeepXDE is pinned in requirements.txt (make setup)")
    # PINA's imports trip deprecation warnings in torch_geometric and Lightning
    pina_model = pytest.importorskip("pina.model", reason="PINA is pinned in requirements.txt (make setup)")
    from pina.model.block import FourierFeatureEmbedding, PeriodicBoundaryEmbedding


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


def test_deepxde_pfnn_fuses_its_branches(tmp_path):
    torch.manual_seed(0)
    net = dde.nn.PFNN([2, [20, 20], [20, 20], 2], "tanh", "Glorot normal")  # one sub-network per output
    artifact, runtime = compiled(net, tmp_path)
    assert runtime["kind"] == "fused"
    assert any(len(layer) > 4 and "source" in layer[4] for layer in runtime["layers"])  # the second branch
    parity(net, artifact)


def pina_networks():
    torch.manual_seed(0)
    return {
        "feed_forward": pina_model.FeedForward(2, 1, inner_size=20, n_layers=3),
        "feed_forward_softplus": pina_model.FeedForward(2, 1, inner_size=20, n_layers=3, func=torch.nn.Softplus),
        "residual_feed_forward": pina_model.ResidualFeedForward(2, 1, inner_size=20, n_layers=3),  # gated
        "fourier_features": torch.nn.Sequential(FourierFeatureEmbedding(2, 20, sigma=2.0),
                                                pina_model.FeedForward(20, 1, inner_size=20, n_layers=2)),
        "periodic": torch.nn.Sequential(PeriodicBoundaryEmbedding(2, periods=2.0, output_dimension=8),
                                        pina_model.FeedForward(8, 1, inner_size=20, n_layers=2)),
    }


@pytest.mark.parametrize("name", list(pina_networks()))
def test_pina_networks_fuse(tmp_path, name):
    net = pina_networks()[name]
    artifact, runtime = compiled(net, tmp_path)
    assert runtime["kind"] == "fused"
    if name == "residual_feed_forward":
        assert sum(1 for layer in runtime["layers"] if len(layer) > 4 and "gate" in layer[4]) == 3
    parity(net, artifact)


def test_pina_gated_network_fuses_through_onnx(tmp_path):
    net = pina_networks()["residual_feed_forward"].eval()
    path = tmp_path / "net.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(4, 2),), str(path), dynamic_shapes=({0: torch.export.Dim("n")},),
                          dynamo=True, verbose=False)
    artifact = kd_edge.compile(path, out_dir=tmp_path / "a", progress=False)
    assert json.loads((artifact / "manifest.json").read_text())["runtime"]["kind"] == "fused"
    parity(net, artifact)
