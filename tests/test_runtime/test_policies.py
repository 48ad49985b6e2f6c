"""Solver policies from Python: caller-supplied output, out-of-domain handling, output checks,
one Artifact shared by many Solvers and threads."""

import threading

import numpy as np
import pytest
import torch

import kd_edge
from kd_edge.networks import MLP

BOX = ([-1.0, 0.0], [1.0, 2.0])  # x in [-1, 1], t in [0, 2]


@pytest.fixture(scope="module")
def boxed(tmp_path_factory):
    torch.manual_seed(3)
    model = MLP(2, 1, 16, 3, lower=BOX[0], upper=BOX[1]).eval()
    return model, kd_edge.compile(model, torch.zeros(3, 2), tmp_path_factory.mktemp("boxed"), input_names=["x", "t"])


def torch_predict(model, x):
    with torch.no_grad():
        return model(torch.as_tensor(np.asarray(x, np.float32))).numpy()


POINTS = np.array([[0.0, 1.0], [1.5, 1.0], [-1.0, 2.0], [0.2, -0.5]], np.float32)  # points 1 and 3 outside
CLAMPED = np.array([[0.0, 1.0], [1.0, 1.0], [-1.0, 2.0], [0.2, 0.0]], np.float32)


def test_manifest_records_the_model_domain_and_defaults(boxed):
    _, artifact = boxed
    info = kd_edge.Artifact(str(artifact)).info
    assert info["lower"] == BOX[0] and info["upper"] == BOX[1]
    assert info["out_of_domain"] == "flag" and info["check_outputs"] is True


def test_flag_computes_and_reports(boxed):
    model, artifact = boxed
    solver = kd_edge.Solver(artifact)
    y = solver.predict(POINTS)
    np.testing.assert_allclose(y, torch_predict(model, POINTS), atol=1e-5)
    assert (solver.out_of_domain, solver.first_out_of_domain) == (2, 1)
    solver.predict(CLAMPED)
    assert (solver.out_of_domain, solver.first_out_of_domain) == (0, None)


def test_clamp_evaluates_the_nearest_point_in_the_domain(boxed):
    model, artifact = boxed
    solver = kd_edge.Solver(artifact, out_of_domain="clamp")
    given = POINTS.copy()
    y = solver.predict(given)
    np.testing.assert_array_equal(y, kd_edge.Solver(artifact).predict(CLAMPED))
    np.testing.assert_allclose(y, torch_predict(model, CLAMPED), atol=1e-5)
    np.testing.assert_array_equal(given, POINTS)  # the caller's array is left alone
    assert solver.out_of_domain == 2


def test_reject_names_the_first_point_outside(boxed):
    _, artifact = boxed
    solver = kd_edge.Solver(artifact, out_of_domain="reject")
    with pytest.raises(ValueError, match=r"input point 1 is outside the training domain: x = 1.5 not in \[-1, 1\]"):
        solver.predict(POINTS)
    assert solver.predict(CLAMPED).shape == (4, 1)


def test_compile_time_default_policy_is_recorded_and_overridable(boxed, tmp_path):
    model, _ = boxed
    artifact = kd_edge.compile(model, torch.zeros(3, 2), tmp_path / "a", out_of_domain="reject")
    assert kd_edge.Solver(artifact).domain_policy == "reject"
    assert kd_edge.Solver(artifact, out_of_domain="flag").domain_policy == "flag"


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(out_of_domain="wrap"), ValueError, "unknown out_of_domain 'wrap'; valid: flag, clamp, reject"),
    (dict(check_outputs=1), TypeError, "check_outputs must be True or False"),
    (dict(input_bounds=[(0, 1)]), ValueError, r"input_bounds must be 2 \(lower, upper\) pairs"),
    (dict(input_bounds=[(0, 1), (2, 1)]), ValueError, "lower <= upper"),
    (dict(input_bounds=[(0, 1), (0, float("nan"))]), ValueError, "finite"),
])
def test_compile_refuses_bad_policy_arguments(boxed, tmp_path, kwargs, error, message):
    model, _ = boxed
    with pytest.raises(error, match=message):
        kd_edge.compile(model, torch.zeros(3, 2), tmp_path / "a", **kwargs)


