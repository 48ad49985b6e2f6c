"""Derivatives and the residual the way a controller uses them, on the Burgers student.

1. Track where u(x, t) crosses a level (0: the shock) as t advances: Newton's method, each step
   one predict call that returns u and u_x, against bisection on values alone.
2. The residual as a trust signal: u_t + u u_x - nu u_xx at each answer. A query outside the
   trained time, and a student whose last layer was damaged by 5%, both give values that look
   plausible; their residuals do not.

    .venv/bin/python examples/shock_tracking.py [--level 0.0] [--out build/examples/shock]
"""

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch

import kd_edge

ROOT = Path(__file__).resolve().parent.parent


def newton(solver, x, a, b, t, level, tol=1e-5, max_steps=30):
    """Root of u(., t) = level from x inside [a, b], where u - level changes sign (Numerical
    Recipes' rtsafe): a Newton step that would leave the bracket bisects instead. Each call
    returns u and u_x. (root, predict calls)."""
    f = lambda x: solver.predict(np.array([[x, t]], np.float32))[0, :2] - [level, 0]  # noqa: E731
    (fa, _), (fb, _) = f(a), f(b)
    if (fa < 0) == (fb < 0):
        raise ValueError(f"u - {level} has the same sign at {a} and {b} at t = {t}")
    for calls in range(3, max_steps + 3):
        value, slope = f(x)
        if abs(value) < tol or b - a < tol:
            return x, calls
        if (value < 0) == (fa < 0):
            a, fa = x, value
        else:
            b = x
        step = x - value / slope if slope != 0 else a - 1.0
        x = step if a < step < b else 0.5 * (a + b)
    return x, max_steps + 2


def bisection(solver, a, b, t, level, tol=1e-5):
    """Root of u(., t) = level in [a, b] (a sign change): (root, predict calls)."""
    u = lambda x: float(solver.predict(np.array([[x, t]], np.float32))[0, 0]) - level  # noqa: E731
    fa, calls = u(a), 1
    while b - a > tol:
        m = 0.5 * (a + b)
        fm = u(m)
        calls += 1
        if (fm < 0) == (fa < 0):
            a, fa = m, fm
        else:
            b = m
    return 0.5 * (a + b), calls


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--level", type=float, default=0.0, help="the level u crosses (0: the shock)")
    p.add_argument("--out", default=str(ROOT / "build" / "examples" / "shock"))
    args = p.parse_args()
    out = Path(args.out)
    student = kd_edge.load_model(ROOT / "models" / "burgers" / "student.pt", problem="burgers", kind="student")
    example = torch.zeros(4, 2)
    with_derivatives = kd_edge.Solver(str(kd_edge.compile(student, example, out / "derivatives",
                                                          derivatives=["u_x"], residual=True, progress=False)))
    values = kd_edge.Solver(str(kd_edge.compile(student, example, out / "values", progress=False)))

    for solver in (with_derivatives, values):  # first calls page the library in: not what we time
        for _ in range(2000):
            solver.predict(np.zeros((1, 2), np.float32))
    times = np.linspace(0.1, 0.9, 9)
    print(f"where u = {args.level:g}: Newton (u and u_x per call) against bisection (u per call), both on "
          f"[-0.9, 0.9] to |u - level| < 1e-5 or an interval of 1e-5")
    print(f"{'t':>5} {'x Newton':>10} {'calls':>5} {'x bisection':>12} {'calls':>5}")
    x, totals = 0.5, {"newton": [0, 0.0], "bisection": [0, 0.0]}
    for t in times:
        start = time.perf_counter()
        x, n_calls = newton(with_derivatives, x, -0.9, 0.9, t, args.level)  # from the last root
        totals["newton"][0] += n_calls
        totals["newton"][1] += time.perf_counter() - start
        start = time.perf_counter()
        xb, b_calls = bisection(values, -0.9, 0.9, t, args.level)
        totals["bisection"][0] += b_calls
        totals["bisection"][1] += time.perf_counter() - start
        print(f"{t:5.2f} {x:10.5f} {n_calls:5d} {xb:12.5f} {b_calls:5d}")
    for method, (calls, seconds) in totals.items():
        print(f"{method}: {calls} predict calls, {seconds * 1e6:.0f} us in all (Python Solver, this machine)")

    # The residual as a trust signal, against the threshold the manifest records (twice the
    # 99th percentile of the student's |residual| on random points of the domain, not the
    # reference grid).
    manifest = json.loads((out / "derivatives" / "manifest.json").read_text())
    threshold = manifest["runtime"]["residual"]["threshold"][0]
    rng = np.random.default_rng(0)
    damaged = copy.deepcopy(student)
    with torch.no_grad():
        last = [m for m in damaged.modules() if isinstance(m, torch.nn.Linear)][-1]
        last.weight.mul_(1.05)  # 5% on the last layer's weights
    broken = kd_edge.Solver(str(kd_edge.compile(damaged, example, out / "damaged", derivatives=["u_x"],
                                                residual=True, progress=False)))
    fresh = rng.uniform([-1, 0], [1, 1], (4096, 2)).astype(np.float32)
    later = rng.uniform([-1, 1.2], [1, 2], (4096, 2)).astype(np.float32)  # trained for t <= 1
    print(f"\nresidual threshold {threshold:.3g} ({manifest['runtime']['residual']['threshold_rule']})")
    print(f"{'case':46s} {'max |u|':>8} {'median |residual|':>18} {'over threshold':>15}")
    for label, solver, points in (("the student, 4,096 new points in the domain", with_derivatives, fresh),
                                  ("the damaged student, the same points", broken, fresh),
                                  ("the student at t in [1.2, 2] (outside)", with_derivatives, later)):
        answers = solver.predict(points)
        r = np.abs(answers[:, 2])
        print(f"{label:46s} {np.abs(answers[:, 0]).max():8.3f} {np.median(r):18.3g} {np.mean(r > threshold):14.1%}")


if __name__ == "__main__":
    main()
