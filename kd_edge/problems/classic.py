"""One problem per classical PDE type, each with an analytic solution:
elliptic (Poisson), parabolic (heat) and hyperbolic (wave)."""

import math

import numpy as np
import torch

from kd_edge.problems.base import Condition, Problem


def _zero_on_edges(names_and_boxes):
    return [Condition(name, box, lambda f: f["u"]) for name, box in names_and_boxes]


class PoissonProblem(Problem):
    """-(u_xx + u_yy) = f on [0, 1]^2, u = 0 on the boundary; manufactured
    u = sin(a pi x) sin(b pi y), so f = (a^2 + b^2) pi^2 u."""

    name = "poisson_2d"
    inputs = ("x", "y")
    outputs = ("u",)
    lower, upper = (0.0, 0.0), (1.0, 1.0)

    def __init__(self, a: float = 1.0, b: float = 2.0):
        self.a, self.b = float(a), float(b)
        self.coefficients = {"a": self.a, "b": self.b}

    def source(self, x, y):
        return (self.a**2 + self.b**2) * math.pi**2 * torch.sin(self.a * math.pi * x) * torch.sin(self.b * math.pi * y)

    def equations(self, f):
        return [-(f["u_xx"] + f["u_yy"]) - self.source(f["x"], f["y"])]

    def conditions(self):
        return _zero_on_edges([("boundary x=0", ((0, 0), (0, 1))), ("boundary x=1", ((1, 0), (1, 1))),
                               ("boundary y=0", ((0, 0), (1, 0))), ("boundary y=1", ((0, 1), (1, 1)))])

    def grid_axes(self):
        return [np.linspace(0, 1, 101), np.linspace(0, 1, 101)]

    def solution(self, p):
        return torch.sin(self.a * math.pi * p[:, :1]) * torch.sin(self.b * math.pi * p[:, 1:2])


class HeatProblem(Problem):
    """u_t = alpha (u_xx + u_yy) on [0, 1]^2 x [0, 1], u = 0 on the boundary,
    u(x, y, 0) = sin(pi x) sin(pi y); exact u = exp(-2 pi^2 alpha t) sin(pi x) sin(pi y)."""

    name = "heat_2d"
    inputs = ("x", "y", "t")
    outputs = ("u",)
    lower, upper = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)

    def __init__(self, alpha: float = 0.05):
        self.alpha = float(alpha)
        self.coefficients = {"alpha": self.alpha}

    def equations(self, f):
        return [f["u_t"] - self.alpha * (f["u_xx"] + f["u_yy"])]

    def conditions(self):
        initial = Condition("initial", ((0, 0, 0), (1, 1, 0)),
                            lambda f: f["u"] - torch.sin(math.pi * f["x"]) * torch.sin(math.pi * f["y"]))
        return [initial] + _zero_on_edges([
            ("boundary x=0", ((0, 0, 0), (0, 1, 1))), ("boundary x=1", ((1, 0, 0), (1, 1, 1))),
            ("boundary y=0", ((0, 0, 0), (1, 0, 1))), ("boundary y=1", ((0, 1, 0), (1, 1, 1)))])

    def grid_axes(self):
        return [np.linspace(0, 1, 51), np.linspace(0, 1, 51), np.linspace(0, 1, 11)]

    def solution(self, p):
        x, y, t = p[:, :1], p[:, 1:2], p[:, 2:3]
        return torch.exp(-2 * math.pi**2 * self.alpha * t) * torch.sin(math.pi * x) * torch.sin(math.pi * y)


class WaveProblem(Problem):
    """u_tt = c^2 u_xx on x in [0, 1], t in [0, 1], u(0, t) = u(1, t) = 0,
    u(x, 0) = sin(pi x) + sin(3 pi x) / 2, u_t(x, 0) = 0;
    exact u = sin(pi x) cos(c pi t) + sin(3 pi x) cos(3 c pi t) / 2."""

    name = "wave_1d"
    inputs = ("x", "t")
    outputs = ("u",)
    lower, upper = (0.0, 0.0), (1.0, 1.0)

    def __init__(self, c: float = 1.0):
        self.c = float(c)
        self.coefficients = {"c": self.c}

    def equations(self, f):
        return [f["u_tt"] - self.c**2 * f["u_xx"]]

    def conditions(self):
        def initial(f):
            return f["u"] - self.initial_displacement(f["x"])
        return [
            Condition("initial displacement", ((0, 0), (1, 0)), initial),
            Condition("initial velocity", ((0, 0), (1, 0)), lambda f: f["u_t"]),
        ] + _zero_on_edges([("boundary x=0", ((0, 0), (0, 1))), ("boundary x=1", ((1, 0), (1, 1)))])

    def grid_axes(self):
        return [np.linspace(0, 1, 101), np.linspace(0, 1, 101)]

    def constrain(self, p, raw):
        # u = u0(x) + t^2 x (1 - x) N: u(x, 0) = u0, u_t(x, 0) = 0 and u = 0 at x = 0, 1 (u0 vanishes there)
        x, t = p[:, :1], p[:, 1:2]
        return self.initial_displacement(x) + t * t * x * (1 - x) * raw

    def exact_conditions(self, network):
        return tuple(c.name for c in self.conditions())

    @staticmethod
    def initial_displacement(x):
        return torch.sin(math.pi * x) + 0.5 * torch.sin(3 * math.pi * x)

    def solution(self, p):
        x, t = p[:, :1], p[:, 1:2]
        return (torch.sin(math.pi * x) * torch.cos(self.c * math.pi * t)
                + 0.5 * torch.sin(3 * math.pi * x) * torch.cos(3 * self.c * math.pi * t))
