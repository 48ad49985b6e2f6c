"""Distillation recipes, the scratch control's recipes, and the rule that picks the shipped ones.

Every problem trains the same recipes from its config's [student] section, each a few settings
changed; the shipped student (and scratch student) is the recipe with the lowest physics loss on
held-out points (kd_edge.training.validation.select). The reference solution only reports.
"""

import dataclasses
import shutil
from pathlib import Path

from kd_edge.training.config import DistillConfig, to_dict
from kd_edge.training.distill import distill, train_student_scratch
from kd_edge.training.evaluate import evaluate
from kd_edge.training.models import load_model, save_model
from kd_edge.training.validation import select, validate

# name -> changes to the [student] settings (a callable: of the base config), in the order ties go.
DISTILLED = {
    "paper": {},  # KD-PINN as the config states it (lambda and T schedules)
    "derivatives": {"match_derivatives": True},  # also match the teacher's first derivatives
    "lambda_to_zero": {"distill_weight_final": 0.0},  # the teacher's weight falls to 0: physics has the last word
    "long": lambda c: {"lbfgs_steps": 2 * c.lbfgs_steps},  # twice the L-BFGS budget
}
SCRATCH = {  # the control: as many recipes, none using a teacher
    "plain": {},
    "more_points": lambda c: {"n_collocation": 2 * c.n_collocation},
    "conditions_1": {"condition_weight": 1.0},  # the conditions weighted 1 instead of the default 10
    "long": lambda c: {"lbfgs_steps": 2 * c.lbfgs_steps},
}
FAMILIES = {"student": DISTILLED, "scratch": SCRATCH}


def recipe_config(base: DistillConfig, family: str, name: str) -> DistillConfig:
    """The config a recipe trains with: the problem's [student] settings, changed."""
    recipes = FAMILIES[family]
    if name not in recipes:
        raise ValueError(f"unknown {family} recipe {name!r}; valid: {', '.join(recipes)}")
    change = recipes[name]
    return dataclasses.replace(base, **(change(base) if callable(change) else change))


def recipe_file(out: Path, family: str, name: str) -> Path:
    return Path(out) / "recipes" / f"{family}-{name}.pt"


def train_recipe(cfg: dict, out: Path, runs: Path, family: str, name: str, progress=True, device="cpu") -> Path:
    """Train one recipe (resuming from its checkpoint) unless its file exists; the file holds its
    reference errors (for reporting) and its validation numbers (for selection)."""
    problem, path = cfg["problem"], recipe_file(out, family, name)
    if path.exists():
        return path
    config = recipe_config(cfg["student"], family, name)
    teacher = load_model(Path(out) / "teacher.pt", problem=problem.name, kind="teacher")
    model = _made_before(cfg, out, family, config)
    if model is not None:  # training is reproducible: the same config gives these weights again
        seconds, history = model.info["metrics"].get("train_seconds"), model.info.get("history")
    else:
        checkpoint = Path(runs) / f"{family}-{name}.ckpt"
        if family == "student":
            model = distill(problem, teacher, config, checkpoint, progress, device)
        else:
            model = train_student_scratch(problem, config, checkpoint, progress, device)
        seconds, history = round(model.train_seconds, 1), model.history
    return save_trained(path, model, family, problem, config, teacher, name, seconds, history)


def save_trained(path: Path, model, family: str, problem, config: DistillConfig, teacher, recipe: str, seconds,
                 history) -> Path:
    """A trained student's file with its reference errors (for reporting), its recipe and its
    validation numbers (for selection)."""
    exact = problem.exact_conditions(config.network) if config.network.hard_constraints else ()
    metrics = dict(evaluate(problem, model), train_seconds=seconds, recipe=recipe,
                   validation=validate(problem, model, teacher, exact))
    return save_model(path, model, family, problem, to_dict(config), metrics, history)


def _made_before(cfg: dict, out: Path, family: str, config: DistillConfig):
    """The shipped <family>.pt if it was trained with exactly this recipe's config (the base
    recipe, before any selection), else None."""
    from kd_edge.training.pipeline import check_made_with

    path = Path(out) / f"{family}.pt"
    if not path.exists():
        return None
    model = load_model(path, problem=cfg["problem"].name, kind=family)
    if model.info["metrics"].get("recipe") is not None or to_dict(config) != to_dict(cfg["student"]):
        return None
    try:
        check_made_with(path, family, cfg, model)
    except ValueError:
        return None
    return model


def recipe_table(problem, out: Path) -> dict:
    """{family: {"selected": the rule's pick, "rule": ..., "recipes": {name: {"validation": ...,
    "rel_l2": ..., "train_seconds": ...}}}} for each family whose recipes are all trained, from the
    numbers stored in their files."""
    table = {}
    for family, recipes in FAMILIES.items():
        files = {name: recipe_file(out, family, name) for name in recipes}
        if not all(f.exists() for f in files.values()):
            continue
        info = {name: load_model(f, problem=problem.name, kind=family).info["metrics"] for name, f in files.items()}
        table[family] = {"selected": select({name: m["validation"] for name, m in info.items()}), "rule": RULE,
                         "recipes": {name: {"validation": m["validation"], "rel_l2": m["rel_l2"],
                                            "train_seconds": m.get("train_seconds")} for name, m in info.items()}}
    return table


def select_recipes(problem, out: Path) -> dict:
    """recipe_table, and each family's pick copied to <family>.pt (the shipped model)."""
    table = recipe_table(problem, out)
    for family, entry in table.items():
        shutil.copyfile(recipe_file(out, family, entry["selected"]), Path(out) / f"{family}.pt")
    return table


RULE = "lowest physics loss on held-out points (a later recipe must beat the best by over 1%)"
