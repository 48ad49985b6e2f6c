"""Targets are data: presets resolve to the right architecture, features and SIMD width, a wrong
target or a missing cross compiler is a clear error, and an artifact for another CPU is refused
before its library is loaded, naming both sides."""

import json
import shutil

import numpy as np
import pytest
import torch

import kd_edge
from kd_edge.compiler.target import PRESETS, host_arch, resolve_target
from kd_edge.networks import MLP

EXPECTED = {  # target -> (arch, a feature it must record, SIMD lanes)
    "aarch64": ("aarch64", "asimd", 4), "cortex-a53": ("aarch64", "asimd", 4), "cortex-a72": ("aarch64", "asimd", 4),
    "cortex-a76": ("aarch64", "asimddp", 4), "cortex-a78ae": ("aarch64", "asimddp", 4),
    "neoverse-n1": ("aarch64", "asimddp", 4), "armv7": ("armv7", "neon", 4), "riscv64": ("riscv64", "d", 4),
    "riscv64-rvv": ("riscv64", "v", 4), "x86-64-v3": ("x86_64", "avx2", 8), "x86-64-v4": ("x86_64", "avx512f", 16),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_presets_resolve(name):
    arch, feature, lanes = EXPECTED[name]
    spec = resolve_target(name)
    assert (spec.arch, spec.lanes) == (arch, lanes) and feature in spec.features
    assert spec.manifest_entry()["arch"] == arch
    if arch != "x86_64":
        assert spec.tvm_target["mtriple"] == PRESETS[name].triple and spec.cross and spec.qemu


MICROCONTROLLERS = {  # target -> (arch, LLVM triple, qemu board)
    "cortex-m4f": ("armv7em", "thumbv7em-none-eabihf", "mps2-an386"),
    "cortex-m7": ("armv7em", "thumbv7em-none-eabihf", "mps2-an500"),
    "cortex-m33": ("armv8m", "thumbv8m.main-none-eabihf", "mps2-an505"),
}


@pytest.mark.parametrize("name", sorted(MICROCONTROLLERS))
def test_microcontroller_presets_resolve(name):
    spec = resolve_target(name)
    assert (spec.arch, spec.triple, spec.qemu_machine) == MICROCONTROLLERS[name]
    assert spec.bare_metal and spec.cross == "arm-none-eabi" and spec.tvm_target["mfloat-abi"] == "hard"
    assert f"-mcpu={spec.cpu}" in spec.gcc_flags and not spec.is_host_arch


def test_every_preset_is_covered():
    assert set(PRESETS) == set(EXPECTED) | set(MICROCONTROLLERS) | {"host"}


def test_a_dict_names_any_llvm_target():
    spec = resolve_target({"triple": "aarch64-linux-gnu", "cpu": "cortex-a55", "features": ["+neon"]})
    assert (spec.arch, spec.cpu, spec.cross) == ("aarch64", "cortex-a55", "aarch64-linux-gnu")
    assert "asimd" in spec.features


@pytest.mark.parametrize("target, message", [
    ("gpu", "unknown target 'gpu'; valid targets: host, x86-64-v3, x86-64-v4, aarch64"),
    ({"cpu": "cortex-a72"}, "a target dict needs 'triple' and 'cpu'"),
    ({"triple": "aarch64-linux-gnu", "cpu": "cortex-a72", "simd": 4}, r"unknown target key\(s\) \['simd'\]"),
    ({"triple": "aarch64-linux-gnu", "cpu": "cortex-a72", "features": ["neon"]}, "LLVM attributes like '\\+neon'"),
    ({"triple": "mips-linux-gnu", "cpu": "mips32"}, "cannot tell the architecture of triple 'mips-linux-gnu'"),
])
def test_bad_targets_are_refused(target, message):
    with pytest.raises(ValueError, match=message):
        resolve_target(target)


def test_a_missing_cross_compiler_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="aarch64-linux-gnu-g\\+\\+, which is not installed: "
                                           "apt-get install g\\+\\+-aarch64-linux-gnu"):
        kd_edge.compile(MLP(2, 1, 8, 1).eval(), torch.zeros(3, 2), tmp_path / "a", target="cortex-a72")
    assert not (tmp_path / "a").exists()  # refused before anything was written


def test_a_model_that_needs_the_vm_is_refused_for_another_arch(tmp_path):
    class Softplus(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.softplus(x).sum(dim=1, keepdim=True)

    other = "riscv64" if host_arch() != "riscv64" else "aarch64"
    with pytest.raises(ValueError, match=f"target '{other}' .*Relax VM, which kd-edge builds for the host only"):
        kd_edge.compile(Softplus(), torch.zeros(3, 2), tmp_path / "a", target=other)


@pytest.mark.skipif(shutil.which("riscv64-linux-gnu-g++") is None and shutil.which("aarch64-linux-gnu-g++") is None,
                    reason="needs a cross compiler: apt-get install g++-aarch64-linux-gnu (.ci/run installs it)")
def test_an_artifact_for_another_arch_is_refused_before_loading(tmp_path):
    target = "aarch64" if shutil.which("aarch64-linux-gnu-g++") and host_arch() != "aarch64" else "riscv64"
    artifact = kd_edge.compile(MLP(2, 1, 8, 1).eval(), torch.zeros(3, 2), tmp_path / "a", target=target)
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["target"]["arch"] == target and manifest["target"]["triple"].startswith(target)
    # a library that cannot even be mapped here would fail in dlopen; the refusal comes first and says why
    with pytest.raises(kd_edge.ArtifactError, match=f"library compiled for {target} \\(target \"{target}\", CPU "
                                                    f".*\\), this host is {host_arch()}: compile the model for target"):
        kd_edge.Solver(artifact)


def test_missing_cpu_features_name_the_portable_target(tmp_path):
    artifact = kd_edge.compile(MLP(2, 1, 8, 1).eval(), torch.zeros(3, 2), tmp_path / "a")
    path = artifact / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["target"]["features"].append("imaginary_isa")
    path.write_text(json.dumps(manifest))
    portable = {"x86_64": "x86-64-v3"}.get(host_arch(), host_arch())
    with pytest.raises(kd_edge.ArtifactError, match=f"needs features this host lacks: imaginary_isa "
                                                    f"\\(recompile with the portable target \"{portable}\"\\)"):
        kd_edge.Solver(artifact)
    assert kd_edge.Solver(kd_edge.compile(MLP(2, 1, 8, 1).eval(), torch.zeros(3, 2), tmp_path / "b",
                                          target="x86-64-v3" if host_arch() == "x86_64" else "host")).predict(
        np.zeros((1, 2), np.float32)).shape == (1, 1)
