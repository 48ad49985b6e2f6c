"""Configs refuse unknown or mistyped settings; model files rebuild, and refuse what they are not."""

import numpy as np
import pytest
import torch

import kd_edge
import kd_edge.problems as problems
from kd_edge.training import DistillConfig, NetworkConfig, TrainConfig, build_network, from_dict, save_model
from kd_edge.training.pipeline import load_config


def test_config_from_dict_builds_nested_settings():
    config = from_dict(DistillConfig, {"adam_steps": 10, "adam_lr": 1, "network": {"width": 8, "periodic": {"x": 2.0}}})
    assert config.adam_steps == 10 and config.adam_lr == 1.0 and config.network.width == 8
    assert config.network.periodic == {"x": 2.0}


@pytest.mark.parametrize("values, error, message", [
    ({"adam_step": 10}, ValueError, r"unknown key 'adam_step'; valid keys: network, seed, adam_steps"),
    ({"network": {"widht": 8}}, ValueError, r"config.network: unknown key 'widht'; valid keys: width, depth"),
    ({"adam_steps": "10"}, TypeError, r"config.adam_steps must be int, got '10'"),
    ({"adaptive_weights": 1}, TypeError, r"config.adaptive_weights must be bool, got 1"),
    ({"network": 5}, TypeError, "config.network must be a table of settings"),
    ({"precision": "float16"}, ValueError, r"^config: unknown precision 'float16'; valid: float32, float64"),
    ({"time_weight_rate": -5}, ValueError, r"^config: time_weight_rate must be >= 0 \(0: off\), got -5.0"),
    ({"lbfgs_resample_every": -1}, ValueError, r"^config: lbfgs_resample_every must be >= 0"),
    ({"adam_steps": -3}, ValueError, r"^config: adam_steps must be >= 0, got -3"),
    ({"n_collocation": 0}, ValueError, r"^config: n_collocation must be >= 1, got 0"),
    ({"adam_lr": 0.0}, ValueError, r"^config: adam_lr must be > 0, got 0.0"),
    ({"adaptive_fraction": 1.5}, ValueError, r"^config: adaptive_fraction must be within \[0, 1\], got 1.5"),
    ({"network": {"width": 0}}, ValueError, r"^config: network width and depth must be >= 1, got 0 and 4"),
])
def test_bad_config_names_the_key(values, error, message):
    with pytest.raises(error, match=message):
        from_dict(TrainConfig, values)


@pytest.mark.parametrize("values, message", [
    ({"distill_weight": -1.0}, r"^student: distill_weight must be >= 0, got -1.0"),
    ({"derivative_weight": -0.1}, r"^student: derivative_weight must be >= 0, got -0.1"),
    ({"temperature_final": 0.0}, r"^student: temperature_final must be > 0, got 0.0"),
    ({"n_distill": 0}, r"^student: n_distill must be >= 1, got 0"),
    ({"adam_steps": -1}, r"^student: adam_steps must be >= 0, got -1"),  # the shared checks still run
])
def test_bad_distillation_config_names_the_key(values, message):
    with pytest.raises(ValueError, match=message):
        from_dict(DistillConfig, values, "student")
    from_dict(DistillConfig, {"distill_weight_final": 0.0})  # lambda falling to 0 is a recipe, not an error


