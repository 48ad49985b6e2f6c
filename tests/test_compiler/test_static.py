"""Static artifacts: a student as a C library. Every shipped student on an emulated Cortex-M4
board (qemu-system-arm's mps2-an386; the Burgers student also on mps2-an500, a Cortex-M7, and
mps2-an505, a Cortex-M33) against float64 PyTorch on its whole reference grid, with
no heap in the firmware; the generated header as C99 and C++17; the C wrapper's screening (on
the host, through the same generated code); two models in one program; a Linux static library
for aarch64 under qemu-user; and the errors.

Tolerance: tests/grid_tolerance.py's, as for every compiled artifact: 1e-5 from float64, or
twice ONNX Runtime's distance where float32 cannot get that close (wave: 3e-5, where float32
PyTorch itself is 7e-6 off). Needs gcc-arm-none-eabi and qemu-system-arm (.ci/run installs
them); skipped, naming them, without."""

import copy
import ctypes
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch

import kd_edge
from peer_networks import ModifiedMLP, TwoBranches
from grid_tolerance import check_against_float64
from kd_edge.compiler.static import STATUS
from kd_edge.compiler.target import resolve_target
from kd_edge.deploy.firmware import firmware_tools_missing, run_on_board
from kd_edge.deploy.runtime import SOURCE

STUDENTS = sorted(p.parent.name for p in (SOURCE / "models").glob("*/student.pt"))
FLAG, CLAMP, REJECT = 0, 1, 2


def need_board(target="cortex-m4f"):
    missing = firmware_tools_missing(target)
    if missing:
        pytest.skip(f"microcontroller tests skipped: apt-get install {' '.join(missing)} (.ci/run installs them)")


def student(problem):
    return kd_edge.load_model(SOURCE / "models" / problem / "student.pt", problem=problem, kind="student")


def compile_static(model, out, **kwargs):
    return kd_edge.compile(model, torch.zeros(4, len(model.problem.inputs)), out, progress=False, **kwargs)


def float64(model, x):
    with torch.no_grad():
        return copy.deepcopy(model).double()(torch.from_numpy(x).double()).numpy()


@pytest.mark.slow
@pytest.mark.parametrize("problem", STUDENTS)
def test_shipped_student_on_an_emulated_cortex_m4(problem, tmp_path):
    need_board()
    model = student(problem)
    artifact = compile_static(model, tmp_path / "artifact", target="cortex-m4f")
    runtime = json.loads((artifact / "manifest.json").read_text())["runtime"]
    assert runtime["kind"] == "static" and runtime["kernel"] == "loop" and runtime["undefined_symbols"] == []
    x = model.problem.reference_grid()[0].astype(np.float32)
    result = run_on_board(artifact, x, work=tmp_path / "firmware", repeat=1)
    assert result["status"] == 0  # every grid point is inside the domain
    check_against_float64(model, x, result["outputs"], float64(model, x))
    assert result["heap_symbols"] == []  # the map file: no malloc, free, sbrk
    assert 0 < result["stack_bytes"] <= 2048
    assert runtime["flash_bytes"] <= 32 * 1024


@pytest.mark.parametrize("target", ["cortex-m7", "cortex-m33"])
def test_cortex_m7_and_m33_boards_run_the_burgers_student(target, tmp_path):
    need_board(target)
    model = student("burgers")
    artifact = compile_static(model, tmp_path / "artifact", target=target)
    x = np.random.default_rng(0).uniform(*model.problem.bounds, (200, 2)).astype(np.float32)
    result = run_on_board(artifact, x, work=tmp_path / "firmware", repeat=1)
    check_against_float64(model, x, result["outputs"], float64(model, x))
    assert result["heap_symbols"] == []


def test_a_gated_network_on_an_emulated_cortex_m4(tmp_path):
    """The loop kernel's product layers (the modified MLP) and branches on the board."""
    need_board()
    torch.manual_seed(2)
    model = ModifiedMLP(width=12).eval()
    artifact = kd_edge.compile(model, torch.zeros(4, 2), tmp_path / "artifact", target="cortex-m4f", progress=False)
    x = np.random.default_rng(1).uniform(-1, 1, (64, 2)).astype(np.float32)
    result = run_on_board(artifact, x, work=tmp_path / "firmware", repeat=1)
    np.testing.assert_allclose(result["outputs"], float64(model, x), rtol=0, atol=1e-5)
    assert result["heap_symbols"] == []


