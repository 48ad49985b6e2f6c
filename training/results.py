"""The KD-PINN results table (markdown) from models/*/metrics.json.

    .venv/bin/python training/results.py                   # prints the table
    .venv/bin/python training/results.py --update-readme   # and writes it into README.md
"""

import sys

import json
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- results:begin (training/results.py --update-readme) -->", "<!-- results:end -->"
MODELS = Path(__file__).resolve().parent.parent / "models"
# relative L2 targets (teacher, distilled student) from the distillation issue
TARGETS = {"burgers": (1e-3, 1.5e-3), "allen_cahn": (1e-2, 1.5e-2)}
DEFAULT_TARGET = (1e-3, 2e-3)


def cell(entry, key="rel_l2"):
    return f"{entry[key]:.2e}" if entry else "-"


def mark(entry, target):
    return "" if not entry else " ✓" if entry["rel_l2"] <= target else " ✗"


def table() -> str:
    rows = ["| problem | teacher rel. L2 (RMSE) | student rel. L2 (RMSE) | student vs teacher | scratch rel. L2 | "
            "distilled beats scratch | multiply-adds teacher / student |",
            "|---|---|---|---:|---:|---|---:|"]
    for path in sorted(MODELS.glob("*/metrics.json")):
        m = json.loads(path.read_text())
        name = m["problem"]
        t, s, c = m.get("teacher"), m.get("student"), m.get("scratch")
        target_t, target_s = TARGETS.get(name, DEFAULT_TARGET)
        change = f"{m['student_vs_teacher_percent']['rel_l2']:+.0f}%" if "student_vs_teacher_percent" in m else "-"
        beats = {True: "yes", False: "no"}.get(m.get("distilled_beats_scratch"), "-")
        cost = f"{t['multiply_adds']:,} / {s['multiply_adds']:,}" if t and s else (f"{t['multiply_adds']:,} / -" if t else "-")
        rows.append(f"| {name} | {cell(t)} ({cell(t, 'rmse')}){mark(t, target_t)} | "
                    f"{cell(s)} ({cell(s, 'rmse')}){mark(s, target_s)} | {change} | {cell(c)} | {beats} | {cost} |")
    return "\n".join(rows) + "\n"


def update_readme(text: str):
    readme = README.read_text()
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    README.write_text(readme[:start] + "\n" + text + readme[end:])


if __name__ == "__main__":
    text = table()
    print(text, end="")
    if "--update-readme" in sys.argv[1:]:
        update_readme(text)
