"""The KD-PINN results table and the validation table (markdown) from models/*/metrics.json.

    .venv/bin/python training/results.py                   # prints the tables
    .venv/bin/python training/results.py --update-readme   # and writes them into README.md
"""

import sys

import json
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- results:begin (training/results.py --update-readme) -->", "<!-- results:end -->"
VALIDATION_BEGIN = "<!-- validation:begin (training/results.py --update-readme) -->"
VALIDATION_END = "<!-- validation:end -->"
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


def validation_table() -> str:
    """Per problem: the shipped students' held-out physics loss and distance to the teacher (what
    selection may read) beside their reference errors (what it may not), and the recipes' numbers
    where every recipe is trained."""
    rows = ["| problem | physics loss: distilled / scratch | teacher gap: distilled / scratch | rel. L2: distilled / "
            "scratch | physics orders them as the reference does | recipes (physics loss, rel. L2; * shipped) |",
            "|---|---|---|---|---|---|"]
    for path in sorted(MODELS.glob("*/metrics.json")):
        m = json.loads(path.read_text())
        s, c = m.get("student"), m.get("scratch")
        if not (s and c and "validation" in s and "validation" in c):
            continue
        vs, vc = s["validation"], c["validation"]
        agree = (vs["physics"] < vc["physics"]) == (s["rel_l2"] < c["rel_l2"])
        recipes = []
        for family, entry in m.get("recipes", {}).items():
            recipes.append(f"{family}: " + ", ".join(
                f"{name}{'*' if name == entry['selected'] else ''} {r['validation']['physics']:.2e} {r['rel_l2']:.2e}"
                for name, r in entry["recipes"].items()))
        rows.append(f"| {m['problem']} | {vs['physics']:.2e} / {vc['physics']:.2e} | "
                    f"{vs.get('teacher_gap', float('nan')):.2e} / {vc.get('teacher_gap', float('nan')):.2e} | "
                    f"{s['rel_l2']:.2e} / {c['rel_l2']:.2e} | {'yes' if agree else 'no'} | "
                    f"{'; '.join(recipes) or 'not trained yet'} |")
    return "\n".join(rows) + "\n"


def update_readme(text: str, begin: str = BEGIN, end: str = END):
    readme = README.read_text()
    start, stop = readme.index(begin) + len(begin), readme.index(end)
    README.write_text(readme[:start] + "\n" + text + readme[stop:])


if __name__ == "__main__":
    text, validation = table(), validation_table()
    print(text, end="")
    print()
    print(validation, end="")
    if "--update-readme" in sys.argv[1:]:
        update_readme(text)
        update_readme(validation, VALIDATION_BEGIN, VALIDATION_END)
