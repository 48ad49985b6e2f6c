"""The size frontier (kd_edge/training/frontier.py): students of several sizes distilled with each
problem's selected recipe, their accuracy against their kd-edge latency from C++, the teacher
beside them.

    .venv/bin/python training/frontier.py burgers heat_2d --jobs 2      # train what is missing (resumes)
    .venv/bin/python training/frontier.py burgers --measure             # train nothing; compile, time: frontier.json
    .venv/bin/python training/frontier.py --update-readme               # README table and docs/frontier.png

Sizes default to 2x10, 3x20 and 4x40 (--sizes); the shipped student's size is the shipped
student. Latency: kd-edge-run, one thread, the p50 of each of 3 processes, their median, at
N = 1 and on the problem's reference grid. Checkpoints go to training/runs/<problem>/.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from kd_edge.measure.latency import cpu_name, run_p50_us

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "training" / "configs"
BEGIN, END = "<!-- frontier:begin (training/frontier.py --update-readme) -->", "<!-- frontier:end -->"
PROCESSES = 3


def cpp_us(artifact: Path, n: int) -> float:
    """Median over PROCESSES kd-edge-run processes of their p50 (one process is one memory layout)."""
    return float(np.median([run_p50_us(artifact, n, 20000 if n == 1 else 30) for _ in range(PROCESSES)]))


def measure(problem_name: str, models: Path) -> dict:
    """{"cpu", "grid_points", "rows": [{"model", "multiply_adds", "rel_l2", "n1_us", "grid_us"}]}."""
    import kd_edge
    from kd_edge.training.frontier import frontier_table

    out = models / problem_name
    problem = kd_edge.problems.get(problem_name)
    table = frontier_table(problem, out)
    grid = len(problem.reference_grid()[0])
    files = {"teacher": out / "teacher.pt", **{size: out / "frontier" / f"{size}.pt" for size in table}}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, path in files.items():
            model = kd_edge.load_model(path)
            artifact = kd_edge.compile(model, torch.zeros(4, len(problem.inputs)), Path(tmp) / label, progress=False)
            row = {"model": label, "multiply_adds": model.multiply_adds(), "rel_l2": model.info["metrics"]["rel_l2"],
                   "n1_us": cpp_us(artifact, 1), "grid_us": cpp_us(artifact, grid)}
            if label in table:
                row.update(physics=table[label]["physics"], shipped=table[label]["shipped"])
            rows.append(row)
            print(json.dumps({"problem": problem_name, **row}), flush=True)
    result = {"cpu": cpu_name(), "grid_points": grid, "processes": PROCESSES, "rows": rows}
    (out / "frontier.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def readme_table(models: Path) -> str:
    lines = ["| problem | model | multiply-adds | rel. L2 | kd-edge C++, N = 1 (us) | grid (us) |",
             "|---|---|---:|---:|---:|---:|"]
    for path in sorted(models.glob("*/frontier.json")):
        data = json.loads(path.read_text())
        for row in data["rows"]:
            name = row["model"] + (" (shipped)" if row.get("shipped") else "")
            lines.append(f"| {path.parent.name} | {name} | {row['multiply_adds']:,} | {row['rel_l2']:.2e} | "
                         f"{row['n1_us']:.2f} | {row['grid_us']:,.0f} ({data['grid_points']:,} points) |")
    return "\n".join(lines)


def chart(models: Path, path: Path):
    """Every problem's frontier side by side (the README's figure); kd-edge report draws each alone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kd_edge.report.figures import draw_frontier

    found = sorted(models.glob("*/frontier.json"))
    if not found:
        return
    fig, axes = plt.subplots(1, len(found), figsize=(4.2 * len(found), 3.6), squeeze=False)
    for ax, f in zip(axes[0], found):
        draw_frontier(ax, json.loads(f.read_text())["rows"], f.parent.name)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def update_readme(models: Path, readme: Path):
    text = readme.read_text()
    if BEGIN not in text:
        raise SystemExit(f"{readme} has no {BEGIN} marker")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{BEGIN}\n{readme_table(models)}\n{END}{tail}")
    chart(models, ROOT / "docs" / "frontier.png")


def main():
    import kd_edge
    from kd_edge.training.frontier import SIZES, frontier_file, parse_size, train_frontier
    from kd_edge.training.pipeline import load_config
    from kd_edge.training.processes import run_processes

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("problems", nargs="*")
    parser.add_argument("--sizes", nargs="+", default=[f"{d}x{w}" for d, w in SIZES])
    parser.add_argument("--jobs", type=int, default=1, help="sizes trained at once (each with 2 / jobs threads)")
    parser.add_argument("--measure", action="store_true", help="train nothing: compile and time every trained size")
    parser.add_argument("--update-readme", action="store_true", help="README table and docs/frontier.png")
    parser.add_argument("--models", default=str(ROOT / "models"))
    parser.add_argument("--runs", default=str(ROOT / "training" / "runs"))
    args = parser.parse_args()
    try:
        sizes = [parse_size(s) for s in args.sizes]
    except ValueError as e:
        parser.error(str(e))
    torch.set_num_threads(max(1, 2 // args.jobs))
    models = Path(args.models)
    for name in args.problems:
        cfg = load_config(CONFIGS / f"{name}.toml")
        out, runs = models / name, Path(args.runs) / name
        if args.measure:
            shipped = kd_edge.load_model(out / "student.pt").info["config"]["network"]
            train_frontier(cfg, out, runs, shipped["depth"], shipped["width"])  # a copy of the shipped student
            measure(name, models)
            continue
        todo = [s for s in sizes if not frontier_file(out, *s).exists()]
        if args.jobs > 1 and len(todo) > 1:  # one process per size
            run_processes({f"{name} {d}x{w}": [sys.executable, __file__, name, "--sizes", f"{d}x{w}", "--jobs",
                                                str(args.jobs), "--models", args.models, "--runs", args.runs]
                           for d, w in todo}, args.jobs)
        else:
            for depth, width in todo:
                print(f"{name}: student {depth}x{width}", flush=True)
                train_frontier(cfg, out, runs, depth, width, device=cfg["device"])
    if args.update_readme:
        update_readme(models, ROOT / "README.md")


if __name__ == "__main__":
    main()
