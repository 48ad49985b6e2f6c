"""Derivatives and the PDE residual from the fused kernel (kd_edge.compile(..., derivatives=[...],
residual=True)): every shipped student's first derivatives, the second derivatives its PDE uses
and its residual, against float64 autograd on the whole reference grid; every activation and
epilogue operation the derivative kernel takes; the residual traced from the problem's own
equations; and the errors.

Tolerance: each column within 1e-4 of its largest magnitude on the grid. The kernel works in
float32 with the fast tanh and sin; the values themselves are within 4e-5 (wave), and a
derivative multiplies rounding errors by the weights it passes through. Measured worst: wave's
u_tt 6.0e-5, Kovasznay's p_y 3.6e-5; most columns near 1e-6. A residual is a sum of terms that
nearly cancel, so its error is measured against the sum of its terms' magnitudes (|u_t| +
|u u_x| + |nu u_xx| for Burgers), the scale rounding errors are relative to: within 1e-4 of that
sum's largest value on the grid (measured worst: wave, 2.7e-5)."""

import copy
import json

import numpy as np
import pytest
import torch

import kd_edge
from peer_networks import ModifiedMLP, MsFFN, TwoBranches
from kd_edge.networks import MLP
from kd_edge._runtime import Solver
from kd_edge.deploy.runtime import SOURCE
from kd_edge.compiler.residual import Symbol, TracingFields, evaluate, residual_names, trace_residual
from kd_edge.problems.fields import AutogradFields

STUDENTS = sorted(p.parent.name for p in (SOURCE / "models").glob("*/student.pt"))
TOLERANCE = 1e-4


def second_derivatives_of_the_pde(problem):
    return [k for k in problem.equation_keys() if len(k.partition("_")[2]) == 2]


def latency_kernel_agrees(artifact, x, scale=None):
    """One point per call (the latency kernel) against the same 64 points in one call (the batch
    kernel's tiles, which check() holds to float64 autograd): equal within TOLERANCE of the largest
    value in the rows (a residual is a small difference of terms that large: the wave's u_tt and
    c^2 u_xx are about 40 where it is 1e-3). Float32 with a fast tanh puts both kernels' second derivatives
    up to 1.6e-4 (relative) from float64 at random Burgers points, so their summation orders may
    differ by as much (measured: 6.9e-5)."""
    solver = Solver(str(artifact))
    batch = solver.predict(x)
    one = np.concatenate([solver.predict(x[i:i + 1]) for i in range(len(x))])
    gap = np.abs(one - batch).max(axis=0)
    scale = np.abs(batch).max() if scale is None else scale
    assert (gap <= TOLERANCE * scale).all(), gap / scale


def check(model, artifact, x, inputs, outputs):
    """Every column of the artifact against float64 autograd through the model (a residual
    against the problem's own residual, relative to the sum of its terms' magnitudes); returns the
    column names and those scales."""
    names = json.loads((artifact / "manifest.json").read_text())["outputs"]
    got = Solver(str(artifact)).predict(x)
    fields = AutogradFields(inputs, outputs, copy.deepcopy(model).double(), torch.from_numpy(x).double())
    gaps, scales = {}, {}
    residuals = [n for n in names if n.startswith("residual")]
    if residuals:
        problem = model.problem
        want = [r.detach().numpy() for r in problem.residual(copy.deepcopy(model).double(), torch.from_numpy(x).double())]
        leaf = lambda n: fields[n[1]].detach().numpy() if n[0] == "field" else x[:, n[1]].astype(float)  # noqa: E731
        for name, tree, value in zip(residuals, trace_residual(problem), want):
            scales[name] = scale = evaluate(tree, leaf, np.sin, np.cos, np.exp, np.tanh, absolute=True).max()
            gaps[name] = float(np.abs(got[:, names.index(name)] - value).max() / scale)
    for column, name in enumerate(names):
        if name in residuals:
            continue
        want = fields[name].detach().numpy()
        scales[name] = scale = np.abs(want).max() or 1.0  # ReLU's second derivatives are all 0: the gap itself
        gaps[name] = float(np.abs(got[:, column] - want).max() / scale)
    assert max(gaps.values()) <= TOLERANCE, gaps
    return names, np.array([scales[n] for n in names])


