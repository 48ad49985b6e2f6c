"""The fused kernel: fast-math error bounds, both entry points, recognition and fallback, ONNX."""

import io
import json
import warnings

import numpy as np
import pytest
import torch

import kd_edge
from kd_edge.compiler.chain import Layer, NotADenseChain, extract_chain
from kd_edge.compiler.frontend import to_relax
from kd_edge.compiler.kernel import ENTRY, PARALLEL_ENTRY, SMALL_ENTRY, KernelOptions, build_kernel_module
from kd_edge.compiler.target import resolve_target
from kd_edge.networks import MLP
from peer_networks import FourierNet, FullyConnected, ModifiedMLP, MsFFN, ResNet, STMsFFN


def compiled_kernel(layers, options=KernelOptions()):
    import tvm

    spec = resolve_target("host")
    return tvm.compile(build_kernel_module(layers, spec.lanes, options),
                       target=tvm.target.Target(dict(spec.tvm_target, **{"num-cores": 2})))


def run(lib, entry, x, d_out):
    import ctypes

    import tvm

    if entry == SMALL_ENTRY:  # pointers and a count, as the runtime calls it
        x = np.ascontiguousarray(x, np.float32)
        y = np.full((len(x), d_out), np.nan, np.float32)
        lib[entry](ctypes.c_void_p(x.ctypes.data), ctypes.c_void_p(y.ctypes.data), len(x))
        return y
    y = tvm.runtime.tensor(np.full((len(x), d_out), np.nan, np.float32))
    lib[entry](tvm.runtime.tensor(x), y)
    return y.numpy()


@pytest.fixture(scope="module")
def activation_kernels():
    # one unit per layer: y = act(x), identity readout, so the kernel's act is measured alone
    def unit(act, reciprocal):
        return compiled_kernel([Layer(np.ones((1, 1)), np.zeros(1), (act,)),
                                Layer(np.ones((1, 1)), np.zeros(1), ("identity",))], KernelOptions(reciprocal=reciprocal))
    return {(act, r): unit(act, r) for act in ("tanh", "sin") for r in ("divide", "newton")}


# The bounds stated in the README: max abs error against float64 over these ranges.
@pytest.mark.parametrize("reciprocal", ["divide", "newton"])
@pytest.mark.parametrize("act, span, bound", [("tanh", 20.0, 4e-7), ("sin", 10.0, 3e-7), ("sin", 100.0, 6e-6)])
def test_fast_math_error_bounds(activation_kernels, act, span, bound, reciprocal):
    kernel = activation_kernels[act, reciprocal]
    x = np.linspace(-span, span, 2_000_003, dtype=np.float32)[:, None]
    exact = getattr(np, act)(x.astype(np.float64))
    for entry in (ENTRY, PARALLEL_ENTRY, SMALL_ENTRY):
        err = np.abs(run(kernel, entry, x, 1) - exact).max()
        assert err <= bound, f"{act} on [-{span}, {span}] via {entry}: {err:.2e}"
    # and the scalar tail (fewer points than one SIMD tile)
    few = x[::400_000]
    assert np.abs(run(kernel, ENTRY, few, 1) - getattr(np, act)(few.astype(np.float64))).max() <= bound


def _exact(act, x):
    t = torch.from_numpy(x.astype(np.float64))
    return {"sigmoid": torch.sigmoid, "silu": torch.nn.functional.silu, "relu": torch.relu,
            "gelu": torch.nn.functional.gelu,
            "gelu_tanh": lambda v: torch.nn.functional.gelu(v, approximate="tanh"),
            "softplus": torch.nn.functional.softplus, "elu": torch.nn.functional.elu}[act](t).numpy()


