import numpy as np
import numpy.typing as npt

MANIFEST_FORMAT: int

class ArtifactError(ValueError):
    """The artifact is damaged, of another format, or built for a CPU this host is not."""

class Solver:
    """A compiled artifact loaded for prediction (one per thread)."""

    def __init__(self, artifact_dir: str, threads: int = 0) -> None: ...
    def predict(self, x: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """(n_points, n_inputs) floats -> (n_points, n_outputs) float32."""
    @property
    def threads(self) -> int: ...
    @property
    def n_inputs(self) -> int: ...
    @property
    def n_outputs(self) -> int: ...
    @property
    def input_names(self) -> list[str]: ...
    @property
    def output_names(self) -> list[str]: ...
    @property
    def target_cpu(self) -> str: ...

def sha256_file(path: str) -> str: ...
