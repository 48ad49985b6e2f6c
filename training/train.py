"""Reproduce models/<problem>/{teacher,student,scratch}.pt and metrics.json.

    .venv/bin/python training/train.py burgers                  # all stages, resuming where it stopped
    .venv/bin/python training/train.py poisson_2d heat_2d --threads 1
    .venv/bin/python training/train.py burgers --stage teacher
    .venv/bin/python training/train.py --all                    # every problem with a config
    .venv/bin/python training/train.py burgers --device cuda    # on a GPU
    .venv/bin/torchrun --standalone --nproc-per-node 2 training/train.py burgers   # 2 processes, data-parallel

Configs are training/configs/<problem>.toml. Checkpoints go to training/runs/ (not committed);
delete models/<problem>/<stage>.pt to retrain that stage.
"""

import argparse
import json
from pathlib import Path

import torch

from kd_edge.training.parallel import DEVICES, join, launched_by_torchrun, leave
from kd_edge.training.pipeline import STAGES, load_config, run, write_metrics

CONFIGS = Path(__file__).resolve().parent / "configs"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("problems", nargs="*", help="problems with a config in training/configs/")
    parser.add_argument("--all", action="store_true", help="every problem that has a config")
    parser.add_argument("--stage", action="append", choices=STAGES, help="train only this stage (repeatable)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (per process)")
    parser.add_argument("--device", choices=DEVICES, help="where training runs (default: the config's, cpu)")
    parser.add_argument("--models", default="models", help="where model files go")
    parser.add_argument("--metrics-only", action="store_true", help="only rewrite metrics.json from the model files")
    args = parser.parse_args()
    if args.all == bool(args.problems):
        parser.error("name problems or pass --all")
    torch.set_num_threads(args.threads)
    if launched_by_torchrun():
        join()
    names = sorted(p.stem for p in CONFIGS.glob("*.toml")) if args.all else args.problems
    for name in names:
        config = CONFIGS / f"{name}.toml"
        if not config.exists():
            known = ", ".join(sorted(p.stem for p in CONFIGS.glob("*.toml")))
            parser.error(f"no config {config}; configs exist for: {known}")
        if args.metrics_only:
            problem = load_config(config)["problem"]
            metrics = write_metrics(problem, Path(args.models) / problem.name)
        else:
            metrics = run(config, models_dir=args.models, stages=tuple(args.stage or STAGES), device=args.device)
        if metrics:  # rank 0's
            print(json.dumps({name: metrics}, indent=2))
    leave()


if __name__ == "__main__":
    main()
