"""Edge targets under emulation: every shipped student, compiled for aarch64, armv7 and riscv64,
runs through the runtime built for that target (the C API, kd-edge-predict) under qemu-user and
matches float64 PyTorch on its whole reference grid; a project outside the repository builds
against a bundle with find_package(kd_edge); the runtime built without the VM links no TVM.

Needs Debian's cross compilers and qemu-user (.ci/run installs them); skipped, naming them, without."""

import copy
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import kd_edge
from grid_tolerance import check_against_float64
from kd_edge.compiler.target import resolve_target
from kd_edge.deploy import build_runtime, bundle, cross_tools_missing
from kd_edge.deploy.runtime import SOURCE, toolchain_file

MODELS = SOURCE / "models"
STUDENTS = sorted(p.parent.name for p in MODELS.glob("*/student.pt"))
ARCHS = ["aarch64", "armv7", "riscv64", "riscv64-rvv"]


def need(target):
    missing = cross_tools_missing(target)
    if missing:
        pytest.skip(f"cross tests for {target} skipped: apt-get install {' '.join(missing)} (.ci/run installs them)")
    return resolve_target(target)


def emulated(spec, program, *args):
    """argv that runs a program built for spec here (qemu-user with the target's sysroot)."""
    prefix = [] if spec.is_host_arch else [spec.qemu, "-L", f"/usr/{spec.cross}"]
    prefix += ["-cpu", spec.qemu_cpu] if spec.qemu_cpu else []
    return prefix + [str(program), *map(str, args)]


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    """runtime(target) -> install prefix of the runtime built for it (fused only), once per arch."""
    built = {}

    def get(target):
        spec = need(target)
        if spec.arch not in built:
            built[spec.arch] = build_runtime(spec, prefix=tmp_path_factory.mktemp(f"runtime-{spec.arch}"), progress=False)
        return built[spec.arch]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("problem", STUDENTS)
def test_shipped_student_under_emulation(problem, arch, runtime, tmp_path):
    prefix = runtime(arch)
    spec = resolve_target(arch)  # riscv64-rvv runs on the riscv64 runtime, under qemu with V
    student = kd_edge.load_model(MODELS / problem / "student.pt")
    points, _ = student.problem.reference_grid()
    x = np.ascontiguousarray(points, dtype=np.float32)
    artifact = kd_edge.compile(student, torch.zeros(4, x.shape[1]), tmp_path / "artifact", target=arch, progress=False)
    x.tofile(tmp_path / "in.f32")
    run = subprocess.run(emulated(spec, prefix / "bin" / "kd-edge-predict", artifact, tmp_path / "in.f32",
                                  tmp_path / "out.f32"), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    compiled = np.fromfile(tmp_path / "out.f32", dtype=np.float32).reshape(len(x), -1)
    with torch.no_grad():
        exact = copy.deepcopy(student).double()(torch.from_numpy(x).double()).numpy()
    check_against_float64(student, x, compiled, exact)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["host", "aarch64"])
def test_a_project_outside_builds_against_a_bundle(target, tmp_path):
    spec = need(target)
    out = bundle("burgers", target, tmp_path / "bundle", progress=False)
    for path in ["artifact/manifest.json", "artifact/model.so", "lib/libkd_edge.so", "include/kd_edge/solver.hpp",
                 "lib/cmake/kd_edge/kd_edgeConfig.cmake", "lib/pkgconfig/kd_edge.pc", "bin/kd-edge-run",
                 "bin/kd-edge-predict", "bin/kd-edge-control-loop", "README.md"]:
        assert (out / path).exists(), path
    # the bundle runs where it is copied: move it, then build a separate project against the copy
    moved = tmp_path / "elsewhere" / "bundle"
    shutil.move(out, moved)
    build = tmp_path / "consumer"
    configure = ["cmake", "-S", SOURCE / "examples" / "consumer", "-B", build, f"-DCMAKE_PREFIX_PATH={moved}"]
    chain = toolchain_file(spec)
    if chain is not None:
        configure.append(f"-DCMAKE_TOOLCHAIN_FILE={chain}")
    for command in (configure, ["cmake", "--build", build]):
        done = subprocess.run(list(map(str, command)), capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    run = subprocess.run(emulated(spec, build / "consumer", moved / "artifact"), capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    name, value = run.stdout.split()
    student = kd_edge.load_model(MODELS / "burgers" / "student.pt")
    centre = torch.tensor([[(lo + hi) / 2 for lo, hi in zip(student.problem.lower, student.problem.upper)]])
    with torch.no_grad():
        assert name == "u" and float(value) == pytest.approx(float(student(centre)), abs=1e-5)
    # the tools run from the moved tree too (RUNPATH $ORIGIN/../lib)
    tool = subprocess.run(emulated(spec, moved / "bin" / "kd-edge-run", "--artifact", moved / "artifact", "--iters",
                                   "50", "--json"), capture_output=True, text=True, timeout=120)
    assert tool.returncode == 0 and '"p50_us"' in tool.stdout, tool.stderr
    if target == "aarch64":  # the deployable part: runtime + model, stripped (goal: 512 KB)
        size = (moved / "lib" / "libkd_edge.so").stat().st_size + (moved / "artifact" / "model.so").stat().st_size
        assert size <= 512 * 1024, f"runtime + model {size / 1024:.0f} KB"


def test_runtime_without_the_vm_links_no_tvm(runtime):
    prefix = runtime("host")
    libs = subprocess.run(["ldd", str(prefix / "lib" / "libkd_edge.so")], capture_output=True, text=True).stdout
    assert "libc.so" in libs and "tvm" not in libs.lower(), libs
    assert "tvm" not in subprocess.run(["ldd", str(prefix / "bin" / "kd-edge-run")], capture_output=True,
                                       text=True).stdout.lower()


def test_a_vm_artifact_is_refused_by_a_runtime_without_the_vm(runtime, tmp_path):
    prefix = runtime("host")

    class Softplus(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.softplus(x).sum(dim=1, keepdim=True)

    artifact = kd_edge.compile(Softplus(), torch.zeros(3, 2), tmp_path / "vm", backend="vm", progress=False)
    (tmp_path / "in.f32").write_bytes(np.zeros((1, 2), np.float32).tobytes())
    run = subprocess.run([str(prefix / "bin" / "kd-edge-predict"), str(artifact), str(tmp_path / "in.f32"),
                          str(tmp_path / "out.f32")], capture_output=True, text=True, env=dict(os.environ))
    assert run.returncode == 1
    assert "built without it: rebuild with -DKD_EDGE_WITH_VM=ON" in run.stderr, run.stderr
