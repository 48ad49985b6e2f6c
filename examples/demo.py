"""`make demo`: compile a small MLP with TVM, check it against PyTorch, time it from Python and C++.

Prints what it measured. Artifacts go to build/demo/.
"""

import json
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

import kd_edge
from kd_edge.networks import MLP

OUT = Path(__file__).resolve().parent.parent / "build" / "demo"
POINTS = [1, 64, 25_600]


def median_seconds(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = MLP(2, 1, width=20, depth=4).eval()  # 2-20-20-20-20-1, the reference student shape
    print("model: MLP 2-20x4-1, tanh")

    start = time.perf_counter()
    artifact = kd_edge.compile(model, torch.zeros(8, 2), OUT / "mlp_2_20x4_1", input_names=["x", "t"],
                               output_names=["u"])
    runtime = json.loads((artifact / "manifest.json").read_text())["runtime"]
    print(f"compiled in {time.perf_counter() - start:.1f} s -> {artifact} (backend: {runtime['kind']}, "
          f"{runtime.get('multiply_adds', '?')} multiply-adds per point after folding the input scaling)")
    solver = kd_edge.Solver(str(artifact))
    vm = kd_edge.compile(model, torch.zeros(8, 2), OUT / "mlp_2_20x4_1_vm", backend="vm")

    rng = np.random.default_rng(0)
    print("\naccuracy, compiled vs PyTorch (max abs error):")
    for n in [1, 7, 1000, 25_600]:
        x = rng.uniform(-1, 1, size=(n, 2)).astype(np.float32)
        with torch.no_grad():
            err = np.abs(solver.predict(x) - model(torch.from_numpy(x)).numpy()).max()
        print(f"  N = {n:>6}: {err:.2e}")
        if err > 1e-5:
            raise SystemExit(f"compiled model differs from PyTorch by {err:.2e} at N = {n}")

    print("\nlatency per call, median (Python: time.perf_counter; C++: kd-edge-run):")
    print(f"  {'N':>6} | {'PyTorch eager':>13} | {'kd_edge.Solver':>14} | {'kd-edge-run p50':>15} | {'p99':>9}"
          f" | {'TVM VM (C++) p50':>16}")
    run = shutil.which("kd-edge-run")

    def cpp(path, n, repeats):
        return json.loads(subprocess.run([run, "--artifact", str(path), "--batch", str(n), "--iters", str(repeats),
                                          "--json"], check=True, capture_output=True, text=True).stdout)

    for n in POINTS:
        x = rng.uniform(-1, 1, size=(n, 2)).astype(np.float32)
        xt = torch.from_numpy(x)
        repeats = 2000 if n < 1000 else 50
        with torch.no_grad():
            t_torch = median_seconds(lambda: model(xt), repeats)
        t_solver = median_seconds(lambda: solver.predict(x), repeats)
        fused, generic = cpp(artifact, n, repeats * 5), cpp(vm, n, repeats)
        print(f"  {n:>6} | {t_torch * 1e6:>10.1f} us | {t_solver * 1e6:>11.1f} us | "
              f"{fused['p50_us']:>12.1f} us | {fused['p99_us']:>6.1f} us | {generic['p50_us']:>13.1f} us")
    print("\nkd-edge-run: the C++ runtime timing its own predict calls; the last column is the same model\n"
          "through TVM's generic Relax VM path (backend='vm'), for comparison.")


if __name__ == "__main__":
    main()
