"""The size frontier: students of other sizes distilled with the selected recipe, the shipped size
not trained again, and the README's frontier table as the stored measurements state it."""

import importlib.util
import json
from pathlib import Path

import pytest

import kd_edge
from kd_edge.training.frontier import frontier_config, frontier_file, frontier_table, parse_size, train_frontier
from kd_edge.training.pipeline import load_config, train_stages

ROOT = Path(__file__).resolve().parents[2]
TINY = ["adam_steps=40", "lbfgs_steps=10", "n_collocation=256", "n_condition=32", "resample_every=20",
        "log_every=10", "checkpoint_every=20", "n_distill=256"]


def test_sizes_are_parsed_and_bad_ones_named():
    assert parse_size("4x40") == (4, 40)
    for bad in ("4x", "x40", "0x10", "four", "4*40"):
        with pytest.raises(ValueError, match="a student size is <hidden layers>x<width>"):
            parse_size(bad)


def test_a_frontier_student_is_the_shipped_recipe_at_another_size(tmp_path):
    cfg = load_config(ROOT / "training" / "configs" / "burgers.toml",
                      [f"teacher.{o}" for o in TINY[:-1]] + [f"student.{o}" for o in TINY]
                      + ["teacher.network.width=16", "teacher.network.depth=2"])
    out, runs = tmp_path / "burgers", tmp_path / "runs"
    train_stages(cfg, out, runs, progress=False)
    shipped = kd_edge.load_model(out / "student.pt")
    depth, width = shipped.info["config"]["network"]["depth"], shipped.info["config"]["network"]["width"]

    path = train_frontier(cfg, out, runs, 2, 6, progress=False)
    small = kd_edge.load_model(path, problem="burgers", kind="student")
    assert path == frontier_file(out, 2, 6)
    assert small.info["config"] == {**shipped.info["config"],
                                    "network": {**shipped.info["config"]["network"], "depth": 2, "width": 6}}
    assert small.multiply_adds() < shipped.multiply_adds()
    assert small.info["metrics"]["rel_l2"] > 0 and small.info["metrics"]["validation"]["physics"] > 0
    assert frontier_config(cfg, out, 2, 6).network.width == 6

    before = path.stat().st_mtime_ns
    assert train_frontier(cfg, out, runs, 2, 6, progress=False) == path and path.stat().st_mtime_ns == before
    same = train_frontier(cfg, out, runs, depth, width, progress=False)  # the shipped size: the shipped file
    assert same.read_bytes() == (out / "student.pt").read_bytes()
    table = frontier_table(cfg["problem"], out)
    assert list(table) == ["2x6", f"{depth}x{width}"]
    assert table[f"{depth}x{width}"]["shipped"] and not table["2x6"]["shipped"]
    assert table["2x6"]["multiply_adds"] == small.multiply_adds()


def test_readme_shows_the_stored_frontier():
    spec = importlib.util.spec_from_file_location("frontier_script", ROOT / "training" / "frontier.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    readme = (ROOT / "README.md").read_text()
    shown = readme[readme.index(script.BEGIN) + len(script.BEGIN):readme.index(script.END)].strip()
    assert shown == script.readme_table(ROOT / "models").strip(), "run: .venv/bin/python training/frontier.py --update-readme"
    for path in (ROOT / "models").glob("*/frontier.json"):  # each row is a stored model's own numbers
        for row in json.loads(path.read_text())["rows"]:
            name = "teacher.pt" if row["model"] == "teacher" else f"frontier/{row['model']}.pt"
            model = kd_edge.load_model(path.parent / name)
            assert row["rel_l2"] == model.info["metrics"]["rel_l2"]
            assert row["multiply_adds"] == model.multiply_adds()


def test_training_processes_run_side_by_side_and_failures_are_named(tmp_path):
    import sys

    from kd_edge.training.processes import run_processes

    ok = {f"job {i}": [sys.executable, "-c", f"open(r'{tmp_path}/{i}', 'w').write('x')"] for i in range(3)}
    run_processes(ok, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0", "1", "2"]
    with pytest.raises(SystemExit, match="failed: burgers 4x40$"):
        run_processes({"burgers 2x10": [sys.executable, "-c", "pass"],
                       "burgers 4x40": [sys.executable, "-c", "raise SystemExit(3)"]}, 2)
