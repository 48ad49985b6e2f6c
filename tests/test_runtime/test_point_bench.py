"""kd-edge-point-bench (benchmarks/cpp): its peers compute the same network as the solver, and
bad peer arguments get a clear message, not a crash."""

import ctypes.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kd_edge.measure.latency import tool
from kd_edge.measure.peers import onnx_bytes, onnxruntime_library

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from point_latency import write_eigen_weights  # noqa: E402

BENCH = tool("kd-edge-point-bench")
pytestmark = pytest.mark.skipif(BENCH is None, reason="kd-edge-point-bench is not built (make build)")


def run(*args):
    return subprocess.run([BENCH, *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def peers(compiled, tmp_path_factory):
    """The reference MLP (2-20x4-1) compiled, its Eigen weights and its ONNX graph."""
    model, artifact = compiled(2, 1, 20, 4, "tanh")
    out = tmp_path_factory.mktemp("peers")
    write_eigen_weights(model, 2, out / "eigen.txt")
    (out / "model.onnx").write_bytes(onnx_bytes(model, 2))
    return artifact, out / "eigen.txt", out / "model.onnx"


def test_every_peer_agrees_with_the_solver(peers):
    artifact, eigen, onnx = peers
    library = onnxruntime_library()
    assert library, "the onnxruntime wheel has no libonnxruntime.so"
    done = run("--artifact", artifact, "--eigen", eigen, "--onnx", onnx, "--onnxruntime", library,
               "--calls", 100, "--batches", "1,3,17", "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["rows"]
    backends = {r["backend"] for r in rows}
    assert {"kernel", "solver", "solver_unchecked", "c_api"} <= backends
    for r in rows:  # float32 with a fast tanh against float32 with libm's or Eigen's: a few ulp of 1
        assert r["max_abs_vs_solver"] <= 2e-6, r
        assert r["p50_ns"] > 0 and r["p99_ns"] >= r["p50_ns"] and r["chained_ns"] > 0, r
    assert {r["n"] for r in rows} == {1, 3, 17}
    missing = {"eigen", "onnxruntime"} - backends
    if missing:
        pytest.skip("peer rows not built: " + "; ".join(line for line in done.stderr.splitlines() if "skipped" in line))


def test_a_library_that_is_not_onnxruntime_is_named_and_skipped(peers):
    artifact, _, onnx = peers
    done = run("--artifact", artifact, "--onnx", onnx, "--onnxruntime", ctypes.util.find_library("m") or "libm.so.6",
               "--calls", 100, "--batches", "1", "--json")
    assert done.returncode == 0, done.stderr
    if "built without ONNX Runtime" in done.stderr:
        pytest.skip(done.stderr.strip())
    assert "onnxruntime row skipped" in done.stderr and "has no OrtGetApiBase: not ONNX Runtime" in done.stderr
    assert "onnxruntime" not in {r["backend"] for r in json.loads(done.stdout)["rows"]}


def test_a_missing_onnx_model_is_named(peers, tmp_path):
    artifact, _, _ = peers
    library = onnxruntime_library()
    done = run("--artifact", artifact, "--onnx", tmp_path / "absent.onnx", "--onnxruntime", library,
               "--calls", 100, "--batches", "1")
    assert done.returncode == 0, done.stderr
    if "built without ONNX Runtime" in done.stderr:
        pytest.skip(done.stderr.strip())
    assert "onnxruntime row skipped: ONNX Runtime:" in done.stderr and "absent.onnx" in done.stderr


@pytest.mark.parametrize("args, message", [
    (["--onnx", "model.onnx"], "--onnx and --onnxruntime go together"),
    (["--calls", "5"], "--calls must be at least 100"),
    (["--frobnicate"], "unknown or incomplete argument: --frobnicate"),
])
def test_bad_arguments_are_usage_errors(peers, args, message):
    done = run("--artifact", peers[0], *args)
    assert done.returncode == 2 and message in done.stderr and "usage:" in done.stderr


def test_an_onnx_graph_matches_the_model():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)).eval()
    import onnxruntime

    x = torch.rand(7, 3)
    session = onnxruntime.InferenceSession(onnx_bytes(model, 3), providers=["CPUExecutionProvider"])
    y = session.run(None, {"x": x.numpy()})[0]
    assert y.shape == (7, 2) and abs(y - model(x).detach().numpy()).max() < 1e-6