@pytest.mark.slow
@pytest.mark.parametrize("problem", STUDENTS)
def test_shipped_student_derivatives_and_residual_match_float64_autograd(problem, tmp_path):
    model = kd_edge.load_model(SOURCE / "models" / problem / "student.pt", problem=problem, kind="student")
    p = model.problem
    second = second_derivatives_of_the_pde(p)
    assert second  # every shipped PDE is of second order
    artifact = kd_edge.compile(model, torch.zeros(4, len(p.inputs)), tmp_path, derivatives=["jacobian"] + second,
                               residual=True, progress=False)
    names, _ = check(model, artifact, p.reference_grid()[0].astype(np.float32), p.inputs, p.outputs)
    latency_kernel_agrees(artifact, p.sample(64, np.random.default_rng(8)).astype(np.float32))
    jacobian = [f"{o}_{i}" for o in p.outputs for i in p.inputs]
    equations = len(trace_residual(p))
    residual = ["residual"] if equations == 1 else [f"residual_{i}" for i in range(equations)]
    assert names == list(p.outputs) + jacobian + second + residual
    runtime = json.loads((artifact / "manifest.json").read_text())["runtime"]
    assert runtime["small_entry"] == "kd_edge_chain_small"  # a few points: the derivative latency kernel
    p99, threshold = runtime["residual"]["validation_p99"], runtime["residual"]["threshold"]
    assert len(p99) == equations and all(0 < r and t == 2 * r for r, t in zip(p99, threshold))
    assert runtime["derivatives"][0] == {"name": jacobian[0], "output": p.outputs[0], "by": [p.inputs[0]]}


@pytest.mark.slow
@pytest.mark.parametrize("problem", STUDENTS)
def test_shipped_student_jacobian_alone_matches_float64_autograd(problem, tmp_path):
    """First derivatives only: one backward pass per output where that is fewer passes than one
    tangent per input (reverse mode, every one-output student), else tangents (forward mode)."""
    model = kd_edge.load_model(SOURCE / "models" / problem / "student.pt", problem=problem, kind="student")
    p = model.problem
    artifact = kd_edge.compile(model, torch.zeros(4, len(p.inputs)), tmp_path, derivatives=["jacobian"], progress=False)
    check(model, artifact, p.reference_grid()[0].astype(np.float32), p.inputs, p.outputs)
    mode = json.loads((artifact / "manifest.json").read_text())["runtime"]["derivative_mode"]
    assert mode == ("reverse" if len(p.outputs) < len(p.inputs) else "forward")


@pytest.mark.slow
@pytest.mark.parametrize("problem", STUDENTS)
def test_shipped_student_residual_alone_matches_the_problems_residual(problem, tmp_path):
    """The residual without derivative columns: its sums of second derivatives (a Laplacian, the
    wave operator) are one stream each, and the result still matches Problem.residual."""
    model = kd_edge.load_model(SOURCE / "models" / problem / "student.pt", problem=problem, kind="student")
    p = model.problem
    artifact = kd_edge.compile(model, torch.zeros(4, len(p.inputs)), tmp_path, residual=True, progress=False)
    names, _ = check(model, artifact, p.reference_grid()[0].astype(np.float32), p.inputs, p.outputs)
    assert names == list(p.outputs) + residual_names(trace_residual(p))
    # one point at a time against the batch kernel, relative to the residual's terms (the wave's
    # u_tt and u_xx are about 40 where it is 1e-3), as check() holds both to autograd
    x = p.sample(64, np.random.default_rng(8)).astype(np.float32)
    latency_kernel_agrees(artifact, x, check(model, artifact, x, p.inputs, p.outputs)[1])


@pytest.mark.parametrize("problem, streams", [("heat_2d", 1), ("navier_stokes_kovasznay", 1), ("wave_1d", 1),
                                              ("poisson_2d", 1), ("burgers", 1), ("black_scholes", 1)])
