"""Each reference solution is right, and each residual is coded right.

- Residual code: the exact solution, as a torch function, has residual ~0 (autograd).
- Reference: finite differences of the reference on its grid satisfy the PDE, with an error
  that falls at second order as the step halves (independent of autograd and of the code
  that produced the reference).
"""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

import kd_edge.problems as problems
from kd_edge.problems.allen_cahn import solve_allen_cahn
from kd_edge.problems.fields import FiniteDifferenceFields

ANALYTIC = ["burgers", "black_scholes", "navier_stokes_kovasznay", "navier_stokes_taylor_green",
            "poisson_2d", "heat_2d", "wave_1d"]


class Exact(torch.nn.Module):
    """A problem's exact solution as a model, so residual() differentiates it by autograd."""

    def __init__(self, problem):
        super().__init__()
        self.problem = problem

    def forward(self, p):
        return self.problem.solution(p)


def interior(problem, n, margin=0.05, seed=0):
    lower, upper = problem.bounds
    pad = margin * (upper - lower)
    return problems.sample_box(lower + pad, upper - pad, n, np.random.default_rng(seed))


@pytest.mark.parametrize("name", ANALYTIC)
def test_exact_solution_has_zero_residual(name):
    p = problems.get(name)
    points = torch.from_numpy(interior(p, 500))
    residuals = p.residual(Exact(p), points)
    assert len(residuals) == (3 if name.startswith("navier") else 1)
    for r in residuals:
        assert r.dtype == torch.float64 and float(r.detach().abs().max()) < 1e-9


# The standard far-field condition V(2K, t) = 2K - K exp(-r (T - t)) drops the option's
# remaining time value there, which is at most 6.5e-6 for the default coefficients.
CONDITION_TOLERANCE = {("black_scholes", "boundary S=2K"): 1e-5}


@pytest.mark.parametrize("name", ANALYTIC)
def test_exact_solution_meets_every_condition(name):
    p = problems.get(name)
    for condition in p.conditions():
        points = torch.from_numpy(condition.sample(200, np.random.default_rng(1)))
        tolerance = CONDITION_TOLERANCE.get((name, condition.name), 1e-9)
        for r in p.condition_residual(condition, Exact(p), points):
            assert float(r.detach().abs().max()) < tolerance, condition.name


def test_residual_code_detects_a_wrong_solution():
    # guards the two tests above: a solution of another PDE does not pass
    p, other = problems.get("heat_2d"), problems.get("heat_2d", alpha=0.06)
    r = p.residual(Exact(other), torch.from_numpy(interior(p, 100)))[0]
    assert float(r.detach().abs().max()) > 1e-3


def test_allen_cahn_residual_code_on_a_manufactured_solution():
    # no closed form: check the residual against one worked out by hand for u = sin(pi x) e^-t,
    # u_t - d u_xx - k(u - u^3) = -u + d pi^2 u - k(u - u^3)
    p = problems.get("allen_cahn")
    model = lambda x: torch.sin(math.pi * x[:, :1]) * torch.exp(-x[:, 1:])  # noqa: E731
    points = torch.from_numpy(interior(p, 300))
    u = model(points)[:, 0]
    expected = -u + p.d * math.pi**2 * u - p.k * (u - u**3)
    torch.testing.assert_close(p.residual(model, points)[0], expected, rtol=1e-12, atol=1e-12)


def max_condition_residual(problem, condition, model, seed=2):
    points = torch.from_numpy(condition.sample(100, np.random.default_rng(seed)))
    return max(float(r.detach().abs().max()) for r in problem.condition_residual(condition, model, points))


