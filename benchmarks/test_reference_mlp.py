"""Latency of the reference MLP 2-20-20-20-20-1 through each backend, side by side in one run.

    make bench      (or: .venv/bin/python -m pytest benchmarks --benchmark-only)

Compare the rows of one run (ratios), not absolute times across machines.
"""

import io
import warnings

import numpy as np
import onnxruntime
import pytest
import torch

import kd_edge
from kd_edge.networks import MLP

THREADS = 2
POINTS = [1, 64, 25_600]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return MLP(2, 1, width=20, depth=4).eval()


@pytest.fixture(scope="module")
def solver(model, tmp_path_factory):
    return kd_edge.Solver(str(kd_edge.compile(model, torch.zeros(8, 2), tmp_path_factory.mktemp("mlp"))))


@pytest.fixture(scope="module")
def onnx_session(model):
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its own deprecation
        torch.onnx.export(model, (torch.zeros(4, 2),), buffer, input_names=["x"], output_names=["u"],
                          dynamic_axes={"x": {0: "n"}, "u": {0: "n"}}, dynamo=False)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = THREADS
    return onnxruntime.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])


def points(n):
    return np.random.default_rng(0).uniform(-1, 1, size=(n, 2)).astype(np.float32)


@pytest.mark.parametrize("n", POINTS)
def test_pytorch_eager(benchmark, model, n):
    torch.set_num_threads(THREADS)
    x = torch.from_numpy(points(n))
    benchmark.group = f"N={n}"
    with torch.no_grad():
        benchmark(model, x)


@pytest.mark.parametrize("n", POINTS)
def test_onnxruntime(benchmark, onnx_session, model, n):
    x = points(n)
    benchmark.group = f"N={n}"
    y = benchmark(onnx_session.run, None, {"x": x})[0]
    with torch.no_grad():
        np.testing.assert_allclose(y, model(torch.from_numpy(x)).numpy(), atol=1e-5)


@pytest.mark.parametrize("n", POINTS)
def test_kd_edge_solver(benchmark, solver, model, n):
    x = points(n)
    benchmark.group = f"N={n}"
    y = benchmark(solver.predict, x)
    with torch.no_grad():
        np.testing.assert_allclose(y, model(torch.from_numpy(x)).numpy(), atol=1e-5)
