"""Reproduce models/<problem>/: teacher, distilled student and scratch student, then metrics.json."""

import json
import tomllib
from pathlib import Path

import kd_edge.problems as problems
from kd_edge.training.config import (BenchConfig, CompileConfig, DistillConfig, TrainConfig, can_continue,
                                     changed_settings, from_dict, to_dict)
from kd_edge.training.distill import distill, train_student_scratch
from kd_edge.training.evaluate import evaluate
from kd_edge.training.models import load_model, save_model
from kd_edge.training.teacher import train_teacher

STAGES = ("teacher", "student", "scratch")
SECTIONS = {"problem", "coefficients", "teacher", "student", "compile", "bench"}


def parse_override(text: str) -> tuple[list[str], object]:
    """"student.network.width=16" -> (["student", "network", "width"], 16). Values are TOML
    (numbers, true/false, [lists], "strings"); a bare word is taken as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"override {text!r} must look like section.key=value")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return [part.strip() for part in key.split(".")], parsed


def load_config(path, overrides=()) -> dict:
    """A problem's TOML: [coefficients] (optional), [teacher] (TrainConfig), [student]
    (DistillConfig), [compile] and [bench] (optional); `overrides` ("section.key=value") win."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no training config at {path}")
    with open(path, "rb") as f:
        try:
            raw = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path}: not valid TOML: {e}") from None
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not valid UTF-8 (byte {e.start} is {e.object[e.start]:#04x}); "
                             f"TOML files are UTF-8") from None
    where = str(path) + (f" (with {', '.join(overrides)})" if overrides else "")
    for text in overrides:
        keys, value = parse_override(text)
        if keys[0] not in SECTIONS:
            raise ValueError(f"{path}: override {text!r}: unknown section {keys[0]!r}; "
                             f"valid: {', '.join(sorted(SECTIONS))}")
        table = raw
        for k in keys[:-1]:
            table = table.setdefault(k, {})
            if not isinstance(table, dict):
                raise ValueError(f"{path}: override {text!r}: {k!r} is not a table")
        table[keys[-1]] = value
    unknown = sorted(set(raw) - SECTIONS)
    if unknown:
        raise ValueError(f"{where}: unknown section {', '.join(map(repr, unknown))}; valid: {', '.join(sorted(SECTIONS))}")
    for section in ("problem", "teacher", "student"):
        if section not in raw:
            raise ValueError(f"{where}: missing {section!r}")
    problem = problems.get(raw["problem"], **raw.get("coefficients", {}))
    return {"problem": problem,
            "teacher": from_dict(TrainConfig, raw["teacher"], f"{where}: [teacher]"),
            "student": from_dict(DistillConfig, raw["student"], f"{where}: [student]"),
            "compile": from_dict(CompileConfig, raw.get("compile", {}), f"{where}: [compile]"),
            "bench": from_dict(BenchConfig, raw.get("bench", {}), f"{where}: [bench]")}


def run(config_path, models_dir="models", runs_dir="training/runs", stages=STAGES, progress=True) -> dict:
    """Train the requested stages (each resumes from its checkpoint in runs_dir; a stage whose
    model file exists is skipped), then measure every model and write metrics.json."""
    cfg = load_config(config_path)
    problem = cfg["problem"]
    out, runs = Path(models_dir) / problem.name, Path(runs_dir) / problem.name
    return train_stages(cfg, out, runs, stages, progress)


def train_stages(cfg: dict, out: Path, runs: Path, stages=STAGES, progress=True) -> dict:
    """The stages of run() for a loaded config, writing out/<stage>.pt and out/metrics.json."""
    problem = cfg["problem"]
    files = {stage: out / f"{stage}.pt" for stage in STAGES}
    for stage in stages:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; valid: {', '.join(STAGES)}")
        previous = None
        if files[stage].exists():
            made = load_model(files[stage], problem=problem.name, kind=stage)
            if stage == "teacher" and _continues(made, cfg["teacher"], files[stage]):
                previous = made
            else:
                check_made_with(files[stage], stage, cfg, made)
                continue
        checkpoint = runs / f"{stage}.ckpt"
        if stage == "teacher":
            model, config = train_teacher(problem, cfg["teacher"], checkpoint, progress, previous), cfg["teacher"]
        else:
            if not files["teacher"].exists():
                raise FileNotFoundError(f"the {stage} stage needs {files['teacher']}: train the teacher first")
            config = cfg["student"]
            if stage == "student":
                teacher = load_model(files["teacher"], problem=problem.name, kind="teacher")
                model = distill(problem, teacher, config, checkpoint, progress)
            else:
                model = train_student_scratch(problem, config, checkpoint, progress)
        seconds = model.train_seconds  # a resumed run counts its earlier runs
        if previous is not None:  # a continued teacher: the time of every run that made it
            seconds += previous.info["metrics"].get("train_seconds") or 0
        metrics = dict(evaluate(problem, model), train_seconds=round(seconds, 1))
        save_model(files[stage], model, stage, problem, to_dict(config), metrics, model.history)
        write_metrics(problem, out)  # after every stage, so a partial run's files agree
    return write_metrics(problem, out)


def _continues(teacher, config, path: Path) -> bool:
    """Whether the finished teacher (from `path`) continues under `config`: only its L-BFGS budget grew."""
    old, new = teacher.info["config"], to_dict(config)
    if not can_continue(old, new):
        return False
    print(f"{path}: L-BFGS budget raised from {old['lbfgs_steps']} to {new['lbfgs_steps']}; continuing it "
          f"(delete the students to distil them again from the new teacher)")
    return True


def check_made_with(path: Path, stage: str, cfg: dict, model=None):
    """Raise unless the `stage` model file at `path` (`model`, if already loaded) was made by the
    loaded config `cfg`: a finished stage is skipped, and an edited config must not silently keep
    the old model."""
    model = model if model is not None else load_model(path)
    made, wanted = model.info["config"], to_dict(cfg["teacher" if stage == "teacher" else "student"])
    if stage == "scratch":  # its file holds the student's config, of which it uses the TrainConfig part
        made, wanted = ({k: v for k, v in d.items() if k in TrainConfig.__dataclass_fields__} for d in (made, wanted))
    changed = changed_settings(made, wanted)
    if changed:
        raise ValueError(f"{path} was made with a different config (changed: {', '.join(changed)}); "
                         f"delete it to train that stage again")


def write_metrics(problem, out: Path) -> dict:
    """metrics.json: each model's errors on the reference grid, its cost, and the comparisons."""
    table = {}
    for stage in STAGES:
        path = out / f"{stage}.pt"
        if path.exists():
            model = load_model(path, problem=problem.name, kind=stage)
            table[stage] = dict(evaluate(problem, model), multiply_adds=model.multiply_adds(),
                                train_seconds=model.info["metrics"].get("train_seconds"))
    if "teacher" in table and "student" in table:
        t, s = table["teacher"], table["student"]
        table["student_vs_teacher_percent"] = {
            key: 100 * (s[key] - t[key]) / t[key] for key in t if key.startswith(("rel_l2", "rmse"))}
        table["cost_ratio"] = t["multiply_adds"] / s["multiply_adds"]
    if "student" in table and "scratch" in table:
        table["distilled_beats_scratch"] = table["student"]["rel_l2"] <= table["scratch"]["rel_l2"]
    if not table:  # nothing trained yet: no file
        return table
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps({"problem": problem.name, **table}, indent=2) + "\n")
    return table
