"""kd-edge: distil physics-informed neural networks into tiny compiled PDE solvers.

    artifact = kd_edge.compile(model, example_input, "out/student")   # PyTorch -> TVM -> .so
    y = kd_edge.Solver(artifact).predict(x)                           # C++ runtime, (N, d_out)
"""

from kd_edge._runtime import Artifact, ArtifactError, Solver

__version__ = "0.1.0"
__all__ = ["Artifact", "ArtifactError", "Solver", "compile", "load_model"]


def __getattr__(name):
    # The compiler pulls in torch and TVM (seconds to import); a process that only runs
    # artifacts through Solver never pays for them.
    if name == "compile":
        from kd_edge.compiler import compile

        return compile
    if name == "load_model":
        from kd_edge.training import load_model

        return load_model
    raise AttributeError(f"module 'kd_edge' has no attribute {name!r}")
