"""Compile stage: PyTorch module -> torch.export -> TVM Relax -> artifact directory."""

from kd_edge.compiler.build import compile
from kd_edge.compiler.manifest import LIBRARY_NAME, MANIFEST_FORMAT, MANIFEST_NAME
from kd_edge.compiler.target import resolve_target

__all__ = ["LIBRARY_NAME", "MANIFEST_FORMAT", "MANIFEST_NAME", "compile", "resolve_target"]
