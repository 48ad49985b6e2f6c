"""Teacher training, distillation and the scratch control, on tiny budgets."""

import copy
import json
import math

import numpy as np
import pytest
import torch

import kd_edge.problems as problems
from kd_edge.training import (DistillConfig, NetworkConfig, TrainConfig, build_network, distill,
                              train_student_scratch, train_teacher)
from kd_edge.training.distill import DistillationTerm
from kd_edge.training.losses import gaussian_kl

TINY = dict(adam_steps=60, lbfgs_steps=20, n_collocation=256, n_condition=32, resample_every=20,
            weight_update_every=20, log_every=10, checkpoint_every=20)


@pytest.fixture(scope="module")
def burgers():
    return problems.get("burgers")


@pytest.fixture(scope="module")
def teacher(burgers):
    return train_teacher(burgers, TrainConfig(network=NetworkConfig(width=16, depth=2), **TINY), progress=False)


def losses(model):
    return [h["loss"] for h in model.history]


def test_teacher_training_lowers_the_loss(teacher):
    curve = losses(teacher)
    assert curve[-1] < 0.5 * curve[0]
    assert teacher.history[-1]["stage"] == "lbfgs" and teacher.history[-1]["step"] <= 80
    assert "rel_l2" in teacher.history[-1]


@pytest.mark.parametrize("match_derivatives", [False, True])
def test_distillation_lowers_the_loss_and_the_gap_to_the_teacher(burgers, teacher, match_derivatives):
    config = DistillConfig(network=NetworkConfig(width=8, depth=2), match_derivatives=match_derivatives,
                           n_distill=256, **TINY)
    student = distill(burgers, teacher, config, progress=False)
    curve = [h["distill"] for h in student.history]
    assert losses(student)[-1] < 0.5 * losses(student)[0]
    assert curve[-1] < 0.5 * curve[0]
    if match_derivatives:
        assert student.history[-1]["distill_derivative"] < student.history[0]["distill_derivative"]


def test_scratch_student_lowers_the_loss_without_a_teacher(burgers):
    config = DistillConfig(network=NetworkConfig(width=8, depth=2), **TINY)
    scratch = train_student_scratch(burgers, config, progress=False)
    assert losses(scratch)[-1] < 0.5 * losses(scratch)[0]
    assert all("distill" not in h for h in scratch.history)


def test_float64_training_lowers_the_loss_and_returns_float32_models(burgers, teacher):
    network = NetworkConfig(width=8, depth=2)
    pinn = train_teacher(burgers, TrainConfig(network=network, precision="float64", **TINY), progress=False)
    student = distill(burgers, teacher, DistillConfig(network=network, precision="float64", n_distill=256, **TINY),
                      progress=False)
    for model in (pinn, student):
        assert losses(model)[-1] < 0.5 * losses(model)[0]
        assert all(p.dtype == torch.float32 for p in model.parameters())  # saved and compiled in float32
    assert all(p.dtype == torch.float32 for p in teacher.parameters())  # the caller's teacher untouched


def test_distillation_term_is_zero_when_student_equals_teacher(burgers, teacher):
    config = DistillConfig(network=NetworkConfig(width=16, depth=2), match_derivatives=True, n_distill=128)
    term = DistillationTerm(burgers, teacher, copy.deepcopy(teacher), config)
    value, parts = term(0.5)
    assert value.item() == 0.0 and parts == {"distill": 0.0, "distill_derivative": 0.0}
    other = build_network(burgers, config.network)
    assert DistillationTerm(burgers, teacher, other, config)(0.5)[0].item() > 0


