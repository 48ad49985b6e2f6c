"""The trained models in models/ load, and measure what their metrics.json says (evaluation only)."""

import json
from pathlib import Path

import pytest

import kd_edge
from kd_edge.training import evaluate

MODELS = Path(__file__).resolve().parents[2] / "models"
FILES = sorted(MODELS.glob("*/*.pt"))


def test_models_are_shipped():
    assert FILES, "models/ holds no trained model"


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_shipped_model_measures_what_its_metrics_say(path):
    model = kd_edge.load_model(path, problem=path.parent.name, kind=path.stem)
    stated = json.loads((path.parent / "metrics.json").read_text())[path.stem]
    measured = evaluate(model.problem, model)
    for key in ("rel_l2", "rmse"):
        # float32 evaluation: another CPU's matmul kernels round differently (seen: 5e-6 relative
        # between an Intel and an AMD machine); a different model would differ by far more
        assert measured[key] == pytest.approx(stated[key], rel=1e-4), key
    assert stated["multiply_adds"] == model.multiply_adds()
    assert model.info["config"]["seed"] == model.info["seed"] == 0


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_shipped_model_was_made_by_its_training_config(path):
    """training/train.py PROBLEM reproduces models/PROBLEM: each file's stored config is its config's."""
    from kd_edge.training.pipeline import check_made_with, load_config

    check_made_with(path, path.stem, load_config(MODELS.parent / "training" / "configs" / f"{path.parent.name}.toml"))


@pytest.mark.parametrize("problem", sorted({p.parent.name for p in FILES if p.stem == "student"}))
def test_students_are_at_least_ten_times_cheaper(problem):
    teacher = kd_edge.load_model(MODELS / problem / "teacher.pt")
    student = kd_edge.load_model(MODELS / problem / "student.pt")
    assert teacher.multiply_adds() >= 10 * student.multiply_adds()
    metrics = json.loads((MODELS / problem / "metrics.json").read_text())
    assert metrics["cost_ratio"] == pytest.approx(teacher.multiply_adds() / student.multiply_adds())


def test_readme_shows_the_current_results_table():
    import importlib.util

    spec = importlib.util.spec_from_file_location("results", MODELS.parent / "training" / "results.py")
    results = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(results)
    readme = (MODELS.parent / "README.md").read_text()
    shown = readme[readme.index(results.BEGIN) + len(results.BEGIN):readme.index(results.END)].strip()
    assert shown == results.table().strip(), "run: .venv/bin/python training/results.py --update-readme"
    shown = readme[readme.index(results.VALIDATION_BEGIN) + len(results.VALIDATION_BEGIN):
                   readme.index(results.VALIDATION_END)].strip()
    assert shown == results.validation_table().strip(), "run: .venv/bin/python training/results.py --update-readme"


def test_readme_kd_pinn_table_matches_the_shipped_models():
    """The generated KD-PINN table at the top of the README: one row per shipped problem, with the
    errors its metrics.json states (latencies are measurements and are not checked)."""
    readme = (MODELS.parent / "README.md").read_text()
    begin, end = readme.index("<!-- kd-pinn:begin"), readme.index("<!-- kd-pinn:end -->")
    rows = [line.split("|")[1:-1] for line in readme[begin:end].splitlines()[3:]]
    shipped = sorted(p.name for p in MODELS.iterdir() if (p / "metrics.json").exists())
    assert sorted(r[0].strip() for r in rows) == shipped, "run: kd-edge report PROBLEMS... --readme README.md"
    for row in rows:
        metrics = json.loads((MODELS / row[0].strip() / "metrics.json").read_text())
        cells = [float(c) for c in row[1:5]]
        stated = [metrics["teacher"]["rmse"], metrics["teacher"]["rel_l2"], metrics["student"]["rmse"],
                  metrics["student"]["rel_l2"]]
        assert cells == pytest.approx(stated, rel=6e-3), row[0]
