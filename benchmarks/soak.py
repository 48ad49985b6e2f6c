"""Soak test (by hand, not in CI): millions of predict calls, memory flat, outputs unchanged.

    .venv/bin/python benchmarks/soak.py [ARTIFACT] [--calls 10000000] [--batch 1]

Without ARTIFACT it compiles the reference 2-20x4-1 MLP. Every call's output is compared bit for
bit with the first; resident memory is sampled every tenth of the run. Exits 1 on any drift or on
memory growth beyond --max-growth-kib after the first sample.
"""

import argparse
import sys
import tempfile
import time

import numpy as np
import psutil
from tqdm import tqdm

import kd_edge


def reference_artifact(out_dir: str) -> str:
    import torch

    from kd_edge.networks import MLP

    torch.manual_seed(0)
    return str(kd_edge.compile(MLP(2, 1, 20, 4).eval(), torch.zeros(4, 2), out_dir))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("artifact", nargs="?")
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--max-growth-kib", type=int, default=256)
    args = parser.parse_args()

    artifact = args.artifact or reference_artifact(tempfile.mkdtemp(prefix="kd_edge_soak_"))
    solver = kd_edge.Solver(artifact, threads=1, max_batch=args.batch)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(args.batch, solver.n_inputs)).astype(np.float32)
    first = solver.predict(x)
    y = np.empty_like(first)
    process = psutil.Process()
    chunk = max(1, args.calls // 10)
    samples, drifted = [], 0
    start = time.perf_counter()
    for done in tqdm(range(0, args.calls, chunk), desc="soak", unit_scale=chunk, unit="call"):
        t0 = time.perf_counter()
        n = min(chunk, args.calls - done)
        for _ in range(n):
            solver.predict(x, y)
        per_call = (time.perf_counter() - t0) / n
        drifted += not np.array_equal(y, first)
        samples.append((done + n, process.memory_info().rss, per_call))
    elapsed = time.perf_counter() - start

    base = samples[0][1]
    print(f"{args.calls:,} calls of batch {args.batch} in {elapsed:.1f} s on {artifact}")
    print("calls        rss (MiB)   growth (KiB)   us/call")
    for calls, rss, per_call in samples:
        print(f"{calls:>12,} {rss / 2**20:10.1f} {(rss - base) / 1024:13.0f} {per_call * 1e6:9.2f}")
    growth = (samples[-1][1] - base) / 1024
    ok = drifted == 0 and growth <= args.max_growth_kib
    print(f"outputs identical to the first call: {drifted == 0}; memory growth after the first tenth: "
          f"{growth:.0f} KiB (limit {args.max_growth_kib}) -> {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