def test_policies_needing_a_domain_are_refused_without_one(compiled, tmp_path):
    model, artifact = compiled()  # an MLP built without bounds records no domain
    assert kd_edge.Artifact(str(artifact)).info["lower"] == []
    with pytest.raises(ValueError, match="needs the training domain, which this artifact does not record"):
        kd_edge.Solver(artifact, out_of_domain="clamp")
    with pytest.raises(ValueError, match="needs input_bounds"):
        kd_edge.compile(model, torch.zeros(3, 2), tmp_path / "a", out_of_domain="clamp")
    bounded = kd_edge.compile(model, torch.zeros(3, 2), tmp_path / "b", input_bounds=[(0, 1), (0, 1)])
    assert kd_edge.Solver(bounded, out_of_domain="reject").domain_policy == "reject"
    with pytest.raises(ValueError, match='out_of_domain must be "flag", "clamp" or "reject", got "nope"'):
        kd_edge.Solver(artifact, out_of_domain="nope")


def test_non_finite_output_is_refused_unless_the_check_is_off(tmp_path):
    model = MLP(1, 1, 8, 1).eval()
    with torch.no_grad():  # every hidden unit is tanh(1) > 0, so 8 x 3e38 x 0.76 overflows float32
        model.net[0].weight.zero_()
        model.net[0].bias.fill_(1.0)
        model.net[-1].weight.fill_(3e38)
    artifact = kd_edge.compile(model, torch.zeros(3, 1), tmp_path / "overflow", output_names=["u"])
    with pytest.raises(RuntimeError, match=r"output point 0 is non-finite in column 0 \(u\) although its input is finite"):
        kd_edge.Solver(artifact).predict(np.full((3, 1), 0.5, np.float32))
    y = kd_edge.Solver(artifact, check_outputs=False).predict(np.full((3, 1), 0.5, np.float32))
    assert np.isinf(y).all()


def test_predict_writes_into_a_caller_array(boxed):
    model, artifact = boxed
    solver = kd_edge.Solver(artifact, max_batch=64)
    assert solver.max_batch == 64
    x = np.random.default_rng(1).uniform(0, 1, size=(64, 2)).astype(np.float32)
    out = np.full((64, 1), np.nan, np.float32)
    assert solver.predict(x, out=out) is out
    np.testing.assert_allclose(out, torch_predict(model, x), atol=1e-5)


@pytest.mark.parametrize("out, error, message", [
    (np.zeros((64, 1), np.float64), TypeError, r"out must be a C-contiguous float32 numpy array of shape \(64, 1\)"),
    (np.zeros((64, 2), np.float32)[:, :1], TypeError, "C-contiguous"),
    (np.zeros((63, 1), np.float32), ValueError, r"out has the wrong shape; expected \(64, 1\)"),
    (np.zeros(64, np.float32), ValueError, "wrong shape"),
    ([[0.0]] * 64, TypeError, "numpy array"),
])
def test_bad_output_arrays_are_refused(boxed, out, error, message):
    _, artifact = boxed
    with pytest.raises(error, match=message):
        kd_edge.Solver(artifact).predict(np.zeros((64, 2), np.float32), out=out)


