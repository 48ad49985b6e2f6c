"""kd_edge.compile(..., tune_trials=N): the fused kernel's variants timed on this CPU, cached."""

import json

import numpy as np
import pytest
import torch

import kd_edge
from kd_edge.compiler import tune
from kd_edge.compiler.kernel import KernelOptions
from kd_edge.networks import MLP


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KD_EDGE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "tuning.json"


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(3)
    return MLP(2, 1, 12, 2).eval()


def test_tuning_times_candidates_keeps_the_fastest_and_caches_it(tmp_path, own_cache, model, monkeypatch):
    artifact = kd_edge.compile(model, torch.zeros(3, 2), tmp_path / "a", tune_trials=3, progress=False)
    record = next(iter(json.loads(own_cache.read_text()).values()))
    timings = record["timings"]
    assert record["trials"] == 3 and [(t["accumulators"], t["reciprocal"]) for t in timings] == [
        (c.accumulators, c.reciprocal) for c in tune.CANDIDATES[:3]]
    assert all(t["seconds"] > 0 for t in timings)
    fastest = min(timings, key=lambda t: t["seconds"])
    kernel = json.loads((artifact / "manifest.json").read_text())["runtime"]["kernel"]
    assert kernel == {"accumulators": fastest["accumulators"], "reciprocal": fastest["reciprocal"], "tuned_trials": 3}
    x = np.random.default_rng(0).uniform(-1, 1, size=(777, 2)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(kd_edge.Solver(artifact).predict(x), model(torch.from_numpy(x)).numpy(), atol=1e-5)

    # a second compile of the same shape (other weights) times nothing; asking for more trials does
    monkeypatch.setattr(tune, "_time_candidate", lambda *a: pytest.fail("cached result was timed again"))
    torch.manual_seed(4)
    kd_edge.compile(MLP(2, 1, 12, 2).eval(), torch.zeros(3, 2), tmp_path / "b", tune_trials=2, progress=False)
    timed = []
    monkeypatch.setattr(tune, "_time_candidate", lambda *a: timed.append(a[3]) or 1.0 / len(timed))
    kd_edge.compile(model, torch.zeros(3, 2), tmp_path / "c", tune_trials=4, progress=False)
    assert timed == list(tune.CANDIDATES[:4])
    kernel = json.loads((tmp_path / "c" / "manifest.json").read_text())["runtime"]["kernel"]
    assert (kernel["accumulators"], kernel["reciprocal"], kernel["tuned_trials"]) == (
        tune.CANDIDATES[3].accumulators, tune.CANDIDATES[3].reciprocal, 4)  # the last was "fastest"


def test_a_damaged_cache_is_replaced(tmp_path, own_cache, model, monkeypatch):
    own_cache.parent.mkdir(parents=True)
    own_cache.write_text("{ not json")
    monkeypatch.setattr(tune, "_time_candidate", lambda *a: 1.0)
    kd_edge.compile(model, torch.zeros(3, 2), tmp_path / "a", tune_trials=1, progress=False)
    assert len(json.loads(own_cache.read_text())) == 1


def test_untuned_artifacts_record_the_default_kernel(compiled):
    _, artifact = compiled(2, 1, 20, 4, "tanh")
    kernel = json.loads((artifact / "manifest.json").read_text())["runtime"]["kernel"]
    assert kernel == dict(KernelOptions().as_dict(), tuned_trials=0)


def test_bad_tuning_requests_are_refused(tmp_path, own_cache, model):
    for bad in (-1, True, 2.5, "3"):
        with pytest.raises(ValueError, match="tune_trials must be a non-negative integer"):
            kd_edge.compile(model, torch.zeros(3, 2), tmp_path / "a", tune_trials=bad)
    with pytest.raises(ValueError, match="backend='vm' has none"):
        kd_edge.compile(model, torch.zeros(3, 2), tmp_path / "a", backend="vm", tune_trials=2)
    with pytest.raises(ValueError, match="needs a dense chain, but ELU with alpha 0.5"):
        kd_edge.compile(torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.ELU(alpha=0.5)).eval(), torch.zeros(3, 2),
                        tmp_path / "a", tune_trials=2)
    with pytest.raises(ValueError, match="needs target='host', not a x86-64-v3 target"):
        kd_edge.compile(model, torch.zeros(3, 2), tmp_path / "a", target="x86-64-v3", tune_trials=2)
    assert not own_cache.exists()
    for bad in (dict(accumulators=0), dict(accumulators=9), dict(reciprocal="rcp14")):
        with pytest.raises(ValueError, match="accumulators must be|unknown reciprocal 'rcp14'"):
            KernelOptions(**bad)