def test_sums_of_second_derivatives_are_one_stream(problem, streams):
    """u_t - a (u_xx + u_yy) needs one second-order stream (the Laplacian), not two; so do
    Navier-Stokes' nu (u_xx + u_yy) and nu (v_xx + v_yy) together, and the wave's u_tt - c^2 u_xx.
    Black-Scholes' 0.5 sigma^2 S^2 V_SS has one derivative: nothing to fuse."""
    from kd_edge.compiler.build import _residual
    from kd_edge.compiler.derivatives import plan
    from kd_edge.compiler.residual import fuse_second_order

    prob = kd_edge.problems.get(problem)
    residual = _residual(prob, list(prob.inputs), list(prob.outputs))
    firsts, pairs, (trees, keys) = plan([], residual)
    assert len(pairs) == streams
    unfused = {wrt for _, wrt in residual[1].values() if len(wrt) == 2}
    assert (trees is not residual[0]) == (len(unfused) > 1)
    # with its second derivatives asked for as columns as well, fusing would add a stream: it is not done
    columns = [(f"{prob.outputs[0]}_{''.join(prob.inputs[q] for q in wrt)}", 0, wrt) for wrt in sorted(unfused)]
    assert plan(columns, residual)[2][0] is residual[0]
    assert fuse_second_order(*residual)[0] == trees


def test_a_fused_sum_keeps_its_coefficients():
    from kd_edge.compiler.residual import fuse_second_order

    keys = {"u_xx": (0, (0, 0)), "u_yy": (0, (1, 1)), "v_xx": (1, (0, 0)), "v_yy": (1, (1, 1)), "u": (0, ())}
    laplacian = ("add", ("field", "u_xx"), ("field", "u_yy"))
    trees = [("sub", ("mul", ("const", 0.5), laplacian), ("field", "u")),
             ("mul", ("const", 3.0), ("add", ("field", "v_xx"), ("field", "v_yy"))),
             ("sub", ("mul", ("const", 2.0), ("field", "u_yy")), ("field", "u_xx")),  # -u_xx + 2 u_yy
             ("add", ("field", "u_xx"), ("field", "v_yy"))]  # two outputs: not one field
    fused, fused_keys = fuse_second_order(trees, keys)
    (lap,) = [name for name, (k, wrt) in fused_keys.items() if k == 0 and wrt == ((0, 0, 1.0), (1, 1, 1.0))]
    assert fused[0] == ("sub", ("mul", ("const", 0.5), ("field", lap)), ("field", "u"))
    (v_lap,) = [name for name, (k, wrt) in fused_keys.items() if k == 1 and wrt == ((0, 0, 1.0), (1, 1, 1.0))]
    assert fused[1] == ("mul", ("const", 3.0), ("field", v_lap))
    (other,) = [name for name, (k, wrt) in fused_keys.items() if wrt == ((0, 0, 1.0), (1, 1, -2.0))]
    assert fused[2] == ("mul", ("const", -1.0), ("field", other))
    assert fused[3] == trees[3]


class Epilogue(torch.nn.Module):
    """A chain whose epilogue uses every operation the recogniser takes: lin, out, const, add,
    sub, mul, div, sin, tanh."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 8),
                                       torch.nn.Tanh(), torch.nn.Linear(8, 2))

    def forward(self, p):
        x, t = p[:, 0:1], p[:, 1:2]
        out = self.net(p)
        a = torch.sin(2.0 * x - t) + out[:, 0:1] * t * (1.0 - x)
        b = torch.tanh(out[:, 1:2]) / (2.0 + x * x) - 0.5 * out[:, 0:1]
        return torch.cat([a, b], dim=1)


def test_every_epilogue_operation_is_differentiated(tmp_path):
    model = Epilogue()
    derivatives = ["jacobian", "a_xx", "a_xt", "a_tt", "b_xx", "b_tx", "b_tt"]
    artifact = kd_edge.compile(model, torch.zeros(4, 2), tmp_path, input_names=["x", "t"], output_names=["a", "b"],
                               derivatives=derivatives, progress=False)
    assert json.loads((artifact / "manifest.json").read_text())["runtime"]["kind"] == "fused"
    x = np.random.default_rng(1).uniform(-1, 1, (101, 2)).astype(np.float32)  # 101: tiles and the tail
    names, _ = check(model, artifact, x, ("x", "t"), ("a", "b"))
    assert names[-2:] == ["b_tx", "b_tt"]  # as asked; b_tx is computed as b_xt


@pytest.mark.parametrize("act", ["tanh", "sin", "silu", "gelu"])
def test_the_latency_kernel_differentiates_as_the_batch_kernel_does(act, tmp_path):
    """A few points per call go through the derivative latency kernel (units across lanes), a
    periodic feature layer unit by unit; rows equal the batch kernel's. Product layers have none."""
    torch.manual_seed(9)
    model = MLP(2, 1, 12, 2, act, periodic={0: 2.0}, periodic_harmonics=2).eval()
    artifact = kd_edge.compile(model, torch.zeros(4, 2), tmp_path / "a", input_names=["x", "t"], output_names=["u"],
                               derivatives=["jacobian", "u_xx", "u_xt", "u_tt"], progress=False)
    assert json.loads((artifact / "manifest.json").read_text())["runtime"]["small_entry"] == "kd_edge_chain_small"
    latency_kernel_agrees(artifact, np.random.default_rng(4).uniform(-1, 1, (64, 2)).astype(np.float32))