def test_allen_cahn_conditions_accept_and_reject_the_right_functions():
    p = problems.get("allen_cahn")
    initial, periodic = p.conditions()
    initial_data = lambda x: x[:, :1] ** 2 * torch.cos(math.pi * x[:, :1]) + 0 * x[:, 1:]  # noqa: E731
    periodic_in_x = lambda x: torch.cos(math.pi * x[:, :1]) * (1 + x[:, 1:])  # noqa: E731
    assert max_condition_residual(p, initial, initial_data) < 1e-12
    assert max_condition_residual(p, periodic, periodic_in_x) < 1e-12
    assert max_condition_residual(p, initial, periodic_in_x) > 0.1
    # x^2 cos(pi x) matches in value at x = +-1 but not in slope (2 vs -2): the standard
    # initial data is not smooth across the periodic boundary, and the condition sees it
    assert max_condition_residual(p, periodic, initial_data) == pytest.approx(4.0)


def fd_residual(problem, points, h):
    fields = FiniteDifferenceFields(problem.inputs, problem.outputs, problem.reference, points, h)
    return max(float(r.abs().max()) for r in problem.equations(fields))


@pytest.mark.parametrize("name", problems.names())
def test_reference_satisfies_its_pde_at_second_order(name):
    p = problems.get(name)
    points, _ = p.reference_grid()
    lower, upper = p.bounds
    step = np.full(len(lower), 1e-3)
    if name == "wave_1d":
        step[1] = 0.6e-3  # at equal steps c = 1 is the magic Courant number: differences are exact
    keep = np.all((points > lower + 4 * step) & (points < upper - 4 * step), axis=1)
    if name == "black_scholes":
        keep &= points[:, 1] < 0.9 * p.T  # the payoff kink at maturity has no second derivative
    rng = np.random.default_rng(0)
    chosen = points[keep][rng.choice(keep.sum(), 300, replace=False)]
    coarse, fine = fd_residual(p, chosen, step), fd_residual(p, chosen, step / 2)
    assert 3.6 < coarse / fine < 4.4, f"{name}: residual {coarse:.2e} -> {fine:.2e} as h halves"


def cole_hopf_by_adaptive_quadrature(x, t, nu):
    """u(x, t) from the Cole-Hopf integrals by scipy's adaptive quadrature (no Gauss-Hermite)."""
    scale = 1 / (2 * math.pi * nu)  # largest exponent of F, subtracted so nothing overflows
    width = 12 * math.sqrt(4 * nu * t)

    def weight(eta):
        return math.exp(-math.cos(math.pi * (x - eta)) * scale - scale - eta**2 / (4 * nu * t))

    def integral(g):
        return quad(g, -width, width, epsabs=0, epsrel=1e-13, limit=500, points=[0.0])[0]

    return -integral(lambda e: math.sin(math.pi * (x - e)) * weight(e)) / integral(weight)


def test_burgers_matches_brute_force_cole_hopf():
    p = problems.get("burgers")
    points = np.array([[0.3, 0.2], [-0.7, 0.5], [0.01, 0.9], [-0.002, 0.99], [0.5, 0.05], [0.9, 0.75]])
    brute = [cole_hopf_by_adaptive_quadrature(x, t, p.nu) for x, t in points]
    np.testing.assert_allclose(p.reference(points)[:, 0], brute, rtol=0, atol=1e-8)


def test_burgers_grid_is_the_standard_one():
    points, values = problems.get("burgers").reference_grid()
    x, t = points[:, 0].reshape(256, 100), points[:, 1].reshape(256, 100)
    np.testing.assert_allclose(x[:, 0], np.linspace(-1, 1, 256))
    np.testing.assert_allclose(t[0], np.arange(100) * 0.01)
    np.testing.assert_allclose(values[:, 0].reshape(256, 100)[:, 0], -np.sin(np.pi * x[:, 0]), atol=1e-15)


def test_allen_cahn_converges_at_fourth_order_in_dt():
    p = problems.get("allen_cahn")
    _, spectra = p.snapshots()
    final = np.fft.irfft(spectra[-1], p.n_x)
    errors = []
    for dt in (8e-3, 4e-3, 2e-3):
        _, s = solve_allen_cahn(p.d, p.k, p.n_x, dt=dt, save_every=1)
        errors.append(np.abs(np.fft.irfft(s[-1], p.n_x) - final).max())
    ratios = [a / b for a, b in zip(errors, errors[1:])]
    assert all(13 < r < 19 for r in ratios), f"errors {errors}, ratios {ratios}"