# max |kernel - float64| <= absolute + relative * |x| on [-20, 20]; what is left is float32 rounding
# of a result as large as x (measured on AMD EPYC: sigmoid 8.9e-8, SiLU 1.3e-6 at x = 13.8,
# GELU 4.6e-7, GELU-tanh 5.2e-7 at x = 4.7, ReLU exact, softplus 4.8e-7 at x = 12 (1.2e-7 relative),
# ELU 4.7e-8)
@pytest.mark.parametrize("act, absolute, relative", [("sigmoid", 1.5e-7, 0), ("silu", 2e-7, 1.5e-7),
                                                     ("relu", 0, 0), ("gelu", 6e-7, 0),
                                                     ("gelu_tanh", 2e-7, 1.5e-7), ("softplus", 2e-7, 1.5e-7),
                                                     ("elu", 1e-7, 0)])
def test_more_activations_within_their_bounds(act, absolute, relative):
    kernel = compiled_kernel([Layer(np.ones((1, 1)), np.zeros(1), (act,)),
                              Layer(np.ones((1, 1)), np.zeros(1), ("identity",))])
    x = np.linspace(-20, 20, 400_003, dtype=np.float32)[:, None]
    exact = _exact(act, x)
    for entry in (ENTRY, PARALLEL_ENTRY, SMALL_ENTRY):
        excess = np.abs(run(kernel, entry, x, 1) - exact) - (absolute + relative * np.abs(x))
        assert excess.max() <= 0, f"{act} via {entry}: {excess.max():.2e} over the bound"


@pytest.mark.parametrize("act, name", [(torch.nn.SiLU, "silu"), (torch.nn.Sigmoid, "sigmoid"), (torch.nn.ReLU, "relu"),
                                       (torch.nn.GELU, "gelu"), (lambda: torch.nn.GELU(approximate="tanh"), "gelu_tanh"),
                                       (torch.nn.Softplus, "softplus"), (lambda: torch.nn.Softplus(beta=2.5), "softplus"),
                                       (torch.nn.ELU, "elu")],
                         ids=["silu", "sigmoid", "relu", "gelu", "gelu_tanh", "softplus", "softplus_beta", "elu"])
def test_networks_of_other_activations_fuse(tmp_path, act, name):
    torch.manual_seed(5)
    model = torch.nn.Sequential(torch.nn.Linear(3, 16), act(), torch.nn.Linear(16, 16), act(),
                                torch.nn.Linear(16, 2)).eval()
    artifact = kd_edge.compile(model, torch.zeros(4, 3), tmp_path / "a")
    runtime = json.loads((artifact / "manifest.json").read_text())["runtime"]
    assert runtime["kind"] == "fused" and runtime["layers"][0][2] == [name]
    solver = kd_edge.Solver(artifact)
    for n in (1, 2, 17, 5000):
        x = np.random.default_rng(n).uniform(-3, 3, size=(n, 3)).astype(np.float32)
        with torch.no_grad():
            np.testing.assert_allclose(solver.predict(x), model(torch.from_numpy(x)).numpy(), rtol=0, atol=1e-5,
                                       err_msg=f"n={n}")


@pytest.mark.parametrize("options", [KernelOptions(), KernelOptions(1, "newton"), KernelOptions(3, "divide"),
                                     KernelOptions(6, "newton")], ids=lambda o: f"{o.accumulators}-{o.reciprocal}")