@pytest.mark.parametrize("target", ["cortex-m4f", "cortex-m7", "cortex-m33", "host"])
def test_the_header_compiles_as_c99_and_cxx17(target, tmp_path):
    spec = resolve_target(target)
    prefix = f"{spec.cross}-" if spec.cross else ""
    if target != "host":
        need_board("cortex-m4f")
    artifact = compile_static(student("heat_2d"), tmp_path / "artifact", target=target, static=True)
    source = tmp_path / "use.c"
    source.write_text('#include "heat_2d_student.h"\n'
                      "static const char* const names[] = HEAT_2D_STUDENT_INPUT_NAMES;\n"
                      "static const float lower[] = HEAT_2D_STUDENT_DOMAIN_LOWER;\n"
                      "int use(const float* in, float* out);\n"
                      "int use(const float* in, float* out) {\n"
                      "  kd_edge_static_report report;\n"
                      "  int s = heat_2d_student_predict_ex(in, 1, out, KD_EDGE_STATIC_CLAMP, 1, &report);\n"
                      "  return s + (int)sizeof names + (int)lower[0] + heat_2d_student_predict(in, 1, out);\n}\n")
    flags = ["-mthumb", "-mfloat-abi=hard", *spec.gcc_flags] if spec.bare_metal else []
    for compiler, standard in (("gcc", "-std=c99"), ("g++", "-std=c++17")):
        command = [f"{prefix}{compiler}", *flags, standard, "-Wall", "-Wextra", "-Werror", "-pedantic",
                   f"-I{artifact}", "-c", "-x", "c" if compiler == "gcc" else "c++", str(source), "-o",
                   str(tmp_path / f"use-{compiler}.o")]
        done = subprocess.run(command, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def host_library(tmp_path_factory):
    """The burgers student as a host static library, loaded through a shared object built from it."""
    root = tmp_path_factory.mktemp("static-host")
    model = student("burgers")
    artifact = compile_static(model, root / "artifact", static=True)
    shared = root / "libmodel.so"
    subprocess.run(["gcc", "-shared", "-o", shared, "-Wl,--whole-archive", artifact / "libburgers_student.a",
                    "-Wl,--no-whole-archive"], check=True)
    lib = ctypes.CDLL(str(shared))
    lib.burgers_student_predict_ex.restype = ctypes.c_int
    lib.burgers_student_predict_ex.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_int,
                                               ctypes.c_int, ctypes.c_void_p]
    lib.burgers_student_predict.restype = ctypes.c_int
    lib.burgers_student_predict.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    return model, artifact, lib


class Report(ctypes.Structure):
    _fields_ = [("out_of_domain", ctypes.c_size_t), ("first_out_of_domain", ctypes.c_size_t),
                ("bad_point", ctypes.c_size_t), ("bad_column", ctypes.c_size_t)]


NONE = ctypes.c_size_t(-1).value


def predict(lib, x, policy=FLAG, check_outputs=1, n_out=1):
    x = np.ascontiguousarray(x, np.float32)
    y = np.full((len(x), n_out), np.nan, np.float32)
    report = Report()
    status = lib.burgers_student_predict_ex(x.ctypes.data, len(x), y.ctypes.data, policy, check_outputs,
                                            ctypes.byref(report))
    return status, y, report


def test_the_host_library_matches_pytorch_and_its_exports_are_only_the_entry_points(host_library):
    model, artifact, lib = host_library
    x = model.problem.reference_grid()[0].astype(np.float32)
    status, y, report = predict(lib, x)
    assert status == 0 and report.out_of_domain == 0 and report.first_out_of_domain == NONE
    check_against_float64(model, x, y, float64(model, x))
    y2 = np.zeros_like(y)
    assert lib.burgers_student_predict(x.ctypes.data, len(x), y2.ctypes.data) == 0 and np.array_equal(y, y2)
    exported = subprocess.run(["nm", "-g", "--defined-only", artifact / "libburgers_student.a"], capture_output=True,
                              text=True).stdout.split()
    assert sorted(s for s in exported if "predict" in s or "kernel" in s or "tvm" in s) == [
        "burgers_student_predict", "burgers_student_predict_ex"]