def test_allen_cahn_grid_is_the_standard_one_and_interpolates_smoothly():
    p = problems.get("allen_cahn")
    points, values = p.reference_grid()
    assert points.shape == (512 * 201, 2)
    np.testing.assert_allclose(values[::201, 0], p.grid_axes()[0] ** 2 * np.cos(np.pi * p.grid_axes()[0]),
                               atol=1e-12)
    assert np.abs(values).max() <= 1.0 + 1e-9  # the maximum principle: |u| stays within 1
    # between snapshots, Hermite interpolation agrees with an ETDRK4 run that lands there
    _, s = solve_allen_cahn(p.d, p.k, p.n_x, dt=1e-4, t_end=0.3457, save_every=3457)
    x = p.grid_axes()[0]
    at = np.stack([x, np.full_like(x, 0.3457)], axis=1)
    np.testing.assert_allclose(p.reference(at)[:, 0], np.fft.irfft(s[-1], p.n_x), atol=1e-8)


def test_black_scholes_put_call_parity():
    p = problems.get("black_scholes")
    points = interior(p, 200, margin=0.01)
    S, tau = points[:, 0], p.T - points[:, 1]
    np.testing.assert_allclose(p.reference(points)[:, 0] - p.put(points)[:, 0],
                               S - p.K * np.exp(-p.r * tau), rtol=0, atol=1e-12)


@pytest.mark.parametrize("coefficients, S, t, call, put", [
    # the textbook at-the-money case: S = K = 100, r = 5%, sigma = 20%, one year
    ({"strike": 100.0}, 100.0, 0.0, 10.4506, 5.5735),
    # Hull, Options, Futures and Other Derivatives, Example 15.6: S0 = 42, K = 40, r = 10%, sigma = 20%, T = 0.5
    ({"strike": 40.0, "r": 0.1, "maturity": 0.5}, 42.0, 0.0, 4.76, 0.81),
])
def test_black_scholes_textbook_values(coefficients, S, t, call, put):
    p = problems.get("black_scholes", **coefficients)
    decimals = len(str(call).split(".")[1])
    assert round(float(p.reference([[S, t]])[0, 0]), decimals) == call
    assert round(float(p.put([[S, t]])[0, 0]), decimals) == put


def test_black_scholes_reference_at_the_edges():
    p = problems.get("black_scholes")
    S = np.linspace(0, 2, 41)
    np.testing.assert_allclose(p.reference(np.stack([S, np.full_like(S, p.T)], 1))[:, 0], np.maximum(S - 1, 0),
                               atol=1e-12)
    np.testing.assert_allclose(p.reference([[0.0, 0.3]]), [[0.0]], atol=1e-300)


@pytest.mark.parametrize("name", ["navier_stokes_kovasznay", "navier_stokes_taylor_green"])
def test_navier_stokes_fields_are_divergence_free(name):
    p = problems.get(name)
    points = torch.from_numpy(interior(p, 1000)).requires_grad_(True)
    uv = p.solution(points)
    du = torch.autograd.grad(uv[:, 0].sum(), points, retain_graph=True)[0]
    dv = torch.autograd.grad(uv[:, 1].sum(), points)[0]
    assert float((du[:, 0] + dv[:, 1]).abs().max()) < 1e-13


def test_reference_grid_is_cached_on_disk(reference_cache, monkeypatch):
    p = problems.get("wave_1d", c=1.5)
    before = set(reference_cache.glob("wave_1d-*.npz"))
    points, values = p.reference_grid()
    assert len(set(reference_cache.glob("wave_1d-*.npz")) - before) == 1

    def no_recompute(_points):
        raise AssertionError("reference recomputed despite a cache")

    monkeypatch.setattr(p, "reference", no_recompute)
    cached_points, cached_values = p.reference_grid()
    np.testing.assert_array_equal(cached_values, values)
    np.testing.assert_array_equal(cached_points, points)