def test_product_layers_have_no_derivative_latency_kernel(tmp_path):
    gated = kd_edge.compile(ModifiedMLP(width=8), torch.zeros(4, 2), tmp_path / "gated", input_names=["x", "t"],
                            output_names=["u"], derivatives=["jacobian"], progress=False)
    assert "small_entry" not in json.loads((gated / "manifest.json").read_text())["runtime"]


class SkipMLP(torch.nn.Module):
    """Skip connections: each hidden layer adds the input's projection and the previous layer's output."""

    def __init__(self, width=12):
        super().__init__()
        self.a, self.b, self.c = torch.nn.Linear(2, width), torch.nn.Linear(width, width), torch.nn.Linear(width, width)
        self.skip, self.out = torch.nn.Linear(2, width, bias=False), torch.nn.Linear(width, 1)

    def forward(self, p):
        h = torch.tanh(self.a(p))
        g = torch.tanh(self.b(h)) + h
        return self.out(torch.tanh(self.c(g) + self.skip(p)) + g)


@pytest.mark.parametrize("derivatives, mode", [(["jacobian", "u_xx", "u_xt", "u_tt"], "forward"),
                                               (["jacobian"], "reverse")], ids=["second", "first"])
@pytest.mark.parametrize("module", [ModifiedMLP, MsFFN, SkipMLP], ids=["gated", "branched", "skips"])
def test_gated_branched_and_skip_layers_are_differentiated(module, derivatives, mode, tmp_path):
    """The modified MLP's products (product rule, second order included; always forward mode),
    MsFFN's branches and skip connections, by tangents and by backward passes."""
    torch.manual_seed(4)
    model = module(width=12)
    artifact = kd_edge.compile(model, torch.zeros(4, 2), tmp_path, input_names=["x", "t"], output_names=["u"],
                               derivatives=derivatives, progress=False)
    check(model, artifact, np.random.default_rng(3).uniform(-1, 1, (37, 2)).astype(np.float32), ("x", "t"), ("u",))
    want = "forward" if module is ModifiedMLP else mode
    assert json.loads((artifact / "manifest.json").read_text())["runtime"]["derivative_mode"] == want



