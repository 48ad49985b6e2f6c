"""A PINN trained in DeepXDE as the teacher: distil it into a kd-edge student and compile that.

DeepXDE's own Burgers example (its geometry, PDE and conditions, its FNN, Adam) trains the
teacher; kd-edge's Burgers problem (the same PDE, nu = 0.01/pi, inputs (x, t)) distils it into a
3x20 student, which compiles to the fused kernel. The reference solution only reports errors.

    .venv/bin/python examples/deepxde_teacher.py [--dde-iterations 15000] [--adam-steps 2000]
        [--lbfgs-steps 500] [--out build/examples/deepxde_teacher]

The defaults take minutes on 2 cores; the test runs it with tiny budgets.
"""

import argparse
import os
import warnings
from pathlib import Path

import numpy as np
import torch

import kd_edge
from kd_edge.problems import get
from kd_edge.training import DistillConfig, NetworkConfig, distill, evaluate

os.environ.setdefault("DDE_BACKEND", "pytorch")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import deepxde as dde


def deepxde_burgers(iterations: int, points: int):
    """The teacher, trained the DeepXDE way (its Burgers example)."""
    geomtime = dde.geometry.GeometryXTime(dde.geometry.Interval(-1, 1), dde.geometry.TimeDomain(0, 1))

    def pde(x, y):
        return (dde.grad.jacobian(y, x, i=0, j=1) + y * dde.grad.jacobian(y, x, i=0, j=0)
                - 0.01 / np.pi * dde.grad.hessian(y, x, i=0, j=0))

    bc = dde.icbc.DirichletBC(geomtime, lambda x: 0, lambda _, on_boundary: on_boundary)
    ic = dde.icbc.IC(geomtime, lambda x: -np.sin(np.pi * x[:, 0:1]), lambda _, on_initial: on_initial)
    data = dde.data.TimePDE(geomtime, pde, [bc, ic], num_domain=points, num_boundary=points // 32,
                            num_initial=points // 16)
    net = dde.nn.FNN([2] + [64] * 4 + [1], "tanh", "Glorot normal")
    model = dde.Model(data, net)
    model.compile("adam", lr=1e-3)
    model.train(iterations=iterations, display_every=max(iterations // 5, 1))
    return net.eval()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dde-iterations", type=int, default=15000)
    parser.add_argument("--dde-points", type=int, default=2540)
    parser.add_argument("--adam-steps", type=int, default=2000)
    parser.add_argument("--lbfgs-steps", type=int, default=500)
    parser.add_argument("--out", type=Path, default=Path("build/examples/deepxde_teacher"))
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    np.random.seed(0)
    teacher = deepxde_burgers(args.dde_iterations, args.dde_points)  # any torch module (n, 2) -> (n, 1)
    problem = get("burgers")
    config = DistillConfig(network=NetworkConfig(width=20, depth=3), adam_steps=args.adam_steps,
                           lbfgs_steps=args.lbfgs_steps)
    student = distill(problem, teacher, config)
    artifact = kd_edge.compile(student, torch.zeros(4, 2), args.out / "artifact")

    teacher_error = evaluate(problem, teacher)["rel_l2"]
    student_error = evaluate(problem, student)["rel_l2"]
    x, _ = problem.reference_grid()
    with torch.no_grad():
        gap = np.abs(kd_edge.Solver(artifact).predict(x.astype(np.float32))
                     - student(torch.from_numpy(x).float()).numpy()).max()
    print(f"teacher (DeepXDE FNN 4x64): relative L2 {teacher_error:.3e}")
    print(f"student (kd-edge 3x20, distilled): relative L2 {student_error:.3e}")
    print(f"compiled: {artifact} (max |compiled - PyTorch| on the grid {gap:.1e})")


if __name__ == "__main__":
    main()
