"""The README's user-declared PDE runs as printed, and its exact solution solves it."""

import re
from pathlib import Path

import numpy as np
import torch

import kd_edge.problems as problems

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_declares_a_working_problem(private_registry):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    (source,) = [b for b in blocks if "class FisherKPP" in b]
    namespace = {}
    exec(compile(source, str(README), "exec"), namespace)
    p = problems.get("fisher_kpp")
    assert isinstance(p, namespace["FisherKPP"])
    points = torch.from_numpy(p.sample(300, np.random.default_rng(0)))
    exact = lambda x: p.solution(x)  # noqa: E731
    assert float(p.residual(exact, points)[0].detach().abs().max()) < 1e-10
    grid, values = p.reference_grid()
    assert values.shape == (201 * 21, 1) and 0 <= values.min() and values.max() <= 1