def test_read_only_output_is_refused(boxed):
    _, artifact = boxed
    out = np.zeros((4, 1), np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        kd_edge.Solver(artifact).predict(np.zeros((4, 2), np.float32), out=out)


def test_solvers_share_one_artifact_across_threads(boxed):
    model, artifact = boxed
    shared = kd_edge.Artifact(str(artifact))
    x = np.random.default_rng(2).uniform(0, 1, size=(300, 2)).astype(np.float32)
    expected = kd_edge.Solver(shared, threads=1).predict(x)
    mismatches = []

    def hammer():
        solver = kd_edge.Solver(shared, threads=1)
        out = np.empty_like(expected)
        for _ in range(200):
            solver.predict(x, out=out)
            if not np.array_equal(out, expected):
                mismatches.append(1)

    workers = [threading.Thread(target=hammer) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not mismatches
    del shared  # solvers keep the library loaded on their own
    np.testing.assert_allclose(expected, torch_predict(model, x), atol=1e-5)


def test_solver_refuses_a_non_path():
    with pytest.raises(TypeError, match="artifact directory"):
        kd_edge.Solver(42)


@pytest.mark.parametrize("n", [1, 17, 1000, 4099])
def test_one_offender_is_found_wherever_it_is(boxed, n):
    """The input is screened by one flat pass over whole blocks of points and a tail: a single
    value outside the box (or non-finite) at any position, in either column, is found."""
    _, artifact = boxed
    flag, reject = kd_edge.Solver(artifact), kd_edge.Solver(artifact, out_of_domain="reject")
    inside = np.tile(np.array([[0.5, 1.0]], np.float32), (n, 1))
    inside[::3] = [[-1.0, 2.0]]  # the box's own edges are inside
    flag.predict(inside)
    assert flag.out_of_domain == 0
    for point in sorted({0, n // 2, n - 17, n - 1} & set(range(n))):
        for column, value in ((0, 1.0001), (1, -1e-6)):
            x = inside.copy()
            x[point, column] = value
            flag.predict(x)
            assert (flag.out_of_domain, flag.first_out_of_domain) == (1, point)
            with pytest.raises(ValueError, match=rf"input point {point} is outside the training domain"):
                reject.predict(x)
            x[point, column] = np.inf if column else np.nan
            with pytest.raises(ValueError, match=rf"input point {point} has a non-finite value in column {column}"):
                flag.predict(x)


def test_out_that_overlaps_the_input_is_refused(boxed):
    _, artifact = boxed
    solver = kd_edge.Solver(artifact)
    buffer = np.zeros(3 * 4096, np.float32)
    x, out = buffer[:2 * 4096].reshape(4096, 2), buffer[4096:2 * 4096].reshape(4096, 1)  # out inside x
    with pytest.raises(ValueError, match="the input and output buffers overlap"):
        solver.predict(x, out=out)
    solver.predict(x, out=buffer[2 * 4096:].reshape(4096, 1))  # beside it: fine


@pytest.mark.parametrize("kind", ["fused-clamp", "vm"])
def test_one_solver_shared_by_threads_refuses_instead_of_racing(boxed, tmp_path, kind):
    """Misuse that used to give wrong values (fused, clamp: one scratch) or a segfault (VM): the
    call that overlaps another thread's gets RuntimeError; every call that returns is right."""
    if kind == "vm":
        from tests.test_runtime.test_loader import build

        solver = kd_edge.Solver(build("vm", tmp_path / "vm"))
        x = np.random.default_rng(4).uniform(-1, 1, size=(20000, 2)).astype(np.float32)
    else:
        solver = kd_edge.Solver(boxed[1], out_of_domain="clamp")
        x = np.random.default_rng(4).uniform(-3, 3, size=(200000, 2)).astype(np.float32)  # most points clamped
    expected = solver.predict(x)
    wrong, refused, start = [], [], threading.Barrier(3)

    def hammer(rows):
        start.wait()
        for _ in range(60):
            try:
                if not np.array_equal(solver.predict(x[rows]), expected[rows]):
                    wrong.append(1)
            except RuntimeError as e:
                assert "in use by another thread" in str(e)
                refused.append(1)

    workers = [threading.Thread(target=hammer, args=(slice(None, None, k),)) for k in (1, 2, 3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not wrong
    assert refused  # the three threads did overlap, and each overlap was caught


def test_bad_option_types_are_refused_by_name(boxed):
    with pytest.raises(TypeError, match="check_outputs must be True, False or None.*'no'"):
        kd_edge.Solver(boxed[1], check_outputs="no")
    with pytest.raises(TypeError, match="out_of_domain must be .* got 3"):
        kd_edge.Solver(boxed[1], out_of_domain=3)
    assert kd_edge.Solver(boxed[1], check_outputs=np.False_).check_outputs is False


def test_masked_values_are_refused_not_computed(boxed):
    solver = kd_edge.Solver(boxed[1])
    x = np.ma.masked_array(POINTS, mask=np.zeros_like(POINTS, bool))
    np.testing.assert_array_equal(solver.predict(x), solver.predict(POINTS))  # nothing masked: plain data
    x[1, 0] = np.ma.masked
    with pytest.raises(ValueError, match="masked array with masked values"):
        solver.predict(x)


@pytest.mark.parametrize("cls", [kd_edge.Solver, kd_edge.Artifact])
def test_an_object_made_without_init_is_an_error_not_a_crash(cls):
    blank = cls.__new__(cls)
    with pytest.raises(TypeError, match="never initialised"):
        blank.predict(POINTS) if cls is kd_edge.Solver else blank.info
    if cls is kd_edge.Solver:
        with pytest.raises(TypeError, match="never initialised"):
            blank.n_inputs
        with pytest.raises(TypeError, match="expected a kd_edge.Solver"):
            kd_edge.Solver.predict(5, POINTS)