def test_bad_toml_names_the_file_and_section(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text('problem = "burgers"\n[teacher]\nadam_steps = 1\n[student]\nn_distil = 3\n')
    with pytest.raises(ValueError, match=r"x.toml: \[student\]: unknown key 'n_distil'"):
        load_config(path)
    path.write_text('problem = "burger"\n[teacher]\n[student]\n')
    with pytest.raises(ValueError, match="unknown problem 'burger'"):
        load_config(path)
    path.write_text('problem = "burgers"\n[teacher]\n[students]\n')
    with pytest.raises(ValueError, match="unknown section 'students'"):
        load_config(path)


def test_network_periodic_must_name_an_input():
    with pytest.raises(ValueError, match=r"network.periodic names \['z'\]"):
        build_network(problems.get("allen_cahn"), NetworkConfig(periodic={"z": 1.0}))


@pytest.fixture
def model_file(tmp_path):
    p = problems.get("wave_1d", c=1.5)
    model = build_network(p, NetworkConfig(width=8, depth=2, fourier_features=2))
    path = save_model(tmp_path / "teacher.pt", model, "teacher", p, {"seed": 3}, {"rel_l2": 0.5}, [])
    return path, model


def test_model_file_rebuilds_the_module(model_file):
    path, model = model_file
    loaded = kd_edge.load_model(path, problem="wave_1d", kind="teacher")
    x = torch.rand(10, 2)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert loaded.info["coefficients"] == {"c": 1.5} and loaded.problem.c == 1.5
    assert loaded.info["multiply_adds"] == model.multiply_adds()


def test_model_file_of_another_problem_or_kind_is_refused(model_file):
    path, _ = model_file
    with pytest.raises(ValueError, match="is a model of 'wave_1d', not 'burgers'"):
        kd_edge.load_model(path, problem="burgers")
    with pytest.raises(ValueError, match="is a teacher model, not a student"):
        kd_edge.load_model(path, kind="student")


def test_damaged_or_foreign_model_files_are_refused(model_file, tmp_path):
    path, _ = model_file
    with pytest.raises(FileNotFoundError, match="no model file"):
        kd_edge.load_model(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="is not a kd-edge model file"):
        kd_edge.load_model(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="missing architecture, coefficients"):
        kd_edge.load_model(tmp_path / "foreign.pt")
    data = torch.load(path, weights_only=True)
    data["architecture"]["width"] = 9  # weights no longer fit the architecture
    torch.save(data, tmp_path / "mismatch.pt")
    with pytest.raises(ValueError, match="weights do not fit the stored architecture"):
        kd_edge.load_model(tmp_path / "mismatch.pt")
    data["architecture"]["width"], data["format"] = 8, 7
    torch.save(data, tmp_path / "future.pt")
    with pytest.raises(ValueError, match="model format 7, this kd-edge reads 1"):
        kd_edge.load_model(tmp_path / "future.pt")


def test_pressure_is_compared_up_to_a_constant_or_a_function_of_time():
    from kd_edge.training.evaluate import errors

    rng = np.random.default_rng(0)
    for name, offset in (("navier_stokes_kovasznay", lambda p: 0.7 + 0 * p[:, 0]),
                         ("navier_stokes_taylor_green", lambda p: 3 * p[:, 2] ** 2 - 1)):
        problem = problems.get(name)
        points, reference = problem.reference_grid()
        shifted = reference.copy()
        shifted[:, 2] += offset(points)  # a gauge the equations cannot see: no error
        assert errors(problem, shifted, reference, points)["rel_l2_p"] < 1e-12
        shifted[:, 2] += 1e-3 * rng.standard_normal(len(points))  # a real error stays
        assert errors(problem, shifted, reference, points)["rel_l2_p"] > 1e-3 * 0.5 / np.abs(reference[:, 2]).mean()
        bad = reference.copy()
        bad[:, 2] += points[:, 0]  # an offset varying in space is an error, even for Taylor-Green
        assert errors(problem, bad, reference, points)["rel_l2_p"] > 0.1


def test_a_setting_missing_from_an_older_file_counts_as_its_default():
    from kd_edge.training.config import can_continue, changed_settings, to_dict

    new = to_dict(TrainConfig())
    old = {k: v for k, v in new.items() if k != "precision"}  # written before `precision` existed
    assert changed_settings(old, new) == []
    assert changed_settings(old, to_dict(TrainConfig(precision="float64"))) == ["precision"]
    longer = dict(new, lbfgs_steps=new["lbfgs_steps"] + 1)
    assert can_continue(old, longer) and can_continue(old, dict(longer, precision="float64"))
    assert not can_continue(old, dict(new, precision="float64"))  # no more L-BFGS steps: nothing to continue
    assert not can_continue(old, dict(longer, adam_steps=1))
    old_network = dict(old, network={k: v for k, v in new["network"].items() if k != "hard_constraints"})
    assert changed_settings(old_network, new) == []
    constrained = dict(new, network=dict(new["network"], hard_constraints=True))
    assert changed_settings(old_network, constrained) == ["network"]
