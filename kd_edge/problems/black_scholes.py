"""Black-Scholes for a European call: V_t + sigma^2 S^2 V_SS / 2 + r S V_S - r V = 0,
S in [0, 2K], t in [0, T]; V(S, T) = max(S - K, 0), V(0, t) = 0, V(2K, t) = 2K - K exp(-r (T - t)).

The price domain (rather than log-price) is kept so S = 0 is part of it, as the standard
boundary conditions and the paper's benchmark use it."""

import math

import numpy as np
import torch
from scipy.stats import norm

from kd_edge.problems.base import Condition, Problem


class BlackScholesProblem(Problem):
    name = "black_scholes"
    inputs = ("S", "t")
    outputs = ("V",)

    def __init__(self, sigma: float = 0.2, r: float = 0.05, strike: float = 1.0, maturity: float = 1.0):
        self.sigma, self.r, self.K, self.T = float(sigma), float(r), float(strike), float(maturity)
        self.coefficients = {"sigma": self.sigma, "r": self.r, "strike": self.K, "maturity": self.T}
        self.lower, self.upper = (0.0, 0.0), (2 * self.K, self.T)

    def equations(self, f):
        S = f["S"]
        return [f["V_t"] + 0.5 * self.sigma**2 * S**2 * f["V_SS"] + self.r * S * f["V_S"] - self.r * f["V"]]

    def conditions(self):
        s_max = 2 * self.K
        return [
            Condition("terminal payoff", ((0, self.T), (s_max, self.T)),
                      lambda f: f["V"] - torch.clamp(f["S"] - self.K, min=0)),
            Condition("boundary S=0", ((0, 0), (0, self.T)), lambda f: f["V"]),
            Condition("boundary S=2K", ((s_max, 0), (s_max, self.T)),
                      lambda f: f["V"] - (s_max - self.K * torch.exp(-self.r * (self.T - f["t"])))),
        ]

    def grid_axes(self):
        return [np.linspace(0, 2 * self.K, 201), np.linspace(0, self.T, 101)]

    def solution(self, p):
        """The closed-form call price; its limits give the payoff at t = T and 0 at S = 0."""
        S = torch.clamp(p[:, :1], min=1e-300)
        tau = torch.clamp(self.T - p[:, 1:], min=1e-300)
        d1 = (torch.log(S / self.K) + (self.r + 0.5 * self.sigma**2) * tau) / (self.sigma * torch.sqrt(tau))
        d2 = d1 - self.sigma * torch.sqrt(tau)
        return S * torch.special.ndtr(d1) - self.K * torch.exp(-self.r * tau) * torch.special.ndtr(d2)

    def put(self, points) -> np.ndarray:
        """Closed-form European put (numpy/scipy, independent of `solution`), for parity checks."""
        p = self.check_points(points)
        S, tau = p[:, :1], self.T - p[:, 1:]
        d1 = (np.log(S / self.K) + (self.r + 0.5 * self.sigma**2) * tau) / (self.sigma * np.sqrt(tau))
        d2 = d1 - self.sigma * np.sqrt(tau)
        return self.K * math.e ** (-self.r * tau) * norm.cdf(-d2) - S * norm.cdf(-d1)
