"""Does a compiled artifact still solve the PDE? Its errors against the reference grid."""

import numpy as np

import kd_edge
from kd_edge.training.evaluate import errors, predict


def verify_artifact(problem, model, artifact) -> dict:
    """Errors of the compiled artifact and of the PyTorch model on the reference grid, and the
    largest difference between the two (max_abs_vs_pytorch, and relative to the output scale)."""
    points, reference = problem.reference_grid()
    compiled = kd_edge.Solver(artifact, threads=1, out_of_domain="flag").predict(points.astype(np.float32))
    eager = predict(model, points)
    diff = float(np.abs(compiled.astype(np.float64) - eager).max())
    return {"compiled": errors(problem, compiled.astype(np.float64), reference, points),
            "pytorch": errors(problem, eager, reference, points),
            "max_abs_vs_pytorch": diff,
            "relative_vs_pytorch": diff / max(1.0, float(np.abs(eager).max())),
            "points": len(points)}
