"""Does matching the teacher's first derivatives help the student? Distil once more with
match_derivatives=True (the problem's config otherwise unchanged) and compare with the shipped
student and scratch student.

    .venv/bin/python training/ablation_derivatives.py burgers [--threads 1]
"""

import argparse
import dataclasses
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
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(ROOT / "training" / "configs" / f"{args.problem}.toml")
    models = ROOT / "models" / args.problem
    teacher = kd_edge.load_model(models / "teacher.pt", problem=args.problem, kind="teacher")
    start = time.time()
    student = distill(config["problem"], teacher, dataclasses.replace(config["student"], match_derivatives=True),
                      checkpoint=ROOT / "training" / "runs" / args.problem / "student_derivatives.ckpt")
    shipped = json.loads((models / "metrics.json").read_text())
    print(json.dumps({"problem": args.problem, "seconds": round(time.time() - start),
                      "rel_l2 with derivative matching": evaluate(config["problem"], student)["rel_l2"],
                      "rel_l2 distilled (shipped)": shipped["student"]["rel_l2"],
                      "rel_l2 scratch (shipped)": shipped["scratch"]["rel_l2"]}, indent=2))


if __name__ == "__main__":
    main()
