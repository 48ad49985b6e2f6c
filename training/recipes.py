"""Train every distillation recipe and every scratch recipe of a problem, then ship the ones the
selection rule picks (kd_edge/training/recipes.py): models/<problem>/recipes/<family>-<recipe>.pt,
models/<problem>/student.pt and scratch.pt, metrics.json.

    .venv/bin/python training/recipes.py burgers                 # train what is missing (resumes), select
    .venv/bin/python training/recipes.py burgers heat_2d --jobs 2 # two recipes at a time, one thread each
    .venv/bin/python training/recipes.py --all --select-only      # re-derive the choice from the stored numbers

The teacher must exist (training/train.py PROBLEM --stage teacher). Checkpoints go to
training/runs/<problem>/ (not committed); a finished recipe's file is never retrained.
"""

import argparse
import json
import sys
from pathlib import Path

import torch

from kd_edge.training.pipeline import load_config, write_metrics
from kd_edge.training.processes import run_processes
from kd_edge.training.recipes import FAMILIES, recipe_file, select_recipes, train_recipe

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "training" / "configs"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("problems", nargs="*")
    parser.add_argument("--all", action="store_true", help="every problem that has a config")
    parser.add_argument("--family", choices=FAMILIES, action="append", help="only these (default: both)")
    parser.add_argument("--recipe", help="train this one recipe only (used by --jobs)")
    parser.add_argument("--jobs", type=int, default=1, help="recipes trained at once (each with 2 / jobs threads)")
    parser.add_argument("--select-only", action="store_true", help="train nothing: select from the stored numbers")
    parser.add_argument("--models", default=str(ROOT / "models"))
    parser.add_argument("--runs", default=str(ROOT / "training" / "runs"))
    args = parser.parse_args()
    if args.all == bool(args.problems):
        parser.error("name problems or pass --all")
    names = sorted(p.stem for p in CONFIGS.glob("*.toml")) if args.all else args.problems
    families = args.family or list(FAMILIES)
    torch.set_num_threads(max(1, 2 // args.jobs))
    for name in names:
        cfg = load_config(CONFIGS / f"{name}.toml")
        problem = cfg["problem"]
        out, runs = Path(args.models) / problem.name, Path(args.runs) / problem.name
        if not args.select_only:
            todo = [(f, r) for f in families for r in FAMILIES[f] if (args.recipe in (None, r))
                    and not recipe_file(out, f, r).exists()]
            if args.jobs > 1 and args.recipe is None:  # one process per recipe
                run_processes({f"{name} {family}-{recipe}": [
                    sys.executable, __file__, name, "--family", family, "--recipe", recipe, "--models", args.models,
                    "--runs", args.runs, "--jobs", str(args.jobs)] for family, recipe in todo}, args.jobs)
            else:
                for family, recipe in todo:
                    print(f"{name}: {family} recipe {recipe!r}", flush=True)
                    train_recipe(cfg, out, runs, family, recipe, device=cfg["device"])
            if args.recipe is not None:
                continue  # a worker of --jobs: the parent selects
        table = select_recipes(problem, out)
        for family, entry in table.items():
            print(f"{name}: {family} -> {entry['selected']!r} ("
                  + ", ".join(f"{r} {v['validation']['physics']:.3e}" for r, v in entry["recipes"].items()) + ")")
        if table:
            write_metrics(problem, out)
        missing = [f"{f}-{r}" for f in families for r in FAMILIES[f] if not recipe_file(out, f, r).exists()]
        if missing:
            print(f"{name}: not yet trained: {', '.join(missing)}")
    print(json.dumps({"done": names}))


if __name__ == "__main__":
    main()
