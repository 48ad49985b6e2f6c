"""Steady-state predict(x, out=y) from Python allocates nothing and takes no lock of its own.

A subprocess runs with csrc/tests/alloc_counter.c preloaded, which counts every malloc in the
process (interpreter included) and every pthread_mutex_lock of the calling thread across 10,000
calls. Batches of 256 points and more release the GIL, and CPython's GIL hand-off locks a mutex: those calls must
lock exactly as often as time.sleep(0), which releases the GIL the same way and does nothing else."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

COUNTER = Path(__file__).resolve().parents[2] / "csrc" / "tests" / "alloc_counter.c"

SCRIPT = textwrap.dedent("""
    import ctypes, sys, time
    import numpy as np
    import kd_edge
    counter = ctypes.CDLL(None)
    counter.kd_edge_test_allocations.restype = ctypes.c_size_t
    counter.kd_edge_test_thread_locks.restype = ctypes.c_size_t

    def counts():  # allocations anywhere, locks by this thread
        return counter.kd_edge_test_allocations(), counter.kd_edge_test_thread_locks()

    artifact, n, threads, residual = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    solver = kd_edge.Solver(artifact, threads=threads, max_batch=n, residual=residual)
    x = np.random.default_rng(0).uniform(-1, 1, size=(n, solver.n_inputs)).astype(np.float32)
    y = np.empty((n, solver.n_outputs), np.float32)
    predict = solver.predict

    def steady(call, *args):
        for _ in range(100):
            call(*args)
        for _ in range(3):
            counts()
        probe = counts(); start = counts()  # what reading the counters itself costs
        cost = (start[0] - probe[0], start[1] - probe[1])
        for _ in range(10_000):
            call(*args)
        end = counts()
        return end[0] - start[0] - cost[0], end[1] - start[1] - cost[1]

    print(*steady(predict, x, y))
    print(*steady(time.sleep, 0))
    probe = counts()
    np.zeros(100_000)
    print(counts()[0] - probe[0])
""")


@pytest.fixture(scope="module")
def counter_library(tmp_path_factory):
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.fail("a C compiler is needed to build the allocation counter")
    library = tmp_path_factory.mktemp("alloc") / "alloc_counter.so"
    subprocess.run([compiler, "-O2", "-shared", "-fPIC", str(COUNTER), "-o", str(library), "-ldl"], check=True)
    return library


@pytest.mark.parametrize("n, threads", [(1, 0), (4096, 1), (4096, 0)])
def test_predict_into_caller_array_allocates_nothing(compiled, counter_library, n, threads):
    _, artifact = compiled()
    env = dict(os.environ, LD_PRELOAD=str(counter_library))
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(artifact), str(n), str(threads), "off"], env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    steady, gil_only, control = run.stdout.strip().splitlines()
    allocations, locks = map(int, steady.split())
    gil_locks = int(gil_only.split()[1]) if n >= 256 else 0
    assert int(control) >= 1, "the counter did not see numpy's allocation: not interposed"
    assert allocations == 0, f"10,000 calls made {allocations} allocations"
    # A lock per call would add 10,000; a stray one comes from the interpreter's own housekeeping.
    assert abs(locks - gil_locks) <= 2, f"10,000 calls locked {locks} times; the GIL hand-off alone locks {gil_locks}"


@pytest.fixture(scope="module")
def residual_artifact(tmp_path_factory):
    import torch

    import kd_edge
    from kd_edge.deploy.runtime import SOURCE

    student = kd_edge.load_model(SOURCE / "models" / "burgers" / "student.pt")
    return kd_edge.compile(student, torch.zeros(4, 2), tmp_path_factory.mktemp("residual"), residual=True,
                           progress=False)


@pytest.mark.parametrize("n", [1, 4096])
def test_the_residual_screen_allocates_nothing(residual_artifact, counter_library, n):
    """residual="flag" on points half outside the trained domain (x, t in [-1, 1]): many are
    flagged, and counting them allocates nothing and locks nothing."""
    env = dict(os.environ, LD_PRELOAD=str(counter_library))
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(residual_artifact), str(n), "1", "flag"], env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    steady, gil_only, _ = run.stdout.strip().splitlines()
    allocations, locks = map(int, steady.split())
    gil_locks = int(gil_only.split()[1]) if n >= 256 else 0  # batches of 256 and more release the GIL
    assert allocations == 0 and abs(locks - gil_locks) <= 2, (allocations, locks, gil_locks)
