"""Distil once more with changed student settings (the problem's config otherwise unchanged) and
compare with the shipped distilled and scratch students.

    .venv/bin/python training/ablation.py burgers --set student.match_derivatives=true [--threads 1]
    .venv/bin/python training/ablation.py navier_stokes_kovasznay --set student.distill_weight_final=0.0
"""

import argparse
import hashlib
import json
import time
from pathlib import Path

import torch

import kd_edge
from kd_edge.training import distill, evaluate
from kd_edge.training.pipeline import load_config

ROOT = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("problem")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="student.KEY=VALUE")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if not args.overrides or not all(o.startswith("student.") for o in args.overrides):
        parser.error("give one or more --set student.KEY=VALUE: the ablation changes the student's settings")
    torch.set_num_threads(args.threads)
    config = load_config(ROOT / "training" / "configs" / f"{args.problem}.toml", args.overrides)
    models = ROOT / "models" / args.problem
    teacher = kd_edge.load_model(models / "teacher.pt", problem=args.problem, kind="teacher")
    label = hashlib.sha256(" ".join(sorted(args.overrides)).encode()).hexdigest()[:10]
    start = time.time()
    student = distill(config["problem"], teacher, config["student"],
                      checkpoint=ROOT / "training" / "runs" / args.problem / f"ablation-{label}.ckpt")
    shipped = json.loads((models / "metrics.json").read_text())
    print(json.dumps({"problem": args.problem, "changed": args.overrides, "seconds": round(time.time() - start),
                      "rel_l2 with the change": evaluate(config["problem"], student),
                      "rel_l2 distilled (shipped)": shipped["student"]["rel_l2"],
                      "rel_l2 scratch (shipped)": shipped["scratch"]["rel_l2"]}, indent=2))


if __name__ == "__main__":
    main()