def test_every_entry_agrees_with_pytorch(monkeypatch, options):
    monkeypatch.setenv("TVM_NUM_THREADS", "2")
    torch.manual_seed(0)
    model = MLP(3, 2, 24, 3, "tanh", periodic={1: 2.0}, fourier_features=2).eval()
    lib = compiled_kernel(extract_chain(to_relax(model, torch.zeros(3, 3))), options)
    for n in (1, 2, 3, 15, 16, 17, 5000, 25_600):
        x = np.random.default_rng(n).uniform(-2, 2, size=(n, 3)).astype(np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        for entry in (ENTRY, PARALLEL_ENTRY) + ((SMALL_ENTRY,) if n <= 17 else ()):
            np.testing.assert_allclose(run(lib, entry, x, 2), expected, rtol=0, atol=1e-5, err_msg=f"{entry}, n={n}")


def test_the_latency_kernel_pads_a_ragged_width_to_whole_vectors():
    from kd_edge.compiler.kernel import _padded_chunks

    assert _padded_chunks(27, 16) == [(0, 16), (16, 16)]  # not 16 + 8 + 2 + 1
    assert _padded_chunks(20, 16) == [(0, 16), (16, 4)] and _padded_chunks(9, 8) == [(0, 8), (8, 1)]
    assert _padded_chunks(5, 4) == [(0, 4), (4, 1)] and _padded_chunks(11, 4) == [(0, 4), (4, 4), (8, 4)]
    torch.manual_seed(1)  # 27 units (padded lanes carry zero weights) and a 5-wide feature layer
    model = MLP(2, 3, 27, 3, "tanh", fourier_features=2).eval()
    lib = compiled_kernel(extract_chain(to_relax(model, torch.zeros(3, 2))), KernelOptions())
    for n in (1, 2, 3, 5):
        x = np.random.default_rng(n).uniform(-2, 2, size=(n, 2)).astype(np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(run(lib, SMALL_ENTRY, x, 3), expected, rtol=0, atol=1e-5, err_msg=f"n={n}")


@pytest.mark.parametrize("act, reason", [(lambda: torch.nn.ELU(alpha=0.5), "ELU with alpha 0.5"),
                                         (lambda: torch.nn.Softplus(threshold=1.0), "none of the fused activations")],
                         ids=["elu_alpha", "softplus_threshold"])
def test_other_variants_of_an_activation_are_refused_by_name(act, reason):
    """Softplus with a low threshold (a different function) and ELU with alpha != 1 are not fused."""
    model = torch.nn.Sequential(torch.nn.Linear(2, 8), act(), torch.nn.Linear(8, 1)).eval()
    with pytest.raises(NotADenseChain, match=reason):
        extract_chain(to_relax(model, torch.zeros(3, 2)))


class Gating(torch.nn.Module):  # a product of two values of the network, then a layer
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = torch.nn.Linear(2, 4), torch.nn.Linear(4, 4), torch.nn.Linear(4, 1)

    def forward(self, x):
        h = torch.tanh(self.a(x))
        return self.c(torch.tanh(self.b(h)) * h)


class Bilinear(torch.nn.Module):  # a product of two dense maps of one layer: neither factor is elementwise
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c, self.d = (torch.nn.Linear(2, 4), torch.nn.Linear(4, 4), torch.nn.Linear(4, 4),
                                          torch.nn.Linear(4, 1))

    def forward(self, x):
        h = torch.tanh(self.a(x))
        return self.d(self.b(h) * self.c(h))


@pytest.mark.parametrize("module, extras", [
    (Gating, [{}, {}, {"gate": [1]}, {}]),
    (ModifiedMLP, [{}, {"source": 0}, {"source": 0}, {"source": 1, "gate": [2, 3]}, {}, {"gate": [2, 3]}, {},
                   {"gate": [2, 3]}, {}]),
    (MsFFN, None), (STMsFFN, None), (FourierNet, None)], ids=["gating", "modified_mlp", "msffn", "stmsffn", "fourier_net"])
def test_branched_and_gated_networks_fuse(tmp_path, module, extras):
    """Layers that read an earlier output than the previous layer's (branches: DeepXDE's MsFFN and
    STMsFFN, PFNN) and products of layer outputs (the modified MLP's gating, STMsFFN's space-time
    products) are layers of the fused kernel, in every entry."""
    torch.manual_seed(3)
    model = module().eval()
    artifact = kd_edge.compile(model, torch.zeros(4, 2), tmp_path / "a")
    runtime = json.loads((artifact / "manifest.json").read_text())["runtime"]
    assert runtime["kind"] == "fused"
    if extras is not None:
        assert [layer[4] if len(layer) > 4 else {} for layer in runtime["layers"]] == extras
    solver = kd_edge.Solver(artifact)
    for n in (1, 2, 3, 17, 5000):  # the latency kernel, padded tiles, tiles, the pool
        x = np.random.default_rng(n).uniform(-1, 1, size=(n, 2)).astype(np.float32)
        with torch.no_grad():
            np.testing.assert_allclose(solver.predict(x), model(torch.from_numpy(x)).numpy(), rtol=0, atol=1e-5,
                                       err_msg=f"n={n}")


@pytest.mark.parametrize("module, skips", [(FullyConnected, [[], [], [], [1], [], [3], []]),
                                           (ResNet, [[], [], [1], [], [3], []])], ids=["physicsnemo", "deepxde"])
def test_skip_connections_fuse(tmp_path, module, skips):
    torch.manual_seed(7)
    model = module().eval()
    artifact = kd_edge.compile(model, torch.zeros(4, 3), tmp_path / "a")
    runtime = json.loads((artifact / "manifest.json").read_text())["runtime"]
    assert runtime["kind"] == "fused"
    assert [layer[3] if len(layer) > 3 else [] for layer in runtime["layers"]] == skips
    solver = kd_edge.Solver(artifact)
    for n in (1, 2, 17, 5000):  # latency kernel, padded tile or tiles, the pool
        x = np.random.default_rng(n).uniform(-2, 2, size=(n, 3)).astype(np.float32)
        with torch.no_grad():
            np.testing.assert_allclose(solver.predict(x), model(torch.from_numpy(x)).numpy(), rtol=0, atol=1e-5,
                                       err_msg=f"n={n}")


class Elu(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(2, 1)

    def forward(self, x):
        return torch.nn.functional.elu(self.a(x), alpha=0.5)


@pytest.mark.parametrize("module, reason", [
    (Bilinear(), "neither of which is an elementwise function of one layer's output"),
    (Elu(), "ELU with alpha 0.5"),  # ELU exports as exp, relu, multiply, add
])
def test_other_models_fall_back_to_the_vm(tmp_path, module, reason):
    module.eval()
    with pytest.raises(NotADenseChain, match=reason):
        extract_chain(to_relax(module, torch.zeros(3, 2)))
    from kd_edge.compiler.build import FallbackWarning

    with pytest.warns(FallbackWarning, match=f"compiling to TVM's Relax VM, not the fused kernel.*{reason}"):
        artifact = kd_edge.compile(module, torch.zeros(3, 2), tmp_path / "auto")
    runtime = json.loads((artifact / "manifest.json").read_text())["runtime"]
    assert runtime["kind"] == "vm" and reason in runtime["fallback_reason"]
    x = np.random.default_rng(0).normal(size=(100, 2)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(kd_edge.Solver(str(artifact)).predict(x), module(torch.from_numpy(x)).numpy(),
                                   atol=1e-5)
    with pytest.raises(ValueError, match="backend='fused' needs a dense chain, but"):
        kd_edge.compile(module, torch.zeros(3, 2), tmp_path / "fused", backend="fused")


def test_dense_chains_compile_to_the_fused_kernel(compiled):
    _, artifact = compiled(2, 1, 20, 4, "tanh")
    runtime = json.loads((artifact / "manifest.json").read_text())["runtime"]
    assert runtime["kind"] == "fused" and runtime["layers"][0][:2] == [2, 20] and runtime["multiply_adds"] == 1260
    lanes = runtime["simd_lanes"]
    assert runtime["stack_bytes"] == (2 + 4 * 20 + 1 + 4) * (lanes + 1) * 4


def test_the_fused_kernel_allocates_nothing_from_tvm(compiled):
    """Per-tile buffers live on the stack. A TVM workspace (heap) buffer costs calls on every
    kernel call, and on every tile of the parallel loop: it made two threads no faster than one."""
    _, artifact = compiled(2, 1, 20, 4, "tanh")
    library = (artifact / "model.so").read_bytes()
    assert b"TVMBackendAllocWorkspace" not in library and b"TVMBackendFreeWorkspace" not in library
    assert b"TVMBackendParallelLaunch" in library  # the check above looks at the right kind of name


def test_the_batch_kernels_spill_to_an_aligned_frame(compiled, tmp_path):
    """Vector spills go to slots aligned to the vector (kernel.align_stack): with unaligned ones,
    how many split cache lines depended on the caller's stack, and the Jacobian kernel ran up to
    1.3x slower in some processes. Checked in the disassembly of a value and a derivative kernel."""
    import re
    import shutil
    import subprocess

    spec = resolve_target("host")
    if spec.lanes < 16 or shutil.which("objdump") is None:
        pytest.skip(f"needs an AVX-512 host (this one has {spec.lanes} float lanes) and objdump")
    model, artifact = compiled(2, 1, 20, 4, "tanh")
    jacobian = kd_edge.compile(model, torch.zeros(3, 2), tmp_path / "jacobian", input_names=["x", "t"], derivatives=["jacobian"],
                               progress=False)
    for library in (artifact / "model.so", jacobian / "model.so"):
        text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(library)], check=True,
                              capture_output=True, text=True).stdout
        spills = re.findall(r"vmov(a|u)ps\s+(?:%zmm\d+,\s*-?(?:0x)?[0-9a-f]*\(%r[sb]p\)|-?(?:0x)?[0-9a-f]*\(%r[sb]p\),\s*%zmm\d+)",
                            text)
        assert re.search(r"and\s+\$0xffffffffffffffc0,%rsp", text), f"{library}: the frame is not realigned to 64"
        assert spills and spills.count("u") <= len(spills) // 10, \
            f"{library}: {spills.count('u')} of {len(spills)} zmm stack moves unaligned"


class Epilogue(torch.nn.Module):
    """A two-output network combined with its input columns: every epilogue operation."""

    def __init__(self):
        super().__init__()
        self.net = MLP(2, 2, 12, 2, "tanh")

    def forward(self, x):
        n = -self.net(x)
        a, b = x[:, :1], x[:, 1:2]
        first = a**3 * n[:, :1] + torch.cos(3 * b) - 0.5 + (-b)
        second = torch.tanh(n[:, 1:2]) / (1 + a * a) + torch.sin(a - b) * n[:, :1]
        return torch.cat([first, second], dim=1) * torch.cos(x)  # the whole input, after the network


class ExpEpilogue(Epilogue):
    def forward(self, x):
        return torch.exp(x[:, :1]) * self.net(x)[:, :1]


class HalfPowerEpilogue(Epilogue):
    def forward(self, x):
        return x[:, :1] ** 0.5 * self.net(x)[:, :1]


def test_an_epilogue_of_inputs_and_network_outputs_compiles_into_the_fused_kernel(tmp_path):
    torch.manual_seed(3)
    module = Epilogue().eval()
    chain = extract_chain(to_relax(module, torch.zeros(3, 2)))
    assert len(chain) == 3 and chain.n_outputs == 2 and len(chain.epilogue) == 2
    torch.manual_seed(4)  # other weights, same shape: the same tuning-cache signature
    assert extract_chain(to_relax(Epilogue().eval(), torch.zeros(3, 2))).signature() == chain.signature()
    artifact = kd_edge.compile(module, torch.zeros(3, 2), tmp_path / "a")
    assert json.loads((artifact / "manifest.json").read_text())["runtime"]["kind"] == "fused"
    solver = kd_edge.Solver(str(artifact))
    for n in (1, 17, 5000):  # the one-point tail and vector tiles, serial and parallel
        x = np.random.default_rng(n).uniform(-2, 2, size=(n, 2)).astype(np.float32)
        with torch.no_grad():
            expected = module(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(solver.predict(x), expected, rtol=0, atol=1e-5)
    with pytest.raises(NotADenseChain, match="operator relax.exp is not part of a dense chain"):
        extract_chain(to_relax(ExpEpilogue().eval(), torch.zeros(3, 2)))
    with pytest.raises(NotADenseChain, match="power with an exponent other than a constant integer"):
        extract_chain(to_relax(HalfPowerEpilogue().eval(), torch.zeros(3, 2)))


def test_embeddings_fold_into_the_chain():
    layers = extract_chain(to_relax(MLP(2, 1, 8, 2, lower=[-1, 0], upper=[1, 1]).eval(), torch.zeros(3, 2)))
    assert [layer.weight.shape for layer in layers] == [(8, 2), (8, 8), (1, 8)]  # normalisation folded into layer 1
    periodic = extract_chain(to_relax(MLP(2, 1, 8, 2, periodic={0: 2.0}).eval(), torch.zeros(3, 2)))
    assert set(periodic[0].activations) == {"identity", "sin"}  # [t, cos x, sin x] is one layer, cos as sin(. + pi/2)


def onnx_bytes(model, width):
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(4, width),), buffer, input_names=["x"], output_names=["u"],
                          dynamic_axes={"x": {0: "n"}, "u": {0: "n"}}, dynamo=False)
    return buffer.getvalue()


def test_torch_default_onnx_exporter_output_fuses(tmp_path):
    """torch 2.13's default ONNX exporter (dynamo, through onnxscript, pinned in requirements.txt)."""
    torch.manual_seed(2)
    model = MLP(3, 2, 16, 3, "tanh").eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(4, 3),), buffer, input_names=["x"], output_names=["u"],
                          dynamic_shapes={"x": {0: torch.export.Dim("n")}}, verbose=False)
    artifact = kd_edge.compile(buffer.getvalue(), out_dir=tmp_path / "a")
    assert json.loads((artifact / "manifest.json").read_text())["runtime"]["kind"] == "fused"
    x = np.random.default_rng(0).uniform(-1, 1, size=(50, 3)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(kd_edge.Solver(artifact).predict(x), model(torch.from_numpy(x)).numpy(),
                                   rtol=0, atol=1e-5)


@pytest.mark.parametrize("backend", ["auto", "vm"])
def test_onnx_models_compile_like_torch_ones(tmp_path, backend):
    torch.manual_seed(1)
    model = MLP(3, 2, 16, 3, "sin").eval()
    path = tmp_path / "student.onnx"
    path.write_bytes(onnx_bytes(model, 3))
    artifact = kd_edge.compile(path, out_dir=tmp_path / "artifact", backend=backend, output_names=["u", "v"])
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["source"]["framework"] == "onnx" and manifest["runtime"]["kind"] == ("vm" if backend == "vm" else "fused")
    solver = kd_edge.Solver(str(artifact))
    for n in (1, 7, 1000):
        x = np.random.default_rng(n).uniform(-1, 1, size=(n, 3)).astype(np.float32)
        with torch.no_grad():
            np.testing.assert_allclose(solver.predict(x), model(torch.from_numpy(x)).numpy(), rtol=0, atol=1e-5)


def test_onnx_external_weights_load_from_any_directory(tmp_path, monkeypatch):
    import onnx

    torch.manual_seed(3)
    model = MLP(2, 1, 16, 2, "tanh").eval()
    (tmp_path / "model").mkdir()
    (tmp_path / "elsewhere").mkdir()
    onnx.save_model(onnx.load_from_string(onnx_bytes(model, 2)), str(tmp_path / "model" / "net.onnx"),
                    save_as_external_data=True, location="net.weights", size_threshold=0)
    monkeypatch.chdir(tmp_path / "elsewhere")
    artifact = kd_edge.compile("../model/net.onnx", out_dir="a", progress=False)
    x = np.random.default_rng(0).uniform(-1, 1, size=(9, 2)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(kd_edge.Solver(artifact).predict(x), model(torch.from_numpy(x)).numpy(), atol=1e-5)
    with pytest.raises(ValueError, match=r"keeps its weights in external files \(net.weights\).*pass the model's path"):
        kd_edge.compile((tmp_path / "model" / "net.onnx").read_bytes(), out_dir="b", progress=False)
    (tmp_path / "model" / "net.weights").unlink()
    with pytest.raises(FileNotFoundError, match="keeps its weights in net.weights, which is not beside it"):
        kd_edge.compile("../model/net.onnx", out_dir="c", progress=False)


def test_bad_onnx_input_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no ONNX model at"):
        kd_edge.compile(tmp_path / "missing.onnx", out_dir=tmp_path / "a")
    (tmp_path / "student.pt").write_bytes(b"\x80\x02 not protobuf at all")
    with pytest.raises(ValueError, match=r"student.pt is not an ONNX model"):
        kd_edge.compile(tmp_path / "student.pt", out_dir=tmp_path / "a")
    with pytest.raises(ValueError, match="the given bytes is not an ONNX model"):
        kd_edge.compile(b"\x80\x02 garbage", out_dir=tmp_path / "a")
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Celu", ["x"], ["h"]),
                               helper.make_node("MyOp", ["h"], ["y"], domain="com.example")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]),
              tmp_path / "custom.onnx")
    with pytest.raises(ValueError, match=r"custom.onnx uses operators TVM's ONNX importer does not implement: "
                                         r"Celu, MyOp.*compile the torch module itself"):
        kd_edge.compile(tmp_path / "custom.onnx", out_dir=tmp_path / "a")
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        kd_edge.compile(MLP(2, 1), torch.zeros(2, 2), tmp_path / "b", backend="gpu")
    with pytest.raises(ValueError, match="needs example_input"):
        kd_edge.compile(MLP(2, 1), out_dir=tmp_path / "c")


