"""What compile writes into manifest.json, and what it refuses to compile."""

import json
from pathlib import Path

import pytest
import torch

import kd_edge
from kd_edge.compiler import MANIFEST_FORMAT, resolve_target
from kd_edge.compiler.manifest import sha256_file, weights_sha256
from kd_edge.networks import MLP


def read_manifest(artifact: Path) -> dict:
    return json.loads((artifact / "manifest.json").read_text())


def test_manifest_describes_the_artifact(compiled):
    model, artifact = compiled(3, 2, 16, 6, "tanh")
    m = read_manifest(artifact)
    import tvm
    from tvm.target import codegen

    assert m["format"] == MANIFEST_FORMAT == kd_edge._runtime.MANIFEST_FORMAT
    assert m["library_sha256"] == sha256_file(artifact / m["library"])
    # the C++ runtime's own hash agrees with Python's
    assert kd_edge._runtime.sha256_file(str(artifact / m["library"])) == m["library_sha256"]
    assert (m["inputs"], m["input_width"]) == (["x0", "x1", "x2"], 3)
    assert (m["outputs"], m["output_width"]) == (["y0", "y1"], 2)
    assert m["dtype"] == "float32"
    assert m["tvm_version"] == tvm.__version__
    assert m["target"]["cpu"] == codegen.llvm_get_system_cpu()
    assert m["target"]["triple"] == codegen.llvm_get_system_triple()
    assert m["source"]["module_class"] == "kd_edge.networks.MLP"
    assert m["source"]["weights_sha256"] == weights_sha256(model)


def test_recorded_features_are_isa_flags_this_host_has():
    spec = resolve_target("host")
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    assert "sse4_2" in spec.features  # every x86-64 CPU kd-edge targets has it
    assert set(spec.features) <= flags
    assert not any(f.startswith(("fast-", "slow-", "prefer-")) for f in spec.features)  # no tuning flags


def test_weights_hash_follows_the_weights():
    torch.manual_seed(0)
    a = MLP(2, 1, 8, 2)
    b = MLP(2, 1, 8, 2)
    b.load_state_dict(a.state_dict())
    assert weights_sha256(a) == weights_sha256(b)
    with torch.no_grad():
        b.net[0].weight[0, 0] += 1e-6
    assert weights_sha256(a) != weights_sha256(b)


def test_names_label_the_columns(tmp_path):
    artifact = kd_edge.compile(MLP(2, 1, 4, 1), torch.zeros(2, 2), tmp_path, input_names=["x", "t"],
                               output_names=["u"])
    solver = kd_edge.Solver(str(artifact))
    assert (solver.input_names, solver.output_names) == (["x", "t"], ["u"])


class ReturnsVector(torch.nn.Module):
    def forward(self, x):
        return x.sum(dim=1)


@pytest.mark.parametrize("module, example, kwargs, error, message", [
    (MLP(2, 1), torch.zeros(4), {}, ValueError, r"shape \(n_points, n_inputs\), got \(4,\)"),
    (MLP(2, 1), torch.zeros(4, 2, dtype=torch.float64), {}, TypeError, "must be float32, got torch.float64"),
    (MLP(2, 1).double(), torch.zeros(4, 2), {}, TypeError, "parameter 'net.0.weight' is torch.float64"),
    (ReturnsVector(), torch.zeros(4, 2), {}, ValueError, r"one tensor of shape \(n_points, n_outputs\)"),
    (lambda x: x, torch.zeros(4, 2), {}, TypeError, "expects a torch.nn.Module"),
    (MLP(2, 1), torch.zeros(4, 2), {"input_names": ["x"]}, ValueError, "input has 1 names"),
    (MLP(2, 1), torch.zeros(4, 2), {"target": "gpu"}, ValueError, "unknown target .gpu.; valid targets: host, x86-64-v3"),
], ids=["1d-example", "float64-example", "float64-weights", "vector-output", "not-a-module", "names",
        "target"])
def test_compile_refuses_bad_input(tmp_path, module, example, kwargs, error, message):
    with pytest.raises(error, match=message):
        kd_edge.compile(module, example, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out" / "manifest.json").exists()
