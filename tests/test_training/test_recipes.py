"""Choosing students without the reference: validation on held-out points, the recipes, the rule,
and that the shipped students are the rule's picks from the numbers stored with them."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import kd_edge
import kd_edge.problems as problems
from kd_edge.training import NetworkConfig, TrainConfig, build_network, train_teacher
from kd_edge.training.pipeline import check_made_with, load_config, train_stages, write_metrics
from kd_edge.training.recipes import FAMILIES, recipe_config, recipe_file, recipe_table, select_recipes, train_recipe
from kd_edge.training.validation import held_out_points, select, validate

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
TINY = ["adam_steps=40", "lbfgs_steps=10", "n_collocation=256", "n_condition=32", "resample_every=20",
        "log_every=10", "checkpoint_every=20", "n_distill=256"]


def test_held_out_points_are_fixed_and_not_training_points():
    burgers = problems.get("burgers")
    interior, conditions = held_out_points(burgers)
    again, _ = held_out_points(burgers)
    np.testing.assert_array_equal(interior, again)
    first_training_set = burgers.sample(len(interior), np.random.default_rng(0))  # the trainer's, seed 0
    assert not np.isin(interior, first_training_set).any()
    assert [len(p) for p in conditions] == [512] * len(burgers.conditions())
    flow = problems.get("navier_stokes_taylor_green")  # pressure up to a function of t: shared t values
    assert len(np.unique(held_out_points(flow)[0][:, 2])) <= 32


def test_validation_ranks_a_trained_model_above_an_untrained_one():
    burgers = problems.get("burgers")
    config = TrainConfig(network=NetworkConfig(width=16, depth=2), adam_steps=150, lbfgs_steps=30, n_collocation=512,
                         n_condition=64, log_every=50, checkpoint_every=1000)
    trained = train_teacher(burgers, config, progress=False)
    torch.manual_seed(0)
    untrained = build_network(burgers, config.network)
    good, bad = validate(burgers, trained), validate(burgers, untrained, teacher=trained)
    assert good["physics"] < 0.8 * bad["physics"]
    assert good["physics"] == pytest.approx(good["residual"] + sum(good["conditions"].values()))
    assert set(good["conditions"]) == {c.name for c in burgers.conditions()}
    assert "teacher_gap" not in good and 0.5 < bad["teacher_gap"]
    assert validate(burgers, trained, teacher=trained)["teacher_gap"] == 0.0


def test_conditions_met_by_construction_are_left_out():
    wave = kd_edge.load_model(MODELS / "wave_1d" / "student.pt")  # u = u0 + t^2 x (1 - x) N: every condition
    numbers = validate(wave.problem, wave)
    assert numbers["conditions"] == {} and numbers["physics"] == numbers["residual"] > 0


def test_the_rule():
    v = lambda x: {"physics": x}  # noqa: E731
    assert select({"a": v(2.0), "b": v(1.0), "c": v(1.5)}) == "b"
    assert select({"a": v(1.0), "b": v(0.995)}) == "a"  # within 1%: the earlier recipe
    assert select({"a": v(float("nan")), "b": v(3.0)}) == "b"
    with pytest.raises(ValueError, match="no recipe has a finite validation loss"):
        select({"a": v(float("inf"))})


def test_recipes_change_only_what_they_name():
    base = load_config(ROOT / "training" / "configs" / "burgers.toml")["student"]
    assert recipe_config(base, "student", "paper") == base
    assert recipe_config(base, "student", "long").lbfgs_steps == 2 * base.lbfgs_steps
    assert recipe_config(base, "scratch", "conditions_1").condition_weight == 1.0
    assert len(FAMILIES["student"]) == len(FAMILIES["scratch"])  # the control gets as many tries
    with pytest.raises(ValueError, match="unknown student recipe 'fast'; valid: paper, derivatives"):
        recipe_config(base, "student", "fast")


@pytest.mark.slow
def test_recipes_train_and_the_rules_pick_is_shipped(tmp_path):
    cfg = load_config(ROOT / "training" / "configs" / "burgers.toml",
                      [f"teacher.{o}" for o in TINY[:-1]] + [f"student.{o}" for o in TINY]
                      + ["teacher.network.width=16", "teacher.network.depth=2"])
    out, runs = tmp_path / "burgers", tmp_path / "runs"
    train_stages(cfg, out, runs, progress=False)  # teacher, and the base recipes as plain stages
    shipped = {f: kd_edge.load_model(out / f"{f}.pt").state_dict() for f in FAMILIES}
    for family, recipes in FAMILIES.items():
        for name in recipes:
            train_recipe(cfg, out, runs, family, name, progress=False)
    for family, base in (("student", "paper"), ("scratch", "plain")):  # adopted, not trained again
        again = kd_edge.load_model(recipe_file(out, family, base)).state_dict()
        assert all(torch.equal(again[k], v) for k, v in shipped[family].items())
        assert not (runs / f"{family}-{base}.ckpt").exists()
    table = select_recipes(cfg["problem"], out)
    for family in FAMILIES:
        chosen = table[family]["selected"]
        numbers = {r: v["validation"]["physics"] for r, v in table[family]["recipes"].items()}
        assert numbers[chosen] <= min(numbers.values()) * 1.01
        assert (out / f"{family}.pt").read_bytes() == recipe_file(out, family, chosen).read_bytes()
        check_made_with(out / f"{family}.pt", family, cfg)  # the recipe's config, not the base one
    metrics = write_metrics(cfg["problem"], out)
    assert metrics["recipes"] == json.loads(json.dumps(table))
    assert metrics["student"]["recipe"] == table["student"]["selected"]
    assert "teacher_gap" in metrics["student"]["validation"] and "physics" in metrics["teacher"]["validation"]
    changed = load_config(ROOT / "training" / "configs" / "burgers.toml", [f"student.{o}" for o in TINY]
                          + ["student.adam_steps=41"])
    with pytest.raises(ValueError, match="made with a different config"):
        check_made_with(out / "student.pt", "student", changed)


def test_a_recipe_retrains_to_the_same_weights(tmp_path):
    """Retraining a chosen recipe from its config gives its file's weights again, bit for bit:
    a distilled recipe that changes the loss (derivative matching) and a scratch one that changes
    the points, each trained twice from the same teacher."""
    cfg = load_config(ROOT / "training" / "configs" / "burgers.toml",
                      [f"teacher.{o}" for o in TINY[:-1]] + [f"student.{o}" for o in TINY]
                      + ["teacher.network.width=16", "teacher.network.depth=2"])
    first, second = tmp_path / "a" / "burgers", tmp_path / "b" / "burgers"
    train_stages(cfg, first, tmp_path / "runs-a", progress=False)
    second.mkdir(parents=True)
    for name in ("teacher.pt", "student.pt", "scratch.pt"):  # the same teacher and base models
        (second / name).write_bytes((first / name).read_bytes())
    for family, name in (("student", "derivatives"), ("scratch", "more_points")):
        for out, runs in ((first, tmp_path / "runs-a"), (second, tmp_path / "runs-b")):
            train_recipe(cfg, out, runs, family, name, progress=False)
        a = kd_edge.load_model(recipe_file(first, family, name)).state_dict()
        b = kd_edge.load_model(recipe_file(second, family, name)).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), (family, name)
        check_made_with(recipe_file(second, family, name), family, cfg)  # and its stored config is the recipe's


WITH_RECIPES = sorted(p.parent.name for p in MODELS.glob("*/recipes"))


@pytest.mark.parametrize("problem", WITH_RECIPES)
def test_shipped_students_are_the_rules_pick_from_their_stored_numbers(problem):
    """Where a family's recipes are all trained, the selection, re-derived from the validation
    numbers stored in the recipe files, picks the file shipped as student.pt (scratch.pt), and
    metrics.json says so; where they are not yet, the shipped model is still the base config's."""
    out = MODELS / problem
    table = recipe_table(problems.get(problem), out)
    metrics = json.loads((out / "metrics.json").read_text())
    for family in FAMILIES:
        if family in table:
            chosen = table[family]["selected"]
            assert (out / f"{family}.pt").read_bytes() == recipe_file(out, family, chosen).read_bytes()
            assert metrics["recipes"][family]["selected"] == chosen == metrics[family]["recipe"]
        else:
            assert "recipe" not in kd_edge.load_model(out / f"{family}.pt").info["metrics"]
            assert family not in metrics.get("recipes", {})
