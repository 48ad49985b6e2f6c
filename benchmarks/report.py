"""Turn pytest-benchmark JSONs into the latency table (markdown) and chart (PNG), adding the
C++ path measured by kd-edge-run on the same artifacts.

    .venv/bin/python benchmarks/report.py build/bench/latency-*.json   # writes build/bench/latency.{md,png}
"""

import json
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parent.parent / "build" / "bench" / "artifacts"
COLUMNS = ["teacher_pytorch", "student_pytorch", "student_onnxruntime", "student_kd_edge", "kd_edge_run_cpp"]
HEADERS = ["teacher, PyTorch", "student, PyTorch", "student, ONNX Runtime", "student, kd_edge.Solver",
           "student, kd-edge-run (C++) p50"]


def medians(paths):
    table = defaultdict(dict)  # (model, points, threads) -> backend -> seconds
    for path in paths:
        for bench in json.loads(Path(path).read_text())["benchmarks"]:
            info = bench["extra_info"]
            table[(info["model"], info["points"], info["threads"])][info["backend"]] = bench["stats"]["median"]
    return table


def add_cpp(table):
    run = shutil.which("kd-edge-run")
    for (model, points, threads), row in table.items():
        artifact = ARTIFACTS / model
        if run and artifact.is_dir():
            iters = 20000 if points < 1000 else 200
            out = subprocess.run([run, "--artifact", str(artifact), "--batch", str(points), "--iters", str(iters),
                                  "--threads", "1" if threads == 1 else "2", "--json"],
                                 check=True, capture_output=True, text=True).stdout
            row["kd_edge_run_cpp"] = json.loads(out)["p50_us"] * 1e-6


def fmt(seconds):
    return "-" if seconds is None else f"{seconds * 1e6:.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def markdown(table):
    lines = ["| model | N | threads | " + " | ".join(HEADERS) + " | kd-edge vs ONNX Runtime | kd-edge vs teacher |",
             "|---|---:|---:|" + "---:|" * (len(HEADERS) + 2)]
    for (model, points, threads), row in sorted(table.items()):
        ours = row.get("student_kd_edge")
        speedup = lambda peer: f"{row[peer] / ours:.1f}x" if ours and row.get(peer) else "-"  # noqa: E731
        lines.append(f"| {model} | {points:,} | {threads} | " + " | ".join(fmt(row.get(c)) for c in COLUMNS)
                     + f" | {speedup('student_onnxruntime')} | {speedup('teacher_pytorch')} |")
    return "\n".join(lines) + "\n"


def chart(table, path):
    grid = {k: v for k, v in table.items() if k[1] > 64 and k[2] == 2}
    models = sorted({k[0] for k in grid})
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(models)), 4))
    width = 0.8 / len(COLUMNS)
    for i, (column, label) in enumerate(zip(COLUMNS, HEADERS)):
        values = [next((row.get(column) for k, row in grid.items() if k[0] == m), None) or 0 for m in models]
        ax.bar([j + i * width for j in range(len(models))], [v * 1e3 for v in values], width, label=label)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(models))], models, rotation=20, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("ms per call (full reference grid, 2 threads)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(paths):
    table = medians(paths)
    add_cpp(table)
    out = Path(paths[0]).parent / "latency"
    text = markdown(table)
    out.with_suffix(".md").write_text(text)
    chart(table, out.with_suffix(".png"))
    print(text)
    print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main(sys.argv[1:] or sorted(str(p) for p in Path("build/bench").glob("latency*.json")))