def test_screening_in_the_c_wrapper(host_library):
    model, _, lib = host_library
    inside = np.array([[0.1, 0.5], [-0.3, 0.2]], np.float32)
    outside = np.array([[0.1, 0.5], [1.5, 0.2], [-2.0, 0.9]], np.float32)  # x in [-1, 1]
    # NaN and Inf: nothing computed, the point and column named
    for bad in (np.nan, np.inf):
        x = inside.copy()
        x[1, 1] = bad
        status, _, report = predict(lib, x)
        assert status == STATUS["ERR_NONFINITE_INPUT"] and (report.bad_point, report.bad_column) == (1, 1)
    # flag: computed as they are, and counted
    status, y, report = predict(lib, outside, FLAG)
    assert status == 2 and report.out_of_domain == 2 and report.first_out_of_domain == 1
    np.testing.assert_allclose(y, float64(model, outside), atol=1e-5)
    # clamp: computed at the nearest point of the domain
    status, y, report = predict(lib, outside, CLAMP)
    clamped = np.clip(outside, *[b.astype(np.float32) for b in model.problem.bounds])
    assert status == 2 and report.out_of_domain == 2
    np.testing.assert_allclose(y, float64(model, clamped), atol=1e-5)
    # reject: nothing computed, the first offending point and column named
    status, y, report = predict(lib, outside, REJECT)
    assert status == STATUS["ERR_OUT_OF_DOMAIN"] and (report.bad_point, report.bad_column) == (1, 0)
    assert np.isnan(y).all()
    # bad arguments
    assert predict(lib, inside, policy=7)[0] == STATUS["ERR_ARGUMENT"]
    assert lib.burgers_student_predict_ex(None, 2, None, FLAG, 1, None) == STATUS["ERR_ARGUMENT"]
    assert lib.burgers_student_predict_ex(None, 0, None, FLAG, 1, None) == STATUS["OK"]  # nothing to do


