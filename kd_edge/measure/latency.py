"""Quick latency of one problem's models on every backend, for the CLI's bench stage and report.

The rigorous, statistics-heavy suite is benchmarks/ (pytest-benchmark); this one takes a few
seconds per problem and reports medians.
"""

import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

import kd_edge
from kd_edge.measure.peers import onnx_session

BACKENDS = ("teacher_pytorch", "student_pytorch", "student_onnxruntime", "student_kd_edge_python",
            "student_kd_edge_cpp")


def median_seconds(call, seconds: float) -> float:
    """Median time of call() over repeated runs filling about `seconds` (at least 5 runs)."""
    call()
    times, deadline = [], time.perf_counter() + seconds
    while len(times) < 5 or time.perf_counter() < deadline:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def tool(name: str) -> str | None:
    """A kd-edge executable: beside this Python (the virtual environment's bin/), else on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name)


def cpu_name() -> str:
    """The CPU's model name, for labelling measurements."""
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def run_p50_us(artifact, n: int, iters: int, threads: int = 1) -> float:
    """The p50 in microseconds that one kd-edge-run process reports for `iters` calls of n points."""
    run = tool("kd-edge-run")
    if run is None:
        raise FileNotFoundError("kd-edge-run is not built: run `make build`")
    out = subprocess.run([run, "--artifact", str(artifact), "--batch", str(n), "--iters", str(iters), "--threads",
                          str(threads), "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)["p50_us"]


def cpp_median_seconds(artifact, n: int, threads: int, seconds: float, per_call: float) -> float | None:
    if tool("kd-edge-run") is None:
        return None
    iters = int(min(100_000, max(20, seconds / max(per_call, 1e-7))))
    return run_p50_us(artifact, n, iters, threads) * 1e-6


def measure_latency(problem, teacher, student, artifact, batch_sizes=(1, 64), threads: int = 1,
                    seconds: float = 0.2, progress: bool = True) -> list[dict]:
    """Rows {backend, n, median_us} for every backend at each batch size and at the full grid."""
    import torch

    torch.set_num_threads(threads)
    n_in = student.arch["n_inputs"]
    session = onnx_session(student, n_in, threads)
    solver = kd_edge.Solver(artifact, threads=1 if threads == 1 else 0, out_of_domain="flag")
    grid = len(problem.grid())
    rng = np.random.default_rng(0)
    rows = []
    sizes = sorted(set(batch_sizes) | {grid})
    for n in tqdm(sizes, desc=f"{problem.name} latency", disable=not progress):
        x = problem.sample(n, rng).astype(np.float32)
        xt = torch.from_numpy(x)
        y = np.empty((n, student.arch["n_outputs"]), np.float32)
        with torch.no_grad():
            timed = {
                "teacher_pytorch": median_seconds(lambda: teacher(xt), seconds),
                "student_pytorch": median_seconds(lambda: student(xt), seconds),
                "student_onnxruntime": median_seconds(lambda: session.run(None, {"x": x}), seconds),
                "student_kd_edge_python": median_seconds(lambda: solver.predict(x, out=y), seconds),
            }
        timed["student_kd_edge_cpp"] = cpp_median_seconds(artifact, n, threads, seconds,
                                                          timed["student_kd_edge_python"])
        rows += [{"backend": b, "n": n, "grid": n == grid, "median_us": None if t is None else t * 1e6}
                 for b, t in timed.items()]
    return rows
