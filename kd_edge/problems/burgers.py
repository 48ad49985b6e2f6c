"""Viscous Burgers: u_t + u u_x = nu u_xx on x in [-1, 1], t in [0, 1]; u(0, x) = -sin(pi x), u(t, +-1) = 0."""

import math

import numpy as np
import torch

from kd_edge.problems.base import Condition, Problem


class BurgersProblem(Problem):
    name = "burgers"
    inputs = ("x", "t")
    outputs = ("u",)
    lower, upper = (-1.0, 0.0), (1.0, 1.0)

    def __init__(self, nu: float = 0.01 / math.pi, quadrature_points: int = 200):
        self.nu = float(nu)
        self.coefficients = {"nu": self.nu}
        # Gauss-Hermite nodes for the Cole-Hopf integrals; log-weights keep the sums finite.
        z, w = np.polynomial.hermite.hermgauss(quadrature_points)
        self._z = torch.from_numpy(z)
        self._log_w = torch.from_numpy(np.log(w))

    def equations(self, f):
        return [f["u_t"] + f["u"] * f["u_x"] - self.nu * f["u_xx"]]

    def conditions(self):
        return [
            Condition("initial", ((-1, 0), (1, 0)), lambda f: f["u"] + torch.sin(math.pi * f["x"])),
            Condition("boundary x=-1", ((-1, 0), (-1, 1)), lambda f: f["u"]),
            Condition("boundary x=+1", ((1, 0), (1, 1)), lambda f: f["u"]),
        ]

    def grid_axes(self):
        return [np.linspace(-1, 1, 256), np.arange(100) * 0.01]

    def solution(self, p):
        """Cole-Hopf: u = -int sin(pi y) F(y) G dy / int F(y) G dy with y = x - sqrt(4 nu t) z,
        F(y) = exp(-cos(pi y) / (2 pi nu)), G the Gauss-Hermite weight; exact up to quadrature."""
        x, t = p[:, :1], p[:, 1:]
        y = x - torch.sqrt(4 * self.nu * t) * self._z.to(p)  # (N, nodes)
        weights = torch.softmax(self._log_w.to(p) - torch.cos(math.pi * y) / (2 * math.pi * self.nu), dim=1)
        return -(weights * torch.sin(math.pi * y)).sum(dim=1, keepdim=True)