@pytest.mark.parametrize("match_derivatives", [False, True])
def test_distillation_ignores_the_teachers_pressure_offset(match_derivatives):
    """Pressure is defined up to a constant: a student that differs from its teacher only by a
    pressure offset has learnt everything; one offset in u has not."""
    problem = problems.get("navier_stokes_kovasznay")
    config = DistillConfig(network=NetworkConfig(width=8, depth=2), match_derivatives=match_derivatives,
                           n_distill=128)
    torch.manual_seed(0)
    teacher = build_network(problem, config.network)
    for column, expected_zero in ((problem.outputs.index("p"), True), (problem.outputs.index("u"), False)):
        student = copy.deepcopy(teacher)
        with torch.no_grad():
            student.net[-1].bias[column] += 3.0
        value = DistillationTerm(problem, teacher, student, config)(0.5)[0].item()
        assert (value < 1e-10) if expected_zero else (value > 1.0), (column, value)


def test_gaussian_kl_is_the_variance_scaled_squared_error():
    t, s = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.5, 2.0]])
    std = torch.tensor([0.5, 3.0])
    # KL(N(1, 0.25) || N(0.5, 0.25)) = 0.25 / (2 * 0.25) = 0.5; the second output agrees
    assert float(gaussian_kl(t, s, std)) == pytest.approx(0.5)


def test_runs_are_reproducible(burgers):
    config = TrainConfig(network=NetworkConfig(width=8, depth=2), **TINY)
    a = train_teacher(burgers, config, progress=False)
    b = train_teacher(burgers, config, progress=False)
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize("stop_at, lbfgs_resample_every", [(30, 0), (70, 0), (86, 25)],
                         ids=["during-adam", "during-lbfgs", "at-an-lbfgs-resample"])
