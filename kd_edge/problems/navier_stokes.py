"""2-D incompressible Navier-Stokes with analytic solutions: Kovasznay flow (steady) and
Taylor-Green vortices (unsteady). Outputs (u, v, p); pressure is defined up to a constant
(Kovasznay) or a function of time (Taylor-Green)."""

import math

import numpy as np
import torch

from kd_edge.problems.base import Condition, Problem


def _dirichlet(problem, names):
    """Condition equation: the named outputs equal the exact solution."""
    def equation(f):
        exact = problem.solution(f.points)
        return [f[n] - exact[:, problem.outputs.index(n)] for n in names]
    return equation


def _edges(problem, names):
    """Dirichlet conditions on the four edges x = lo/hi, y = lo/hi of a spatial box."""
    lower, upper = list(problem.lower), list(problem.upper)
    out = []
    for axis, label in ((0, "x"), (1, "y")):
        for side, value in (("lo", lower[axis]), ("hi", upper[axis])):
            lo, hi = lower.copy(), upper.copy()
            lo[axis] = hi[axis] = value
            out.append(Condition(f"boundary {label}={value:g}", (tuple(lo), tuple(hi)), _dirichlet(problem, names)))
    return out


class KovasznayProblem(Problem):
    """Steady flow behind a grid: u u_x + v u_y + p_x = (u_xx + u_yy)/Re (and for v), u_x + v_y = 0,
    on x in [-0.5, 1], y in [-0.5, 1.5], with the exact velocity on the boundary."""

    name = "navier_stokes_kovasznay"
    inputs = ("x", "y")
    outputs = ("u", "v", "p")
    gauge_outputs = ("p",)
    lower, upper = (-0.5, -0.5), (1.0, 1.5)

    def __init__(self, Re: float = 20.0):
        self.Re = float(Re)
        self.coefficients = {"Re": self.Re}
        self.lam = self.Re / 2 - math.sqrt(self.Re**2 / 4 + 4 * math.pi**2)

    def equations(self, f):
        nu = 1 / self.Re
        return [
            f["u"] * f["u_x"] + f["v"] * f["u_y"] + f["p_x"] - nu * (f["u_xx"] + f["u_yy"]),
            f["u"] * f["v_x"] + f["v"] * f["v_y"] + f["p_y"] - nu * (f["v_xx"] + f["v_yy"]),
            f["u_x"] + f["v_y"],
        ]

    def conditions(self):
        return _edges(self, ("u", "v"))

    def grid_axes(self):
        return [np.linspace(-0.5, 1.0, 101), np.linspace(-0.5, 1.5, 101)]

    def solution(self, p):
        x, y = p[:, :1], p[:, 1:2]
        e = torch.exp(self.lam * x)
        u = 1 - e * torch.cos(2 * math.pi * y)
        v = self.lam / (2 * math.pi) * e * torch.sin(2 * math.pi * y)
        pressure = 0.5 * (1 - torch.exp(2 * self.lam * x))
        return torch.cat([u, v, pressure], dim=1)


class TaylorGreenProblem(Problem):
    """Decaying Taylor-Green vortices: u_t + u u_x + v u_y + p_x = nu (u_xx + u_yy) (and for v),
    u_x + v_y = 0, on [0, 2 pi]^2 x [0, T], with the exact initial and boundary values."""

    name = "navier_stokes_taylor_green"
    inputs = ("x", "y", "t")
    outputs = ("u", "v", "p")
    gauge_outputs = ("p",)
    gauge_inputs = ("t",)  # only grad p enters the equations: p + c(t) solves them too

    def __init__(self, nu: float = 0.01, duration: float = 1.0):
        self.nu, self.T = float(nu), float(duration)
        self.coefficients = {"nu": self.nu, "duration": self.T}
        self.lower, self.upper = (0.0, 0.0, 0.0), (2 * math.pi, 2 * math.pi, self.T)

    def equations(self, f):
        return [
            f["u_t"] + f["u"] * f["u_x"] + f["v"] * f["u_y"] + f["p_x"] - self.nu * (f["u_xx"] + f["u_yy"]),
            f["v_t"] + f["u"] * f["v_x"] + f["v"] * f["v_y"] + f["p_y"] - self.nu * (f["v_xx"] + f["v_yy"]),
            f["u_x"] + f["v_y"],
        ]

    def conditions(self):
        two_pi = 2 * math.pi
        initial = Condition("initial", ((0, 0, 0), (two_pi, two_pi, 0)), _dirichlet(self, ("u", "v")))
        return [initial] + _edges(self, ("u", "v"))

    def grid_axes(self):
        return [np.linspace(0, 2 * math.pi, 65), np.linspace(0, 2 * math.pi, 65), np.linspace(0, self.T, 11)]

    def constrain(self, p, raw):
        # u = u0 + t N_u, v = v0 + t N_v, p = N_p: the initial velocity exactly
        x, y, t = p[:, :1], p[:, 1:2], p[:, 2:3]
        u0, v0 = -torch.cos(x) * torch.sin(y), torch.sin(x) * torch.cos(y)
        return torch.cat([u0 + t * raw[:, :1], v0 + t * raw[:, 1:2], raw[:, 2:3]], dim=1)

    def exact_conditions(self, network):
        return ("initial",)

    def solution(self, p):
        x, y, t = p[:, :1], p[:, 1:2], p[:, 2:3]
        decay = torch.exp(-2 * self.nu * t)
        u = -torch.cos(x) * torch.sin(y) * decay
        v = torch.sin(x) * torch.cos(y) * decay
        pressure = -0.25 * (torch.cos(2 * x) + torch.cos(2 * y)) * decay**2
        return torch.cat([u, v, pressure], dim=1)