def test_non_finite_outputs_are_refused(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    with torch.no_grad():
        net[2].weight.fill_(3e38)  # four of these overflow float32
        net[0].weight.fill_(1.0)
        net[0].bias.fill_(5.0)
    artifact = kd_edge.compile(net, torch.zeros(4, 2), tmp_path / "artifact", static=True, name="overflow",
                               progress=False)
    shared = tmp_path / "liboverflow.so"
    subprocess.run(["gcc", "-shared", "-o", shared, "-Wl,--whole-archive", artifact / "liboverflow.a",
                    "-Wl,--no-whole-archive"], check=True)
    lib = ctypes.CDLL(str(shared))
    x, y, report = np.zeros((3, 2), np.float32), np.zeros((3, 1), np.float32), Report()
    assert lib.overflow_predict_ex(ctypes.c_void_p(x.ctypes.data), ctypes.c_size_t(3), ctypes.c_void_p(y.ctypes.data),
                                   FLAG, 1, ctypes.byref(report)) == STATUS["ERR_NONFINITE_OUTPUT"]
    assert (report.bad_point, report.bad_column) == (0, 0)
    assert lib.overflow_predict_ex(ctypes.c_void_p(x.ctypes.data), ctypes.c_size_t(3), ctypes.c_void_p(y.ctypes.data),
                                   FLAG, 0, None) == 0  # unless asked not to check
    assert np.isinf(y).all()


MAIN = r"""
#include <stdio.h>
#include <string.h>
#include "burgers_student.h"
#include "heat_2d_student.h"
int main(void) {
  const float a[2] = {0.25f, 0.5f}, b[3] = {0.5f, 0.5f, 0.1f};
  float ya, yb;
  unsigned ua, ub;
  if (burgers_student_predict(a, 1, &ya) != 0 || heat_2d_student_predict(b, 1, &yb) != 0) return 1;
  memcpy(&ua, &ya, 4);
  memcpy(&ub, &yb, 4);
  printf("%08x %08x\n", ua, ub);
  return 0;
}
"""


@pytest.mark.parametrize("target", ["host", "aarch64"])
def test_two_models_link_into_one_linux_program(target, tmp_path):
    spec = resolve_target(target)
    if spec.cross and (shutil.which(f"{spec.cross}-gcc") is None or shutil.which(spec.qemu) is None):
        pytest.skip(f"cross tests for {target} skipped: apt-get install {spec.debian} qemu-user")
    libraries = []
    for problem in ("burgers", "heat_2d"):
        artifact = compile_static(student(problem), tmp_path / problem, target=target, static=True)
        libraries += [f"-I{artifact}", str(artifact / f"lib{problem}_student.a")]
    (tmp_path / "main.c").write_text(MAIN)
    program = tmp_path / "main"
    prefix = f"{spec.cross}-" if spec.cross else ""
    subprocess.run([f"{prefix}gcc", "-std=c99", "-O2", str(tmp_path / "main.c"), *libraries, "-o", str(program)],
                   check=True)
    run = [spec.qemu, "-L", f"/usr/{spec.cross}", str(program)] if spec.cross else [str(program)]
    bits = subprocess.run(run, capture_output=True, text=True, check=True).stdout.split()
    got = np.array([int(b, 16) for b in bits], np.uint32).view(np.float32)
    want = [float64(student("burgers"), np.array([[0.25, 0.5]], np.float32))[0, 0],
            float64(student("heat_2d"), np.array([[0.5, 0.5, 0.1]], np.float32))[0, 0]]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_the_desktop_runtime_refuses_a_static_artifact(host_library):
    from kd_edge._runtime import ArtifactError, Solver

    with pytest.raises(ArtifactError, match="a static artifact: libburgers_student.a and its header are linked"):
        Solver(str(host_library[1]))


@pytest.mark.parametrize("kwargs, message", [
    (dict(target="cortex-m4f", static=False), "target 'cortex-m4f' is a microcontroller: its artifacts are static"),
    (dict(static=True, backend="vm"), "a static artifact is the fused kernel in a C library"),
    (dict(static=True, tune_trials=3), "a static artifact's kernel is not tuned"),
    (dict(static=True, name="3d model"), "must be a C identifier"),
    (dict(static=True, name="kd_edge_x"), "not starting with kd_edge"),
    (dict(static="yes"), "static must be True, False or None"),
], ids=["mcu-not-static", "vm", "tuned", "bad-name", "reserved-name", "not-bool"])
def test_bad_static_settings_are_named(kwargs, message, tmp_path):
    with pytest.raises((ValueError, TypeError), match=message):
        compile_static(student("burgers"), tmp_path / "artifact", **kwargs)


def test_a_model_that_is_not_a_dense_chain_gets_no_static_artifact(tmp_path):
    with pytest.raises(ValueError, match="a static artifact needs a dense chain"):
        kd_edge.compile(TwoBranches(), torch.zeros(4, 2), tmp_path / "artifact", target="cortex-m4f", progress=False)


def test_firmware_needs_a_static_artifact(tmp_path):
    artifact = compile_static(student("burgers"), tmp_path / "artifact")  # a shared, loadable one
    with pytest.raises(ValueError, match="firmware links static ones"):
        run_on_board(artifact, np.zeros((1, 2), np.float32))


def test_a_microcontroller_bundle_builds_and_runs_its_control_loop(tmp_path):
    """kd-edge bundle for a Cortex-M4F: the artifact and the README's control loop, which its
    Makefile builds and runs in the emulated board."""
    need_board()
    from kd_edge.deploy import bundle

    out = bundle("burgers", "cortex-m4f", tmp_path / "m4", progress=False)
    done = subprocess.run(["make", "-C", str(out / "firmware"), "run"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    bits = [int(b, 16) for b in re.findall(r"^u ([0-9a-f]{8})", done.stdout + done.stderr, re.M)]
    x = np.array([[0.5, t] for t in (0.0, 0.25, 0.5, 0.75, 1.0)], np.float32)
    np.testing.assert_allclose(np.array(bits, np.uint32).view(np.float32), float64(student("burgers"), x)[:, 0],
                               atol=1e-5)
    assert "libburgers_student.a" in (out / "README.md").read_text()


def test_firmware_names_a_damaged_manifest(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="manifest.json is damaged: not a kd-edge manifest"):
        run_on_board(tmp_path, np.zeros((1, 2), np.float32))
    with pytest.raises(FileNotFoundError, match="no manifest.json in"):
        run_on_board(tmp_path / "missing", np.zeros((1, 2), np.float32))
