"""kd_edge.problems.get / names / register, coefficients, and point validation."""

import numpy as np
import pytest
import torch

import kd_edge.problems as problems

BUILT_IN = ["allen_cahn", "black_scholes", "burgers", "heat_2d", "navier_stokes_kovasznay",
            "navier_stokes_taylor_green", "poisson_2d", "wave_1d"]


def test_every_problem_is_registered():
    assert problems.names() == BUILT_IN


def test_unknown_problem_lists_the_valid_names():
    with pytest.raises(ValueError, match="unknown problem 'burger' \\(did you mean 'burgers'\\?\\); valid problems: allen_cahn, black_scholes, burgers"):
        problems.get("burger")


def test_unknown_coefficient_lists_the_valid_ones():
    with pytest.raises(ValueError, match="burgers has no coefficient 'viscosity'; valid coefficients: nu"):
        problems.get("burgers", viscosity=0.1)


@pytest.mark.parametrize("name, coefficients, point", [
    ("burgers", {"nu": 0.05}, [0.5, 0.5]),
    ("black_scholes", {"sigma": 0.4}, [1.0, 0.5]),
    ("navier_stokes_kovasznay", {"Re": 40.0}, [0.5, 0.25]),
    ("navier_stokes_taylor_green", {"nu": 0.1}, [1.0, 2.0, 1.0]),
    ("poisson_2d", {"b": 3.0}, [0.3, 0.3]),
    ("heat_2d", {"alpha": 0.2}, [0.5, 0.5, 1.0]),
    ("wave_1d", {"c": 2.0}, [0.3, 0.4]),
])
def test_reference_follows_the_coefficients(name, coefficients, point):
    default, changed = problems.get(name), problems.get(name, **coefficients)
    assert changed.coefficients != default.coefficients
    assert not np.allclose(default.reference([point]), changed.reference([point]))


@pytest.mark.parametrize("name", BUILT_IN)
def test_declaration_is_consistent(name):
    p = problems.get(name)
    lower, upper = p.bounds
    assert len(p.inputs) == len(lower) == len(upper) and (lower < upper).all()
    points, values = p.reference_grid()
    assert points.shape == (np.prod([len(a) for a in p.grid_axes()]), len(p.inputs))
    assert values.shape == (len(points), len(p.outputs)) and np.isfinite(values).all()
    for condition in p.conditions():
        region = np.asarray(condition.region, float)
        assert ((region[0] >= lower) & (region[1] <= upper)).all(), condition.name
        assert (region[0] == region[1]).any(), f"{condition.name} is not on a boundary or initial slice"


def test_wrong_width_names_the_inputs():
    with pytest.raises(ValueError, match=r"input has 3 columns, burgers expects 2 inputs \(x, t\)"):
        problems.get("burgers").reference(np.zeros((4, 3)))


def test_points_outside_the_domain_are_refused():
    with pytest.raises(ValueError, match=r"point 1 has t = 1.5, outside the domain \[0, 1\]"):
        problems.get("burgers").reference([[0.0, 0.5], [0.0, 1.5]])


def test_nan_points_are_refused():
    with pytest.raises(ValueError, match="NaN or Inf .first at row 2"):
        problems.get("wave_1d").reference([[0.1, 0.1], [0.2, 0.2], [np.nan, 0.3]])


def test_residual_checks_its_points_too():
    p = problems.get("poisson_2d")
    model = torch.nn.Linear(2, 1)
    with pytest.raises(ValueError, match="input has 3 columns"):
        p.residual(model, torch.zeros(5, 3))


def test_unknown_sampler_and_field_are_named():
    p = problems.get("burgers")
    with pytest.raises(ValueError, match="unknown sampler 'grid'; valid: uniform, lhs, sobol"):
        p.sample(10, np.random.default_rng(0), "grid")
    fields = problems.AutogradFields(p.inputs, p.outputs, torch.nn.Linear(2, 1), torch.zeros(3, 2))
    with pytest.raises(KeyError, match="unknown field 'u_y'"):
        fields["u_y"]


@pytest.mark.parametrize("method", ["uniform", "lhs", "sobol"])
def test_samples_cover_the_domain(method):
    p = problems.get("navier_stokes_taylor_green")
    x = p.sample(2048, np.random.default_rng(0), method)
    lower, upper = p.bounds
    assert x.shape == (2048, 3) and (x >= lower).all() and (x <= upper).all()
    # every eighth of each axis gets points
    for axis in range(3):
        counts = np.histogram(x[:, axis], bins=8, range=(lower[axis], upper[axis]))[0]
        assert counts.min() > 2048 / 8 * 0.6


class Advection(problems.Problem):
    name = "test_advection"
    inputs, outputs = ("x", "t"), ("u",)
    lower, upper = (0.0, 0.0), (1.0, 1.0)

    def __init__(self, speed: float = 0.5):
        self.speed, self.coefficients = speed, {"speed": speed}

    def equations(self, f):
        return [f["u_t"] + self.speed * f["u_x"]]

    def conditions(self):
        return [problems.Condition("initial", ((0, 0), (1, 0)), lambda f: f["u"] - torch.sin(f["x"]))]

    def grid_axes(self):
        return [np.linspace(0, 1, 11), np.linspace(0, 1, 11)]

    def solution(self, p):
        return torch.sin(p[:, :1] - self.speed * p[:, 1:])


def test_a_new_problem_needs_no_change_elsewhere(private_registry):
    problems.register(Advection)
    p = problems.get("test_advection", speed=0.25)
    points, values = p.reference_grid()
    np.testing.assert_allclose(values[:, 0], np.sin(points[:, 0] - 0.25 * points[:, 1]))


def test_register_refuses_bad_declarations(private_registry):
    with pytest.raises(TypeError, match="expects a Problem subclass"):
        problems.register(object)
    bad = type("Bad", (Advection,), {"inputs": ("xx", "t")})
    with pytest.raises(ValueError, match="inputs must be single characters"):
        problems.register(bad)
