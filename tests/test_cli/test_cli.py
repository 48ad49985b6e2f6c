"""The kd-edge command line end to end on a tiny config, stage skipping, and config errors."""

import base64
import io
import json
import re

import matplotlib.image
import pytest

from kd_edge.cli import main

TINY = """
problem = "burgers"

[teacher]
adam_steps = 40
lbfgs_steps = 10
n_collocation = 256
n_condition = 32
resample_every = 20
log_every = 10
checkpoint_every = 20

[teacher.network]
width = 12
depth = 2

[student]
adam_steps = 40
lbfgs_steps = 10
n_collocation = 256
n_condition = 32
n_distill = 128
resample_every = 20
log_every = 10
checkpoint_every = 20

[student.network]
width = 6
depth = 1

[bench]
seconds = 0.01
batch_sizes = [1, 8]
control_loop_seconds = 0.2
"""


def statuses(text: str) -> dict:
    line = next(line for line in text.splitlines() if line.startswith("burgers: teacher"))
    return dict(re.findall(r"(\w+) (ran|skipped|shipped)", line))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    (root / "tiny.toml").write_text(TINY)
    return root / "tiny.toml", root / "out"


def test_run_does_every_stage_then_skips_them_all(tiny, capsys):
    config, out = tiny
    assert main(["run", "burgers", "--config", str(config), "--out", str(out), "--quiet"]) == 0
    first = capsys.readouterr().out
    assert set(statuses(first).values()) == {"ran"} and len(statuses(first)) == 8, first
    for name in ("models/teacher.pt", "models/student.pt", "models/scratch.pt", "artifact/manifest.json",
                 "accuracy.json", "control_loop.txt", "bench.json", "report.html", "summary.json"):
        assert (out / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"]["student"]["rel_l2"] < 1.5  # trained, however briefly
    assert summary["accuracy"]["max_abs_vs_pytorch"] < 1e-4
    backends = {r["backend"] for r in summary["bench"] if r["grid"]}
    assert {"teacher_pytorch", "student_onnxruntime", "student_kd_edge_cpp"} <= backends
    assert "deadline misses" in (out / "control_loop.txt").read_text()

    assert main(["run", "burgers", "--config", str(config), "--out", str(out), "--quiet"]) == 0
    assert set(statuses(capsys.readouterr().out).values()) == {"skipped"}

    # A bench setting changes the bench and the report only.
    assert main(["bench", "burgers", "--config", str(config), "--out", str(out), "--quiet",
                 "--set", "bench.seconds=0.02"]) == 0
    changed = statuses(capsys.readouterr().out)
    assert changed["bench"] == "ran" and changed["teacher"] == changed["compile"] == "skipped", changed


def test_an_interrupted_training_stage_resumes_from_its_checkpoint(tiny, tmp_path, monkeypatch, interrupt_training):
    from kd_edge.cli.stages import Run
    from kd_edge.training.trainer import Trainer

    config, _ = tiny
    with interrupt_training(30):
        Run("burgers", tmp_path, config, progress=False).execute("teacher")
    checkpoint = tmp_path / "checkpoints" / "burgers" / "teacher.ckpt"
    assert checkpoint.exists()
    resumed_from = []
    load = Trainer.load
    monkeypatch.setattr(Trainer, "load", lambda self: (load(self), resumed_from.append(self.step)))
    Run("burgers", tmp_path, config, progress=False).execute("teacher")
    assert resumed_from and resumed_from[0] >= 20 and (tmp_path / "models" / "teacher.pt").exists()


def test_report_embeds_pictures_that_render(tiny):
    _, out = tiny
    html = (out / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == 3  # fields and errors, training curves, accuracy vs latency
    for data in images:
        pixels = matplotlib.image.imread(io.BytesIO(base64.b64decode(data)), format="png")
        assert pixels.shape[0] > 200 and pixels.shape[1] > 400 and pixels.std() > 0.05
    assert "KD-PINN table" in html and "deadline misses" in html


def test_a_problem_with_a_measured_frontier_gets_its_table_and_chart(tiny, tmp_path):
    from kd_edge.cli.stages import ROOT
    from kd_edge.report import write_problem_report
    from kd_edge.report.figures import frontier

    _, out = tiny
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frontier"] is None  # the tiny run's models have none: no section
    assert "latency budget" not in (out / "report.html").read_text()
    measured = json.loads((ROOT / "models" / "burgers" / "frontier.json").read_text())
    summary["frontier"] = measured
    html = write_problem_report(tmp_path / "report.html", summary,
                                {"frontier": frontier(measured["rows"], "burgers")}).read_text()
    section = html[html.index("Which student for a latency budget"):]
    for row in measured["rows"]:
        assert f"<td>{row['model']}" in section
    assert section.count("<tr>") == len(measured["rows"]) + 1 and "3x20 (shipped)" in section
    data = re.search(r'src="data:image/png;base64,([^"]+)"', section).group(1)
    pixels = matplotlib.image.imread(io.BytesIO(base64.b64decode(data)), format="png")
    assert pixels.shape[0] > 200 and pixels.std() > 0.05


def test_report_across_problems_links_each_and_charts_all(tiny, tmp_path):
    from kd_edge.report import write_index

    _, out = tiny
    summary = json.loads((out / "summary.json").read_text())
    other = dict(summary, problem="burgers_again")
    html = write_index(tmp_path / "report.html", [summary, other]).read_text()
    assert 'href="burgers/report.html"' in html and 'href="burgers_again/report.html"' in html
    assert html.count("<tr>") == 3 and len(re.findall(r"data:image/png;base64", html)) == 1


@pytest.mark.parametrize("args, message", [
    (["--set", "teacher.adam_stepz=3"], r"unknown key 'adam_stepz'; valid keys: network, seed, adam_steps"),
    (["--set", "teachr.adam_steps=3"], r"unknown section 'teachr'; valid: bench, coefficients, compile"),
    (["--set", "teacher.adam_steps=many"], r"\[teacher\].adam_steps must be int, got 'many'"),
    (["--set", "bench.seconds"], r"must look like section.key=value"),
    (["--set", "compile.targett=host"], r"\[compile\]: unknown key 'targett'; valid keys: target, backend"),
    (["--set", "bench.batch_sizes=[0, 8]"], r"\[bench\].batch_sizes must be a list of positive integers, got \[0, 8\]"),
    (["--set", "bench.threads=0"], r"\[bench\] needs seconds > 0, threads >= 1"),
])
def test_bad_overrides_name_file_key_and_expectation(tiny, tmp_path, capsys, args, message):
    config, _ = tiny
    assert main(["run", "burgers", "--config", str(config), "--out", str(tmp_path), "--quiet"] + args) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    if "section.key" not in message:
        assert str(config) in err


def test_bad_config_files_are_named(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY.replace("depth = 1", "depth = 1\nwidht = 3"))
    assert main(["compile", "burgers", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert re.search(rf"{re.escape(str(bad))}.*\[student\].network: unknown key 'widht'; valid keys: width",
                     capsys.readouterr().err)
    assert main(["run", "burgers", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "no config" in capsys.readouterr().err
    assert main(["run", "heat_3d"]) == 2
    assert "unknown problem 'heat_3d' (did you mean 'heat_2d'?); valid problems: allen_cahn" in capsys.readouterr().err
    bad.write_text("problem = 'burgers'\n[teacher\n")
    assert main(["run", "burgers", "--config", str(bad)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_problems_lists_every_problem(capsys):
    assert main(["problems"]) == 0
    out = capsys.readouterr().out
    assert "burgers" in out and "u, v, p(x, y, t)" in out


def test_targets_lists_every_preset(capsys):
    from kd_edge.compiler.target import PRESETS

    assert main(["targets"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:] if line.strip()]
    assert set(PRESETS) <= set(listed)


@pytest.mark.parametrize("args, message", [
    (["bundle", "nowhere", "--target", "aarch64", "--out", "OUT"], "no model 'nowhere': give a problem with a shipped student"),
    (["bundle", "burgers", "--target", "sparc", "--out", "OUT"], "unknown target 'sparc'; valid targets: host"),
])
def test_bundle_errors(args, message, tmp_path, capsys):
    args = [str(tmp_path / "out") if a == "OUT" else a for a in args]
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_a_stage_interrupted_after_writing_is_redone(tiny, tmp_path, monkeypatch, capsys):
    """Ctrl-C after compile wrote a new manifest but before its stamp: the next run with the old
    settings must recompile, not call the interrupted run's artifact up to date."""
    from kd_edge.cli.stages import Run

    config, _ = tiny
    Run("burgers", tmp_path, config, progress=False).execute("compile")
    original = Run.stage_compile

    def killed_after_writing(self):
        original(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(Run, "stage_compile", killed_after_writing)
    with pytest.raises(KeyboardInterrupt):
        Run("burgers", tmp_path, config, ["compile.out_of_domain=clamp"], progress=False).execute("compile")
    monkeypatch.setattr(Run, "stage_compile", original)
    assert json.loads((tmp_path / "artifact" / "manifest.json").read_text())["defaults"]["out_of_domain"] == "clamp"
    log = Run("burgers", tmp_path, config, progress=False).execute("compile")
    assert ("compile", "ran") in [(stage, status) for stage, status, _ in log]
    assert json.loads((tmp_path / "artifact" / "manifest.json").read_text())["defaults"]["out_of_domain"] == "flag"
    assert not list(tmp_path.glob("*.tmp"))  # stamps are replaced whole

    (tmp_path / "stamps.json").write_text("")  # damaged: a warning naming it, and every stage reruns
    log = Run("burgers", tmp_path, config, progress=False).execute("compile")
    assert "compile" in [stage for stage, status, _ in log if status == "ran"]
    assert f"{tmp_path / 'stamps.json'} is damaged" in capsys.readouterr().err


@pytest.mark.parametrize("setting, message", [
    ("compile.target=sparc", "unknown target 'sparc'; valid targets: host"),
    ("compile.target=aarch64", "is for aarch64, and the stages after compile run the artifact here; use `kd-edge bundle"),
    ("compile.backend=fast", "unknown backend 'fast'; valid: auto, fused, vm"),
    ("compile.out_of_domain=wrap", "unknown out_of_domain 'wrap'; valid: flag, clamp, reject"),
])
def test_compile_settings_are_checked_before_training(tiny, tmp_path, capsys, setting, message):
    config, _ = tiny
    assert main(["run", "burgers", "--config", str(config), "--out", str(tmp_path), "--quiet", "--set", setting]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "models").exists()  # nothing trained


def test_unusable_output_directories_are_named(tiny, tmp_path, capsys):
    config, _ = tiny
    (tmp_path / "file").write_text("x")
    for out, message in ((tmp_path / "file", "is a file; --out needs a directory"),
                         (tmp_path / "file" / "sub", "cannot write to the output directory")):
        assert main(["run", "burgers", "--config", str(config), "--out", str(out), "--quiet"]) == 2
        assert f"{out}" in (err := capsys.readouterr().err) and message in err, err


def test_a_config_that_is_not_utf8_is_named(tmp_path, capsys):
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(TINY.replace('"burgers"', '"burgers"  # caf\xe9').encode("latin-1"))
    assert main(["run", "burgers", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert re.search(rf"{re.escape(str(bad))}: not valid UTF-8 \(byte \d+ is 0xe9\)", capsys.readouterr().err)
