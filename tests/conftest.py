import contextlib
import shutil
import zlib

import pytest
import torch

import kd_edge
from kd_edge.networks import MLP


@pytest.fixture(scope="session", autouse=True)
def reference_cache(tmp_path_factory):
    """Keep reference caches of the test run out of the user's ~/.cache."""
    with pytest.MonkeyPatch.context() as patch:
        path = tmp_path_factory.mktemp("kd_edge_cache")
        patch.setenv("KD_EDGE_CACHE", str(path))
        yield path


@pytest.fixture(scope="session")
def compiled(tmp_path_factory):
    """compiled(n_in, n_out, width, depth, activation) -> (torch model, artifact path), cached per session."""
    cache = {}

    def build(n_in=2, n_out=1, width=20, depth=4, activation="tanh"):
        key = (n_in, n_out, width, depth, activation)
        if key not in cache:
            torch.manual_seed(zlib.crc32(repr(key).encode()))
            model = MLP(n_in, n_out, width, depth, activation).eval()
            out = tmp_path_factory.mktemp("artifact")
            cache[key] = (model, kd_edge.compile(model, torch.zeros(3, n_in), out))
        return cache[key]

    return build


@pytest.fixture
def artifact_copy(compiled, tmp_path):
    """A private copy of the reference 2-20x4-1 artifact that a test may damage."""
    _, artifact = compiled()
    dst = tmp_path / "artifact"
    shutil.copytree(artifact, dst)
    return dst


@pytest.fixture
def private_registry(monkeypatch):
    """Problems a test registers vanish after it."""
    import kd_edge.problems as problems

    monkeypatch.setattr(problems, "_REGISTRY", dict(problems._REGISTRY))


class TrainingInterrupted(Exception):
    """Raised by interrupt_training, standing for a killed run."""


@pytest.fixture
def interrupt_training(monkeypatch):
    """`with interrupt_training(step): train(...)`: training stops with TrainingInterrupted once it
    has recorded a step >= `step` (the block expects that), like a run killed there."""
    from kd_edge.training.trainer import Trainer

    @contextlib.contextmanager
    def interrupt(step):
        original = Trainer.after_step

        def crash(self, *args, **kwargs):
            original(self, *args, **kwargs)
            if self.step >= step:
                raise TrainingInterrupted

        monkeypatch.setattr(Trainer, "after_step", crash)
        try:
            with pytest.raises(TrainingInterrupted):
                yield
        finally:
            monkeypatch.setattr(Trainer, "after_step", original)

    return interrupt