def test_resume_continues_exactly_where_training_stopped(burgers, tmp_path, interrupt_training, stop_at,
                                                         lbfgs_resample_every):
    config = TrainConfig(network=NetworkConfig(width=8, depth=2),
                         **dict(TINY, checkpoint_every=10, lbfgs_steps=75, lbfgs_resample_every=lbfgs_resample_every))
    uninterrupted = train_teacher(burgers, config, progress=False)

    checkpoint = tmp_path / "teacher.ckpt"
    with interrupt_training(stop_at):
        train_teacher(burgers, config, checkpoint=checkpoint, progress=False)
    interrupted_seconds = torch.load(checkpoint, weights_only=False)["seconds"]
    resumed = train_teacher(burgers, config, checkpoint=checkpoint, progress=False)
    for pa, pb in zip(uninterrupted.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(pa, pb)
    assert 0 < interrupted_seconds < resumed.train_seconds  # the time before the interruption counts


def test_distillation_resumes_exactly(burgers, teacher, tmp_path, interrupt_training):
    config = DistillConfig(network=NetworkConfig(width=8, depth=2), n_distill=128, **dict(TINY, checkpoint_every=10))
    uninterrupted = distill(burgers, teacher, config, progress=False)
    checkpoint = tmp_path / "student.ckpt"
    with interrupt_training(30):
        distill(burgers, teacher, config, checkpoint=checkpoint, progress=False)
    resumed = distill(burgers, teacher, config, checkpoint=checkpoint, progress=False)
    for pa, pb in zip(uninterrupted.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(pa, pb)


def test_lbfgs_sees_one_objective_between_resamples(burgers, teacher):
    # L-BFGS's line search needs a deterministic loss: the distillation points must not move
    config = DistillConfig(network=NetworkConfig(width=8, depth=2), n_distill=64)
    term = DistillationTerm(burgers, teacher, build_network(burgers, config.network), config)
    assert term(0.3)[0].item() == term(0.3)[0].item()
    before = term.points.clone()
    term.resample()
    assert not torch.equal(before, term.points)


def test_lbfgs_takes_fresh_points_at_its_resample_interval(burgers, monkeypatch):
    from kd_edge.training.trainer import Trainer
    every, config = 25, TrainConfig(network=NetworkConfig(width=8, depth=2),
                                    **dict(TINY, lbfgs_steps=100, lbfgs_resample_every=25))
    sets, original = [], Trainer.resample

    def record(self):
        original(self)
        sets.append((self.step, self.collocation.clone()))

    monkeypatch.setattr(Trainer, "resample", record)
    train_teacher(burgers, config, progress=False)
    lbfgs = [(step - config.adam_steps, points) for step, points in sets if step > config.adam_steps]
    for due in range(every, config.lbfgs_steps, every):  # a chunk is at most 25 iterations: one resample each
        assert any(due <= iteration < due + every for iteration, _ in lbfgs), f"no fresh points at iteration {due}"
    assert not torch.equal(lbfgs[0][1], lbfgs[1][1])


def test_resume_refuses_a_checkpoint_of_another_config(burgers, tmp_path):
    checkpoint = tmp_path / "teacher.ckpt"
    config = TrainConfig(network=NetworkConfig(width=8, depth=2), **TINY)
    train_teacher(burgers, config, checkpoint=checkpoint, progress=False)
    changed = TrainConfig(network=NetworkConfig(width=8, depth=2), **dict(TINY, adam_steps=61))
    with pytest.raises(ValueError, match=r"different config \(changed: adam_steps\); delete it"):
        train_teacher(burgers, changed, checkpoint=checkpoint, progress=False)


def test_a_larger_lbfgs_budget_continues_a_finished_teacher(burgers, tmp_path):
    checkpoint = tmp_path / "teacher.ckpt"
    short = TrainConfig(network=NetworkConfig(width=8, depth=2), **TINY)
    longer = TrainConfig(network=NetworkConfig(width=8, depth=2), **dict(TINY, lbfgs_steps=TINY["lbfgs_steps"] + 25))
    train_teacher(burgers, short, checkpoint=checkpoint, progress=False)
    before = torch.load(checkpoint, weights_only=False)["step"]
    continued = train_teacher(burgers, longer, checkpoint=checkpoint, progress=False)
    state = torch.load(checkpoint, weights_only=False)
    assert before < state["step"] <= before + 25 and state["config"]["lbfgs_steps"] == longer.lbfgs_steps
    straight = train_teacher(burgers, longer, progress=False)  # the same budget in one run
    for a, b in zip(continued.state_dict().values(), straight.state_dict().values()):
        assert torch.allclose(a, b, rtol=0, atol=1e-5)


def test_a_float32_checkpoint_continues_in_float64_when_its_budget_grows(burgers, tmp_path):
    checkpoint = tmp_path / "teacher.ckpt"
    network = NetworkConfig(width=8, depth=2)
    first = train_teacher(burgers, TrainConfig(network=network, **TINY), checkpoint=checkpoint, progress=False)
    longer = TrainConfig(network=network, precision="float64", **dict(TINY, lbfgs_steps=TINY["lbfgs_steps"] + 25))
    continued = train_teacher(burgers, longer, checkpoint=checkpoint, progress=False)
    state = torch.load(checkpoint, weights_only=False)
    assert state["config"]["precision"] == "float64" and state["collocation"].dtype == torch.float64
    assert continued.history[-1]["step"] > first.history[-1]["step"]
    assert all(p.dtype == torch.float32 for p in continued.parameters())


def test_a_shipped_teacher_continues_from_its_model_file_when_its_budget_grows(burgers, tmp_path):
    """No checkpoint left (a fresh clone): train_stages continues from models/<p>/teacher.pt."""
    from kd_edge.training.config import DistillConfig
    from kd_edge.training.models import load_model
    from kd_edge.training.pipeline import train_stages

    network = NetworkConfig(width=8, depth=2)
    cfg = {"problem": burgers, "teacher": TrainConfig(network=network, **TINY),
           "student": DistillConfig(network=network, **TINY)}
    train_stages(cfg, tmp_path / "models", tmp_path / "runs", ("teacher",), progress=False)
    first = load_model(tmp_path / "models" / "teacher.pt")
    (tmp_path / "runs" / "teacher.ckpt").unlink()
    train_stages(cfg, tmp_path / "models", tmp_path / "runs", ("teacher",), progress=False)  # same config: skipped
    assert load_model(tmp_path / "models" / "teacher.pt").info["history"] == first.info["history"]

    cfg["teacher"] = TrainConfig(network=network, **dict(TINY, lbfgs_steps=TINY["lbfgs_steps"] + 40))
    train_stages(cfg, tmp_path / "models", tmp_path / "runs", ("teacher",), progress=False)
    continued = load_model(tmp_path / "models" / "teacher.pt")
    steps = [h["step"] for h in continued.info["history"]]
    assert steps[:len(first.info["history"])] == [h["step"] for h in first.info["history"]]
    assert first.info["history"][-1]["step"] < steps[-1] <= 120
    assert continued.info["history"][-1]["loss"] < first.info["history"][-1]["loss"]

    cfg["teacher"] = TrainConfig(network=network, **dict(TINY, lbfgs_steps=10))  # a smaller budget: not continued
    with pytest.raises(ValueError, match="L-BFGS budget grows"):
        train_teacher(burgers, cfg["teacher"], start_from=continued, progress=False)


def test_a_finished_stage_made_with_another_config_is_not_silently_kept(burgers, tmp_path):
    from kd_edge.training.config import DistillConfig
    from kd_edge.training.pipeline import train_stages

    network = NetworkConfig(width=8, depth=2)
    cfg = {"problem": burgers, "teacher": TrainConfig(network=network, **TINY),
           "student": DistillConfig(network=network, distill_weight=0.5, **TINY)}
    train_stages(cfg, tmp_path / "models", tmp_path / "runs", ("teacher", "scratch"), progress=False)
    cfg["teacher"] = TrainConfig(network=network, precision="float64", **dict(TINY, adam_steps=50))
    with pytest.raises(ValueError, match=r"teacher.pt was made with a different config "
                                         r"\(changed: adam_steps, precision\); delete it"):
        train_stages(cfg, tmp_path / "models", tmp_path / "runs", ("teacher",), progress=False)
    # the scratch student does not use the distillation settings: changing them keeps it
    cfg["student"] = DistillConfig(network=network, distill_weight=0.25, **TINY)
    train_stages(cfg, tmp_path / "models", tmp_path / "runs", ("scratch",), progress=False)
    cfg["student"] = DistillConfig(network=network, distill_weight=0.25, **dict(TINY, seed=1))
    with pytest.raises(ValueError, match=r"scratch.pt was made with a different config \(changed: seed\)"):
        train_stages(cfg, tmp_path / "models", tmp_path / "runs", ("scratch",), progress=False)


def test_periodic_network_is_periodic_in_training_units():
    p = problems.get("allen_cahn")
    model = build_network(p, NetworkConfig(width=8, depth=2, periodic={"x": 2.0}, fourier_features=3))
    x = torch.from_numpy(p.sample(50, np.random.default_rng(0))).float()
    shifted = x + torch.tensor([2.0, 0.0])
    with torch.no_grad():
        assert torch.allclose(model(x), model(shifted), atol=1e-5)


def test_causal_weighting_discounts_later_times():
    from kd_edge.training.losses import pde_loss

    p = problems.get("allen_cahn")
    t = torch.linspace(0.0, 1.0, 400)
    points = torch.stack([torch.zeros_like(t), t], dim=1)
    wrong_late = lambda x: torch.where(x[:, 1:] > 0.5, 10 * x[:, 1:] ** 2, 0 * x[:, 1:])  # noqa: E731
    plain = pde_loss(p, wrong_late, points)
    causal = pde_loss(p, wrong_late, points, causal_chunks=8, causal_epsilon=10.0)
    assert causal.item() < 0.5 * plain.item()


def test_time_weighting_counts_early_residuals_more_with_weights_of_mean_one():
    from kd_edge.training.losses import pde_loss

    p = problems.get("allen_cahn")
    t = (torch.arange(4000, dtype=torch.float64) + 0.5) / 4000
    points = torch.stack([torch.zeros_like(t), t], dim=1)
    rate = 10.0
    weight = torch.exp(rate * (1 - t)) * rate / math.expm1(rate)  # the documented weight
    assert weight.mean().item() == pytest.approx(1.0, rel=1e-5)
    # u = 0 solves the equation: each model is wrong only where it departs from 0
    wrong_early = lambda x: torch.where(x[:, 1:] < 0.2, (0.2 - x[:, 1:]) ** 2, 0 * x[:, 1:])  # noqa: E731
    wrong_late = lambda x: torch.where(x[:, 1:] > 0.8, (x[:, 1:] - 0.8) ** 2, 0 * x[:, 1:])  # noqa: E731
    for model in (wrong_early, wrong_late):
        squared = p.residual(model, points)[0].pow(2)
        weighted = pde_loss(p, model, points, time_weight_rate=rate).item()
        assert weighted == pytest.approx((weight * squared).mean().item(), rel=1e-12)
    assert pde_loss(p, wrong_early, points, time_weight_rate=rate) > 2 * pde_loss(p, wrong_early, points)
    assert pde_loss(p, wrong_late, points, time_weight_rate=rate) < 0.5 * pde_loss(p, wrong_late, points)


@pytest.mark.parametrize("setting", [{"causal_chunks": 4}, {"time_weight_rate": 5.0}])
def test_weighting_in_time_is_refused_for_a_problem_without_time(setting):
    config = TrainConfig(network=NetworkConfig(width=8, depth=2), **dict(TINY, **setting))
    with pytest.raises(ValueError, match=f"{next(iter(setting))} weights the residual in time, but poisson_2d "
                                         r"has no input 't' \(inputs: x, y\)"):
        train_teacher(problems.get("poisson_2d"), config, progress=False)


def test_a_teacher_from_another_framework_distils(burgers, teacher):
    """Any torch module is a teacher, such as a DeepXDE or PhysicsNeMo network (here a plain
    nn.Sequential holding another network's weights); a teacher of the wrong width is named."""
    foreign = torch.nn.Sequential(copy.deepcopy(teacher).float())
    config = DistillConfig(network=NetworkConfig(width=8, depth=2), n_distill=256, **TINY)
    student = distill(burgers, foreign, config, progress=False)
    assert student.history[-1]["distill"] < 0.5 * student.history[0]["distill"]
    with pytest.raises(ValueError, match=r"the teacher \(Sequential\) must map \(n, 2\) points \(x, t\) to "
                                         r"\(n, 1\) outputs \(u\); it returned \(8192, 3\)"):
        distill(burgers, torch.nn.Sequential(torch.nn.Linear(2, 3)), config, progress=False)


@pytest.mark.slow
def test_the_deepxde_teacher_example(tmp_path):
    """examples/deepxde_teacher.py with tiny budgets: a network DeepXDE trained is the teacher, the
    student distils and compiles, and the compiled student matches it."""
    import re
    import subprocess
    import sys

    pytest.importorskip("deepxde", reason="DeepXDE is pinned in requirements.txt (make setup)")
    from kd_edge.deploy.runtime import SOURCE

    done = subprocess.run([sys.executable, str(SOURCE / "examples" / "deepxde_teacher.py"), "--dde-iterations", "100",
                           "--dde-points", "300", "--adam-steps", "20", "--lbfgs-steps", "0", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    errors = [float(e) for e in re.findall(r"relative L2 ([\d.e+-]+)", done.stdout)]
    assert len(errors) == 2 and all(0 < e < 10 for e in errors)
    gap = float(re.search(r"max \|compiled - PyTorch\| on the grid ([\d.e+-]+)", done.stdout).group(1))
    assert gap < 1e-5
    manifest = json.loads((tmp_path / "artifact" / "manifest.json").read_text())
    assert manifest["inputs"] == ["x", "t"] and manifest["outputs"] == ["u"]  # a kd-edge student: its problem's names
