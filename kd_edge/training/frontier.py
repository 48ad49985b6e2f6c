"""The size frontier: students of several sizes, each distilled with the problem's selected
recipe, so that a user can pick the most accurate student that fits a latency budget.

Each size is the shipped student's config (its selected recipe included) with another depth and
width; the size the shipped student has is that student, not trained again. Files:
models/<problem>/frontier/<depth>x<width>.pt, each holding its reference errors (for reporting)
and validation numbers, as recipe files do.
"""

import dataclasses
import re
import shutil
from pathlib import Path

from kd_edge.training.config import DistillConfig, to_dict
from kd_edge.training.distill import distill
from kd_edge.training.recipes import recipe_config, save_trained
from kd_edge.training.models import load_model

SIZES = ((2, 10), (3, 20), (4, 40))  # (hidden layers, width): smaller and larger than most students


def parse_size(text: str) -> tuple[int, int]:
    """"4x40" -> (4, 40): hidden layers x width."""
    match = re.fullmatch(r"(\d+)x(\d+)", text.strip())
    if not match or int(match[1]) < 1 or int(match[2]) < 1:
        raise ValueError(f"a student size is <hidden layers>x<width>, like 3x20; got {text!r}")
    return int(match[1]), int(match[2])


def shipped_recipe(out: Path) -> str:
    """The recipe the shipped student was trained with ("paper" before recipes were selected)."""
    student = load_model(Path(out) / "student.pt", kind="student")
    return student.info["metrics"].get("recipe") or "paper"


def frontier_config(cfg: dict, out: Path, depth: int, width: int) -> DistillConfig:
    """The shipped student's config, its recipe applied, with `depth` hidden layers of `width`."""
    config = recipe_config(cfg["student"], "student", shipped_recipe(out))
    return dataclasses.replace(config, network=dataclasses.replace(config.network, depth=depth, width=width))


def frontier_file(out: Path, depth: int, width: int) -> Path:
    return Path(out) / "frontier" / f"{depth}x{width}.pt"


def train_frontier(cfg: dict, out: Path, runs: Path, depth: int, width: int, progress=True, device="cpu") -> Path:
    """Train the student of this size (resuming from its checkpoint) unless its file exists; the
    shipped student's own size is copied from student.pt."""
    problem, path = cfg["problem"], frontier_file(out, depth, width)
    if path.exists():
        return path
    config = frontier_config(cfg, out, depth, width)
    student = load_model(Path(out) / "student.pt", problem=problem.name, kind="student")
    if to_dict(config) == student.info["config"]:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(out) / "student.pt", path)
        return path
    teacher = load_model(Path(out) / "teacher.pt", problem=problem.name, kind="teacher")
    model = distill(problem, teacher, config, Path(runs) / f"frontier-{depth}x{width}.ckpt", progress, device)
    return save_trained(path, model, "student", problem, config, teacher, shipped_recipe(out),
                        round(model.train_seconds, 1), model.history)


def frontier_table(problem, out: Path) -> dict:
    """{"<depth>x<width>": {"multiply_adds", "rel_l2", "physics", "train_seconds", "shipped"}} for
    each trained size, from the numbers stored in the files."""
    shipped = (Path(out) / "student.pt").read_bytes()
    table = {}
    for path in sorted(Path(out).glob("frontier/*x*.pt"), key=lambda p: parse_size(p.stem)):
        model = load_model(path, problem=problem.name, kind="student")
        m = model.info["metrics"]
        table[path.stem] = {"multiply_adds": model.multiply_adds(), "rel_l2": m["rel_l2"],
                            "physics": m.get("validation", {}).get("physics"), "train_seconds": m.get("train_seconds"),
                            "recipe": m.get("recipe") or "paper", "shipped": path.read_bytes() == shipped}
    return table
