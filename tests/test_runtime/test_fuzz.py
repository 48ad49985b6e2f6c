"""Fuzzing the manifest parser and predict's input checks (hypothesis): every case either
works or raises a clear Python error; none crashes the process.

KD_EDGE_FUZZ_EXAMPLES=100000 pytest tests/test_runtime/test_fuzz.py  runs longer by hand."""

import json
import os
import shutil
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import kd_edge
from kd_edge._runtime import parse_manifest

EXAMPLES = int(os.environ.get("KD_EDGE_FUZZ_EXAMPLES", "0"))


def fuzz(ci_examples: int):
    """Fixed cases in CI (derandomized), fresh ones when run by hand with KD_EDGE_FUZZ_EXAMPLES."""
    return settings(database=None, deadline=None, suppress_health_check=list(HealthCheck),
                    derandomize=EXAMPLES == 0, max_examples=EXAMPLES or ci_examples)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)


@st.composite
def mutated_manifests(draw, manifest: dict):
    """The valid manifest with a few fields deleted, retyped or replaced, at any depth."""
    m = json.loads(json.dumps(manifest))
    for _ in range(draw(st.integers(1, 3))):
        holder = m
        while True:
            keys = list(holder) if isinstance(holder, dict) else list(range(len(holder)))
            if not keys:
                break
            key = draw(st.sampled_from(keys))
            if isinstance(holder[key], (dict, list)) and holder[key] and draw(st.booleans()):
                holder = holder[key]
                continue
            if isinstance(holder, dict) and draw(st.integers(0, 3)) == 0:
                del holder[key]
            else:
                holder[key] = draw(json_values)
            break
    return json.dumps(m, allow_nan=True)


@pytest.fixture(scope="module")
def manifest_text(compiled):
    _, artifact = compiled()
    return (artifact / "manifest.json").read_text()


def test_parser_accepts_the_real_manifest(manifest_text):
    assert parse_manifest(manifest_text)["inputs"] == ["x0", "x1"]


@fuzz(1500)
@given(text=st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_parser_survives_arbitrary_text(text):
    try:
        parse_manifest(text)
    except ValueError:
        pass


def test_parser_survives_mutated_manifests(manifest_text):
    @fuzz(1500)
    @given(text=mutated_manifests(json.loads(manifest_text)))
    def check(text):
        try:
            info = parse_manifest(text)
        except ValueError as e:
            assert "manifest" in str(e)
        else:
            assert len(info["inputs"]) >= 1 and len(info["outputs"]) >= 1

    check()


def test_mutated_artifacts_open_and_predict_cleanly(compiled, tmp_path):
    """With the library's checksum intact the library loads; whatever the manifest then claims,
    opening and predicting end in a result or a Python error."""
    _, artifact = compiled()
    manifest = json.loads((artifact / "manifest.json").read_text())
    keep = {"library", "library_sha256"}  # mutations elsewhere reach past the checksum
    counter = iter(range(10**9))
    outcomes = {"refused": 0, "opened": 0}

    @fuzz(300)
    @given(text=mutated_manifests({k: v for k, v in manifest.items() if k not in keep}))
    def check(text):
        mutated = json.loads(text) if text else {}
        if not isinstance(mutated, dict):
            return
        mutated.update({k: manifest[k] for k in keep})
        dst = tmp_path / str(next(counter))
        shutil.copytree(artifact, dst)
        (dst / "manifest.json").write_text(json.dumps(mutated))
        try:
            solver = kd_edge.Solver(dst, threads=1)
        except (ValueError, FileNotFoundError):
            outcomes["refused"] += 1
            return
        outcomes["opened"] += 1
        try:
            y = solver.predict(np.zeros((5, solver.n_inputs), np.float32))
            assert y.shape == (5, solver.n_outputs)
        except (ValueError, RuntimeError):
            pass
        shutil.rmtree(dst)

    check()
    assert outcomes["refused"] and outcomes["opened"], outcomes  # both paths were exercised


@pytest.fixture(scope="module")
def solver(compiled):
    _, artifact = compiled()
    return kd_edge.Solver(artifact, threads=1)


dtypes = st.sampled_from([np.float16, np.float32, np.float64, np.int32, np.int64, np.bool_, np.complex64,
                          np.uint8])
arrays = dtypes.flatmap(lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6)))


@fuzz(1500)
@given(x=arrays, out_kind=st.sampled_from(["none", "right", "wrong-shape", "wrong-dtype"]))
def test_predict_survives_arbitrary_arrays(solver, x, out_kind):
    n = x.shape[0] if x.ndim else 0
    out = {"none": None, "right": np.empty((n, 1), np.float32), "wrong-shape": np.empty((n + 1, 1), np.float32),
           "wrong-dtype": np.empty((n, 1), np.float64)}[out_kind]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # float64 beyond float32 becomes inf, then is refused
            y = solver.predict(x, out=out)
    except (ValueError, TypeError):
        return
    assert x.dtype.kind == "f" and x.ndim == 2 and x.shape[1] == 2 and out_kind in ("none", "right")
    assert np.isfinite(x).all() and y.shape == (n, 1) and np.isfinite(y).all()
