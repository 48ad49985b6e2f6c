"""Solver.predict's input contract from Python: what it accepts, converts and refuses."""

import threading
import time
import warnings

import numpy as np
import pytest
import torch

import kd_edge


@pytest.fixture(scope="module")
def reference(compiled):
    model, artifact = compiled()
    return model, kd_edge.Solver(str(artifact))


def expected(model, x):
    with torch.no_grad():
        return model(torch.as_tensor(np.asarray(x, dtype=np.float32))).numpy()


@pytest.mark.parametrize("make", [
    lambda x: x.astype(np.float64),
    lambda x: x.astype(np.float16),
    lambda x: np.asfortranarray(x),
    lambda x: np.ascontiguousarray(np.repeat(x, 2, axis=0))[::2],   # strided rows
    lambda x: np.ascontiguousarray(x.T).T,                          # transposed view
    lambda x: x.tolist(),
], ids=["float64", "float16", "fortran", "strided", "transposed", "nested-list"])
def test_float_input_in_any_layout_is_converted(reference, make):
    model, solver = reference
    x = np.random.default_rng(0).uniform(-1, 1, size=(33, 2)).astype(np.float32)
    given = make(x)
    y = solver.predict(given)
    assert y.dtype == np.float32 and y.flags.c_contiguous and y.shape == (33, 1)
    np.testing.assert_allclose(y, expected(model, np.asarray(given, dtype=np.float32)), rtol=0, atol=1e-5)


def test_zero_points_give_an_empty_result(reference):
    _, solver = reference
    assert solver.predict(np.empty((0, 2), np.float32)).shape == (0, 1)


@pytest.mark.parametrize("x, error, message", [
    (np.zeros((5, 3), np.float32), ValueError, "input has 3 columns, this artifact expects 2"),
    (np.zeros((5, 1), np.float32), ValueError, "input has 1 columns, this artifact expects 2"),
    (np.zeros(2, np.float32), ValueError, r"expects shape \(n_points, 2\), got an array with 1 dimension"),
    (np.zeros((2, 2, 1), np.float32), ValueError, "got an array with 3 dimension"),
    (np.zeros((5, 2), np.int64), TypeError, "floating-point input, got dtype int64"),
    (np.zeros((5, 2), np.complex64), TypeError, "got dtype complex64"),
    (np.zeros((5, 2), bool), TypeError, "got dtype bool"),
    ([["a", "b"]], TypeError, "got dtype <U1"),
])
def test_bad_input_is_refused_with_a_clear_error(reference, x, error, message):
    _, solver = reference
    with pytest.raises(error, match=message):
        solver.predict(x)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("n", [1, 20, 25_600])
def test_non_finite_input_is_refused_naming_the_point(reference, bad, n):
    _, solver = reference
    x = np.zeros((n, 2), np.float32)
    x[n - 1, 1] = bad
    with pytest.raises(ValueError, match=rf"input point {n - 1} has a non-finite value in column 1 \(x1\)"):
        solver.predict(x)


def test_float64_beyond_float32_range_is_refused(reference):
    _, solver = reference
    x = np.array([[0.0, 0.0], [1e300, 0.0]])
    with pytest.raises(RuntimeWarning, match="overflow"):  # pytest turns numpy's warning into an error
        solver.predict(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ValueError, match=r"input point 1 has a non-finite value in column 0 \(x0\)"):
            solver.predict(x)


def test_predict_releases_the_gil(reference):
    _, solver = reference
    # Size the call to last >= 50 ms, then count how often this thread runs while another
    # thread is inside predict: with the GIL held it could not run at all.
    n = 4096
    while True:
        x = np.random.default_rng(0).uniform(-1, 1, size=(n, 2)).astype(np.float32)
        start = time.perf_counter()
        solver.predict(x)
        if time.perf_counter() - start >= 0.05:
            break
        n *= 2
    worker = threading.Thread(target=solver.predict, args=(x,))
    ticks = 0
    worker.start()
    while worker.is_alive():
        time.sleep(0.001)
        ticks += 1
    worker.join()
    assert ticks >= 10, f"the main thread ran only {ticks} times during a >= 50 ms predict"


def test_every_batch_size_gives_the_model_whichever_kernel_runs(compiled, tmp_path):
    """Up to two tiles and one: the latency kernel alone, a padded tile, whole tiles and a
    remainder; and the same artifact without the latency kernel (as compiled before it existed)."""
    import json
    import shutil

    model, artifact = compiled()
    old = tmp_path / "old"
    shutil.copytree(artifact, old)
    manifest = json.loads((old / "manifest.json").read_text())
    tile = manifest["runtime"]["tile_points"]
    assert 0 < manifest["runtime"]["small_max_points"] < tile
    for key in ("small_entry", "tile_points", "small_max_points"):
        del manifest["runtime"][key]
    (old / "manifest.json").write_text(json.dumps(manifest))
    solvers = {"latency kernel": kd_edge.Solver(artifact, threads=1), "without it": kd_edge.Solver(old, threads=1)}
    x = np.random.default_rng(7).uniform(-1, 1, size=(2 * tile + 1, 2)).astype(np.float32)
    for n in range(1, 2 * tile + 2):
        for label, solver in solvers.items():
            np.testing.assert_allclose(solver.predict(x[:n]), expected(model, x[:n]), rtol=0, atol=1e-5,
                                       err_msg=f"n={n}, {label}")