def test_sin_layers_are_differentiated(tmp_path):
    torch.manual_seed(0)

    class Sine(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(3, 6), torch.nn.Linear(6, 1)

        def forward(self, p):
            return self.b(torch.sin(self.a(p)))

    model = Sine()
    artifact = kd_edge.compile(model, torch.zeros(4, 3), tmp_path, input_names=["x", "y", "t"], output_names=["u"],
                               derivatives=["jacobian", "u_xy", "u_tt"], progress=False)
    check(model, artifact, np.random.default_rng(2).uniform(-2, 2, (64, 3)).astype(np.float32), ("x", "y", "t"),
          ("u",))


@pytest.mark.parametrize("derivatives, message", [
    (["u_z"], "unknown derivative 'u_z': outputs are u and inputs x, t; write e.g. u_x, u_xx, or 'jacobian'"),
    (["w_x"], "unknown derivative 'w_x'"),
    (["u"], "unknown derivative 'u'"),
    (["u_xxt"], "derivative 'u_xxt' is of order 3; the kernel computes up to 2"),
    (["u_xt", "u_tx"], "derivative 'u_tx' is asked for twice"),
    ([3], "derivatives must be a list of names"),
    ([], "derivatives must be a list of names"),
], ids=["unknown-input", "unknown-output", "no-derivative", "third-order", "twice", "not-a-name", "empty"])
def test_bad_derivative_names_are_named(derivatives, message, tmp_path):
    model = kd_edge.load_model(SOURCE / "models" / "burgers" / "student.pt")
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        kd_edge.compile(model, torch.zeros(4, 2), tmp_path, derivatives=derivatives, progress=False)


def test_names_need_one_character_inputs(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    with pytest.raises(ValueError, match="this model's inputs are x0, x1: give input_names of one character each"):
        kd_edge.compile(net, torch.zeros(4, 2), tmp_path, derivatives=["jacobian"], progress=False)


@pytest.mark.parametrize("act", [torch.nn.Sigmoid, torch.nn.SiLU, torch.nn.ReLU, torch.nn.Softplus, torch.nn.ELU,
                                 torch.nn.GELU, lambda: torch.nn.GELU(approximate="tanh")],
                         ids=["sigmoid", "silu", "relu", "softplus", "elu", "gelu", "gelu_tanh"])
def test_every_activation_is_differentiated(act, tmp_path):
    """First and second derivatives through each activation the fused kernel has (forward mode),
    and the Jacobian alone (reverse mode), against float64 autograd (ReLU's second derivative is 0
    wherever it exists)."""
    torch.manual_seed(6)
    model = torch.nn.Sequential(torch.nn.Linear(2, 8), act(), torch.nn.Linear(8, 8), act(), torch.nn.Linear(8, 1))
    x = np.random.default_rng(5).uniform(-2, 2, (53, 2)).astype(np.float32)
    for mode, derivatives in (("forward", ["jacobian", "u_xx", "u_xt", "u_tt"]), ("reverse", ["jacobian"])):
        artifact = kd_edge.compile(model, torch.zeros(4, 2), tmp_path / mode, input_names=["x", "t"],
                                   output_names=["u"], derivatives=derivatives, progress=False)
        check(model, artifact, x, ("x", "t"), ("u",))
        assert json.loads((artifact / "manifest.json").read_text())["runtime"]["derivative_mode"] == mode


def test_derivatives_need_a_dense_chain_and_a_shared_artifact(tmp_path):
    with pytest.raises(ValueError, match="derivatives needs a dense chain"):
        kd_edge.compile(TwoBranches(), torch.zeros(4, 2), tmp_path, input_names=["x", "t"], derivatives=["jacobian"],
                        progress=False)
    model = kd_edge.load_model(SOURCE / "models" / "burgers" / "student.pt")
    for kwargs, message in [(dict(static=True), "not compiled into static artifacts yet"),
                            (dict(backend="vm"), "backend='vm' has none"),
                            (dict(tune_trials=2), "the derivative kernel is not tuned")]:
        with pytest.raises(ValueError, match=message):
            kd_edge.compile(model, torch.zeros(4, 2), tmp_path, derivatives=["u_x"], progress=False, **kwargs)


def test_a_problem_names_the_derivatives_its_equations_read():
    import kd_edge.problems as problems

    assert problems.get("burgers").equation_keys() == ["u_t", "u_x", "u_xx"]
    assert problems.get("poisson_2d").equation_keys() == ["u_xx", "u_yy"]  # its source term reads x, y only


def test_residual_tracing_covers_the_arithmetic_equations_use():
    f = TracingFields(("x", "t"), ("u",))
    tree = (-f["u"] ** 3 + 2.0 / f["u_x"] - (1 - f["u_t"]) * torch.sin(f["x"]) + torch.exp(-f["t"])).node
    x = np.array([0.3, -0.7])
    values = {"u": np.array([0.5, -1.2]), "u_x": np.array([2.0, 4.0]), "u_t": np.array([0.1, 0.2])}
    leaf = lambda n: values[n[1]] if n[0] == "field" else [x, 1 - x][n[1]]  # noqa: E731
    u, ux, ut = values["u"], values["u_x"], values["u_t"]
    want = -u**3 + 2.0 / ux - (1 - ut) * np.sin(x) + np.exp(-(1 - x))
    np.testing.assert_allclose(evaluate(tree, leaf, np.sin, np.cos, np.exp, np.tanh), want)
    with pytest.raises(ValueError, match="calls torch.log, which kd-edge does not compile"):
        torch.log(f["u"])
    with pytest.raises(ValueError, match="integer powers 0 to 8"):
        f["u"] ** 0.5
    with pytest.raises(ValueError, match="not at shifted points"):
        f.at(x=2.0)
    with pytest.raises(KeyError, match="unknown field 'w_x'"):
        f["w_x"]
    assert isinstance(f["u"] ** 0, Symbol) and (f["u"] ** 0).node == ("const", 1.0)


def test_a_residual_needs_the_models_problem(tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    with pytest.raises(ValueError, match="residual=True compiles the problem's equations, but this model has no "
                                         "problem"):
        kd_edge.compile(net, torch.zeros(4, 2), tmp_path, residual=True, progress=False)
    model = kd_edge.load_model(SOURCE / "models" / "burgers" / "student.pt")
    with pytest.raises(ValueError, match="residual=True needs the problem's names: inputs x, t"):
        kd_edge.compile(model, torch.zeros(4, 2), tmp_path, residual=True, input_names=["a", "b"], progress=False)
    with pytest.raises(TypeError, match="residual must be True or False"):
        kd_edge.compile(model, torch.zeros(4, 2), tmp_path, residual="yes", progress=False)


@pytest.mark.slow
def test_the_shock_tracking_example(tmp_path):
    """examples/shock_tracking.py: Newton with u_x from the kernel needs far fewer calls than
    bisection, finds the same roots, and the residual flags the damaged student and the queries
    outside the trained time, which the values alone do not give away."""
    import re
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(SOURCE / "examples" / "shock_tracking.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = re.findall(r"^ *([\d.]+) +(-?[\d.]+) +(\d+) +(-?[\d.]+) +(\d+)$", done.stdout, re.M)
    assert len(rows) == 9
    for _, x_newton, _, x_bisection, _ in rows:
        assert abs(float(x_newton) - float(x_bisection)) < 1e-4
    calls = {m: int(n) for m, n in re.findall(r"^(newton|bisection): (\d+) predict calls", done.stdout, re.M)}
    assert calls["newton"] * 3 < calls["bisection"]
    flagged = [float(v) for v in re.findall(r"([\d.]+)%$", done.stdout, re.M)]
    healthy, damaged, outside = flagged
    assert healthy < 2 and damaged > 10 and outside > 50
    maxima = [float(v) for v in re.findall(r"^the .*? +([\d.]+) +[\d.e-]+ +[\d.]+%$", done.stdout, re.M)]
    assert all(m < 1.1 for m in maxima)  # the values look plausible in every case


def test_the_runtime_screens_the_residual(tmp_path):
    """Solver(residual="flag") counts points whose residual is over the manifest's threshold and
    names the first; "reject" refuses the call at it; the default leaves the columns alone."""
    model = kd_edge.load_model(SOURCE / "models" / "burgers" / "student.pt")
    artifact = kd_edge.compile(model, torch.zeros(4, 2), tmp_path, residual=True, progress=False)
    threshold = json.loads((artifact / "manifest.json").read_text())["runtime"]["residual"]["threshold"][0]
    rng = np.random.default_rng(3)
    inside = rng.uniform([-1, 0], [1, 1], (2000, 2)).astype(np.float32)
    later = rng.uniform([-1, 1.2], [1, 2], (2000, 2)).astype(np.float32)  # outside the trained time
    flag = Solver(str(artifact), residual="flag")
    for points in (inside, later):
        r = flag.predict(points)[:, 1]
        over = np.flatnonzero(np.abs(r) > threshold)
        assert flag.residual_exceeded == len(over)
        assert flag.first_residual_exceeded == (over[0] if len(over) else None)
    assert flag.predict(inside) is not None and flag.residual_exceeded < 0.02 * len(inside)
    flag.predict(later)
    assert flag.residual_exceeded > 0.5 * len(later)
    reject = Solver(str(artifact), residual="reject")
    calm = inside[np.abs(flag.predict(inside)[:, 1]) <= threshold]
    reject.predict(calm)
    first = int(np.flatnonzero(np.abs(flag.predict(later)[:, 1]) > threshold)[0])
    with pytest.raises(RuntimeError, match=f"point {first}: residual = .*, over the threshold .* \\(residual "
                                           f"policy \"reject\"\\)"):
        reject.predict(later)
    off = Solver(str(artifact))
    off.predict(later)
    assert off.residual_exceeded == 0 and off.first_residual_exceeded is None
    plain = kd_edge.compile(model, torch.zeros(4, 2), tmp_path / "plain", progress=False)
    with pytest.raises(ValueError, match="which this artifact does not compute \\(compile with residual=True\\)"):
        Solver(str(plain), residual="flag")
    with pytest.raises(ValueError, match='residual must be "off", "flag" or "reject"'):
        Solver(str(artifact), residual="loud")


def test_the_c_api_screens_the_residual(tmp_path):
    import ctypes
    from pathlib import Path

    import kd_edge._runtime as runtime

    class Options(ctypes.Structure):
        _fields_ = [("threads", ctypes.c_int), ("max_batch", ctypes.c_size_t), ("domain_policy", ctypes.c_int),
                    ("check_outputs", ctypes.c_int), ("residual_policy", ctypes.c_int)]

    lib = ctypes.CDLL(str(Path(runtime.__file__).with_name("libkd_edge.so")))
    lib.kd_edge_default_options.restype = Options
    lib.kd_edge_last_error.restype = ctypes.c_char_p
    lib.kd_edge_residual_exceeded.restype = ctypes.c_size_t
    model = kd_edge.load_model(SOURCE / "models" / "burgers" / "student.pt")
    artifact = str(kd_edge.compile(model, torch.zeros(4, 2), tmp_path, residual=True, progress=False)).encode()
    later = np.random.default_rng(4).uniform([-1, 1.2], [1, 2], (500, 2)).astype(np.float32)
    out = np.empty((500, 2), np.float32)
    results = {}
    for name, policy in (("flag", 1), ("reject", 2), ("bad", 7)):
        options = lib.kd_edge_default_options()
        assert options.residual_policy == 0  # off by default
        options.residual_policy = policy
        solver = ctypes.c_void_p()
        status = lib.kd_edge_open_with(artifact, ctypes.byref(options), ctypes.byref(solver))
        if name == "bad":
            assert status == 3 and b"options.residual_policy must be 0 (off), 1 (flag) or 2 (reject), got 7" in \
                lib.kd_edge_last_error(None)
            continue
        assert status == 0, lib.kd_edge_last_error(None)
        status = lib.kd_edge_predict(solver, later.ctypes.data_as(ctypes.c_void_p), ctypes.c_size_t(500),
                                     out.ctypes.data_as(ctypes.c_void_p))
        first = ctypes.c_size_t(0)
        results[name] = (status, lib.kd_edge_residual_exceeded(solver, ctypes.byref(first)), first.value,
                         lib.kd_edge_last_error(solver))
        lib.kd_edge_close(solver)
    status, exceeded, first, _ = results["flag"]
    assert status == 0 and exceeded > 250
    status, _, _, message = results["reject"]
    assert status == 4 and f"point {first}: residual = ".encode() in message


@pytest.mark.parametrize("change, message", [
    ({"threshold": [-1.0]}, 'residual threshold for "residual" must be a positive number'),
    ({"names": ["resid"]}, 'residual "resid" is not among the outputs'),
    ({"threshold": [1.0, 2.0]}, 'field "threshold" must have one number per residual \\(1\\)'),
], ids=["negative", "unknown-column", "wrong-length"])
def test_a_damaged_residual_entry_is_named(change, message, tmp_path):
    import shutil

    from kd_edge._runtime import ArtifactError

    model = kd_edge.load_model(SOURCE / "models" / "burgers" / "student.pt")
    artifact = kd_edge.compile(model, torch.zeros(4, 2), tmp_path / "a", residual=True, progress=False)
    damaged = tmp_path / "damaged"
    shutil.copytree(artifact, damaged)
    manifest = json.loads((damaged / "manifest.json").read_text())
    manifest["runtime"]["residual"].update(change)
    (damaged / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=message):
        Solver(str(damaged))
