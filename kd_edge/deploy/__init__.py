"""Deploying to a board: the runtime built for a target, and a bundle to copy onto the board.

    kd_edge.deploy.bundle("burgers", "cortex-a72", "out/burgers-a72")

A bundle is an install tree (bin/, lib/, include/, lib/cmake/kd_edge, lib/pkgconfig) of the
runtime built for the target without TVM, plus the model compiled for it (artifact/) and a README.
"""

from kd_edge.deploy.bundle import bundle
from kd_edge.deploy.runtime import build_runtime, cross_tools_missing

__all__ = ["build_runtime", "bundle", "cross_tools_missing"]
