"""Training speed with 1 and N processes: Adam steps and L-BFGS iterations per second of a
problem's teacher (its shipped config), each process count using the whole machine (one
process: PyTorch's default threads; N: cores / N threads each, as `kd-edge train --nproc N`
sets). Times are the training time the model file records, without start-up.

    python benchmarks/distributed_training.py [--problem navier_stokes_taylor_green]
        [--nproc 1 2] [--adam 200] [--lbfgs 50] [--device cpu]

Writes build/bench/distributed_training.{json,md}."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from kd_edge.measure.latency import cpu_name

ROOT = Path(__file__).resolve().parent.parent


def train_seconds(problem: str, nproc: int, adam: int, lbfgs: int, device: str, out: Path) -> float:
    command = [sys.executable, "-m", "kd_edge.cli", "train", problem, "--out", str(out), "--quiet",
               "--device", device, "--set", f"teacher.adam_steps={adam}", "--set", f"teacher.lbfgs_steps={lbfgs}"]
    if nproc > 1:
        command += ["--nproc", str(nproc)]
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    model = torch.load(out / "models" / "teacher.pt", weights_only=False)
    return model["metrics"]["train_seconds"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--problem", default="navier_stokes_taylor_green")
    p.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    p.add_argument("--adam", type=int, default=200, help="Adam steps timed")
    p.add_argument("--lbfgs", type=int, default=50, help="L-BFGS iterations timed")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    bench = ROOT / "build" / "bench"
    rows = []
    for n in args.nproc:
        where = bench / "distributed" / f"{args.problem}-{n}"
        adam = train_seconds(args.problem, n, args.adam, 0, args.device, where / "adam")
        lbfgs = train_seconds(args.problem, n, 0, args.lbfgs, args.device, where / "lbfgs")
        rows.append({"processes": n, "adam_steps_per_s": args.adam / adam, "lbfgs_iterations_per_s": args.lbfgs / lbfgs,
                     "adam_seconds": adam, "lbfgs_seconds": lbfgs})
        print(f"{n} process(es): {rows[-1]['adam_steps_per_s']:.2f} Adam steps/s, "
              f"{rows[-1]['lbfgs_iterations_per_s']:.2f} L-BFGS iterations/s", flush=True)
    base = rows[0]
    lines = [f"{args.problem} teacher, {args.device}, {cpu_name()} ({os.cpu_count()} cores); "
             f"{args.adam} Adam steps, {args.lbfgs} L-BFGS iterations each", "",
             "| processes | Adam steps/s | L-BFGS iterations/s | vs 1 process (Adam, L-BFGS) |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['processes']} | {r['adam_steps_per_s']:.2f} | {r['lbfgs_iterations_per_s']:.2f} | "
                     f"{r['adam_steps_per_s'] / base['adam_steps_per_s']:.2f}x, "
                     f"{r['lbfgs_iterations_per_s'] / base['lbfgs_iterations_per_s']:.2f}x |")
    bench.mkdir(parents=True, exist_ok=True)
    (bench / "distributed_training.json").write_text(json.dumps({"problem": args.problem, "cpu": cpu_name(),
                                                                  "rows": rows}, indent=2) + "\n")
    (bench / "distributed_training.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