def test_portable_avx2_target(tmp_path, compiled):
    model, _ = compiled(2, 1, 20, 4, "tanh")
    artifact = kd_edge.compile(model, torch.zeros(3, 2), tmp_path, target="x86-64-v3")
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["target"]["cpu"] == "x86-64-v3" and manifest["runtime"]["simd_lanes"] == 8
    assert {"avx2", "fma", "bmi2"} <= set(manifest["target"]["features"])
    assert not any(f.startswith("avx512") for f in manifest["target"]["features"])
    x = np.random.default_rng(0).uniform(-1, 1, size=(1001, 2)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(kd_edge.Solver(str(artifact)).predict(x), model(torch.from_numpy(x)).numpy(),
                                   rtol=0, atol=1e-5)


def test_avx512_library_is_refused_on_a_cpu_without_it(tmp_path, compiled):
    # this host has AVX-512; a host without it is simulated by a feature no CPU has
    _, artifact = compiled(2, 1, 20, 4, "tanh")
    manifest = json.loads((artifact / "manifest.json").read_text())
    if "avx512f" not in manifest["target"]["features"]:
        pytest.skip("host target has no AVX-512")
    copy = tmp_path / "artifact"
    copy.mkdir()
    for f in artifact.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    manifest["target"]["features"] = [f if f != "avx512f" else "avx512f_missing_here" for f in manifest["target"]["features"]]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(kd_edge.ArtifactError, match="needs features this host lacks: avx512f_missing_here"):
        kd_edge.Solver(str(copy))


def test_weight_normalisation_folds_at_compile_time(tmp_path):
    """g v / |v| on constants (torch's weight_norm, as PhysicsNeMo uses it) is folded before the
    recogniser sees it: the network stays a dense chain."""
    from torch.nn.utils.parametrizations import weight_norm

    torch.manual_seed(6)
    model = torch.nn.Sequential(weight_norm(torch.nn.Linear(2, 16)), torch.nn.SiLU(),
                                weight_norm(torch.nn.Linear(16, 1))).eval()
    artifact = kd_edge.compile(model, torch.zeros(3, 2), tmp_path / "a")
    assert json.loads((artifact / "manifest.json").read_text())["runtime"]["kind"] == "fused"
    x = np.random.default_rng(0).uniform(-1, 1, size=(300, 2)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(kd_edge.Solver(artifact).predict(x), model(torch.from_numpy(x)).numpy(),
                                   rtol=0, atol=1e-5)


@pytest.mark.parametrize("module", [FullyConnected, ResNet], ids=["physicsnemo", "deepxde"])
def test_skip_networks_fuse_through_onnx_too(tmp_path, module):
    """The same residual networks through their ONNX exports (as a framework user would hand them over)."""
    torch.manual_seed(8)
    model = module().eval()
    artifact = kd_edge.compile(onnx_bytes(model, 3), out_dir=tmp_path / "a")
    assert json.loads((artifact / "manifest.json").read_text())["runtime"]["kind"] == "fused"
    x = np.random.default_rng(1).uniform(-2, 2, size=(300, 3)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(kd_edge.Solver(artifact).predict(x), model(torch.from_numpy(x)).numpy(),
                                   rtol=0, atol=1e-5)
