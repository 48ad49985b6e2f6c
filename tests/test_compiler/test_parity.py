"""The compiled artifact computes what the PyTorch module computes, at any batch size."""

import numpy as np
import pytest
import torch

import kd_edge

# (n_inputs, n_outputs, width, depth, activation): 1-5 inputs, 1-3 outputs, shallow to deep.
MODELS = [
    (1, 1, 8, 1, "sin"),
    (2, 1, 20, 4, "tanh"),
    (2, 3, 10, 8, "sin"),
    (3, 2, 16, 6, "tanh"),
    (4, 1, 64, 2, "sin"),
    (5, 3, 32, 3, "tanh"),
]
POINTS = [1, 7, 1000, 25_600]


def torch_reference(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("shape", MODELS, ids=lambda s: "mlp_{}_{}_w{}_d{}_{}".format(*s))
def test_matches_pytorch_at_every_batch_size(compiled, shape):
    model, artifact = compiled(*shape)
    solver = kd_edge.Solver(str(artifact))  # one artifact, one solver, every batch size
    rng = np.random.default_rng(1)
    for n in POINTS:
        x = rng.uniform(-3, 3, size=(n, shape[0])).astype(np.float32)
        y = solver.predict(x)
        assert y.shape == (n, shape[1]) and y.dtype == np.float32
        np.testing.assert_allclose(y, torch_reference(model, x), rtol=0, atol=1e-5)


def test_batch_sizes_in_any_order_reuse_one_library(compiled):
    model, artifact = compiled()
    library = artifact / "model.so"
    stamp = (library.stat().st_mtime_ns, kd_edge._runtime.sha256_file(str(library)))
    solver = kd_edge.Solver(str(artifact))
    rng = np.random.default_rng(2)
    for n in [25_600, 3, 1, 4096, 2, 1000]:
        x = rng.normal(size=(n, 2)).astype(np.float32)
        np.testing.assert_allclose(solver.predict(x), torch_reference(model, x), rtol=0, atol=1e-5)
    assert (library.stat().st_mtime_ns, kd_edge._runtime.sha256_file(str(library))) == stamp


def test_compile_from_a_single_point_example_keeps_batch_dynamic(tmp_path):
    from kd_edge.networks import MLP

    torch.manual_seed(0)
    model = MLP(2, 1, 8, 2).eval()
    solver = kd_edge.Solver(str(kd_edge.compile(model, torch.zeros(1, 2), tmp_path)))
    x = np.random.default_rng(3).normal(size=(50, 2)).astype(np.float32)
    np.testing.assert_allclose(solver.predict(x), torch_reference(model, x), rtol=0, atol=1e-5)


def test_compile_leaves_the_module_in_its_training_mode(tmp_path):
    from kd_edge.networks import MLP

    model = MLP(2, 1, 4, 1).train()
    kd_edge.compile(model, torch.zeros(2, 2), tmp_path)
    assert model.training
