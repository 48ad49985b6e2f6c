"""A PDE of the user's own, in a file outside the repository, through the kd-edge command with no
wrapper: listed, configured by default, trained, compiled, reported; and the mistakes a new user
makes, each with a message that says what to write."""

import json
import re

import pytest

from kd_edge.cli import main

ADVECTION = '''
import math

import numpy as np
import torch

from kd_edge.problems import Condition, Problem


def helper():
    return 1


class Advection(Problem):
    """u_t + c u_x = 0 on x in [-1, 1], t in [0, 1]; u = sin(pi (x - c t))."""

    name = "advection_1d"
    inputs = ("x", "t")
    outputs = ("u",)
    lower, upper = (-1.0, 0.0), (1.0, 1.0)

    def __init__(self, c: float = 0.5):
        self.c = float(c)
        self.coefficients = {"c": self.c}

    def equations(self, f):
        return [f["u_t"] + self.c * f["u_x"]]

    def conditions(self):
        exact = lambda f: torch.sin(math.pi * (f["x"] - self.c * f["t"]))  # noqa: E731
        return [Condition("initial", ((-1, 0), (1, 0)), lambda f: f["u"] - exact(f)),
                Condition("inflow x=-1", ((-1, 0), (-1, 1)), lambda f: f["u"] - exact(f))]

    def grid_axes(self):
        return [np.linspace(-1, 1, 41), np.linspace(0, 1, 21)]

    def solution(self, p):
        return torch.sin(math.pi * (p[:, :1] - self.c * p[:, 1:]))
'''

TINY = ["--set", "teacher.adam_steps=30", "--set", "teacher.lbfgs_steps=5", "--set", "teacher.n_collocation=256",
        "--set", "teacher.n_condition=32", "--set", "teacher.network.width=12", "--set", "teacher.network.depth=2",
        "--set", "student.adam_steps=30", "--set", "student.lbfgs_steps=5", "--set", "student.n_collocation=256",
        "--set", "student.n_condition=32", "--set", "student.n_distill=64", "--set", "bench.seconds=0.01",
        "--set", "bench.batch_sizes=[1]", "--set", "bench.control_loop_seconds=0.1"]


@pytest.fixture
def user_file(tmp_path, private_registry):
    path = tmp_path / "elsewhere" / "my_pde.py"
    path.parent.mkdir()
    path.write_text(ADVECTION)
    return path


def test_a_problem_in_a_file_runs_end_to_end(user_file, tmp_path, capsys):
    assert main(["problems", "--problem-file", str(user_file)]) == 0
    assert re.search(r"advection_1d\s+u\(x, t\): x in \[-1, 1\], t in \[0, 1\]", capsys.readouterr().out)

    out = tmp_path / "out"
    assert main(["run", f"{user_file}:Advection", "--out", str(out), "--quiet", "--set", "coefficients.c=0.75"]
                + TINY) == 0
    captured = capsys.readouterr()
    assert "no config for advection_1d: using a generated default" in captured.err
    config = (out / "config.toml").read_text()
    assert 'problem = "advection_1d"' in config and "width = 64" in config and "c = 0.5" in config
    summary = json.loads((out / "summary.json").read_text())
    assert summary["problem"] == "advection_1d" and summary["accuracy"]["max_abs_vs_pytorch"] < 1e-4
    assert "advection_1d" in (out / "report.html").read_text()
    manifest = json.loads((out / "artifact" / "manifest.json").read_text())
    assert manifest["inputs"] == ["x", "t"] and manifest["outputs"] == ["u"]

    written = tmp_path / "advection.toml"  # init-config writes the same default for editing
    assert main(["init-config", f"{user_file}:Advection", "--out", str(written)]) == 0
    assert written.read_text() == config
    assert main(["init-config", "advection_1d", "--out", str(written), "--problem-file", str(user_file)]) == 2
    assert "exists; kept as it is" in capsys.readouterr().err


@pytest.mark.parametrize("edit, spec, message", [
    (lambda s: s.replace("def helper():", "def helper(:"), "FILE", r"my_pde.py:\d+: syntax error"),
    (None, "FILE:helper", r"my_pde.py:helper is a function, not a subclass of kd_edge.problems.Problem"),
    (None, "FILE:Advektion", r"has no 'Advektion'; the Problem subclasses it defines: Advection"),
    (lambda s: s.replace("def __init__(self, c: float = 0.5):", "def __init__(self, *args):\n        c = 0.5"),
     "FILE", r"Advection.__init__ takes args in a way kd-edge cannot pass coefficients to; declare each "
             r"coefficient as a keyword parameter of __init__ with a default"),
    (None, "advection", r"unknown problem 'advection' \(did you mean 'advection_1d'\?\)"),
    (None, "nowhere.py", r"no problem file nowhere.py"),
])
def test_mistakes_say_what_to_write(user_file, tmp_path, capsys, edit, spec, message):
    if edit:
        user_file.write_text(edit(ADVECTION))
    args = ["compile", spec.replace("FILE", str(user_file)), "--out", str(tmp_path / "o"), "--quiet"]
    if spec == "advection":
        args += ["--problem-file", str(user_file)]
    assert main(args) == 2
    assert re.search(message, capsys.readouterr().err)


def test_a_coefficient_typo_names_the_right_one(user_file, tmp_path, capsys):
    assert main(["compile", f"{user_file}:Advection", "--out", str(tmp_path / "o"), "--set", "coefficients.cc=1"]) == 2
    assert "advection_1d has no coefficient 'cc' ('cc': did you mean 'c'?); valid coefficients: c" in capsys.readouterr().err
