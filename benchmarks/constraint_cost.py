"""What a hard constraint costs at run time: the wave's 3x20 student (random weights) plain, with
u = u0(x) + t^2 x (1 - x) N as the fused kernel's epilogue, and the same model through TVM's
Relax VM (where it went before the epilogue existed). One thread, kd_edge.Solver.predict(x, out=y).

    .venv/bin/python benchmarks/constraint_cost.py [--seconds 0.5]
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

import kd_edge
from kd_edge.measure.latency import median_seconds
from kd_edge.problems import get
from kd_edge.training import NetworkConfig, build_network

CASES = [("plain, fused", False, "auto"), ("constrained, fused", True, "auto"), ("constrained, Relax VM", True, "vm")]


def main(seconds: float):
    wave = get("wave_1d")
    print("| model | " + " | ".join(f"N = {n:,}" for n in (1, 64, 10_201)) + " |\n|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, hard, backend in CASES:
            torch.manual_seed(0)
            model = build_network(wave, NetworkConfig(width=20, depth=3, hard_constraints=hard)).eval()
            artifact = kd_edge.compile(model, torch.zeros(2, 2), Path(tmp) / backend / str(hard), backend=backend)
            solver = kd_edge.Solver(str(artifact), threads=1)
            cells = []
            for n in (1, 64, 10_201):
                x = np.random.default_rng(0).uniform(0, 1, (n, 2)).astype(np.float32)
                y = np.empty((n, 1), np.float32)
                cells.append(f"{median_seconds(lambda: solver.predict(x, out=y), seconds) * 1e6:,.2f} us")
            print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="time per measurement")
    main(parser.parse_args().seconds)
