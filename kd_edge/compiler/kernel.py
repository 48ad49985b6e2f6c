"""One fused TIR kernel for a dense chain: every layer computed per tile of points, points
across SIMD lanes, weights as immediates, intermediates in one-vector stack buffers; fast tanh
and sin with measured error bounds (tests/test_compiler/test_kernel.py)."""

import math
import operator
from dataclasses import asdict, dataclass

import numpy as np

from kd_edge.compiler.chain import unary_nodes

ENTRY = "kd_edge_chain"
PARALLEL_ENTRY = "kd_edge_chain_parallel"
SMALL_ENTRY = "kd_edge_chain_small"
RECIPROCALS = ("divide", "newton")


@dataclass(frozen=True)
class KernelOptions:
    """The fused kernel's knobs. The defaults were the fastest (or within 2% of it) on the one
    machine measured, an AMD EPYC with AVX-512; kd_edge.compile(..., tune_trials=N) times the
    others on the host (kd_edge.compiler.tune)."""

    accumulators: int = 4  # partial sums per unit: independent FMA chains to hide FMA latency
    reciprocal: str = "divide"  # tanh's 1/Q: "divide" (vdivps, its own unit) or "newton" (FMAs only)

    def __post_init__(self):
        if not (isinstance(self.accumulators, int) and 1 <= self.accumulators <= 8):
            raise ValueError(f"accumulators must be an integer from 1 to 8, got {self.accumulators!r}")
        if self.reciprocal not in RECIPROCALS:
            raise ValueError(f"unknown reciprocal {self.reciprocal!r}; valid: {', '.join(RECIPROCALS)}")

    def as_dict(self) -> dict:
        return asdict(self)


# tanh(x) ~ x P(x^2) / Q(x^2) on |x| <= 7.9053, +-1 beyond (Eigen's float rational approximation,
# [13/6]). A [9/6] rational fitted near-minimax (1.7e-7 exact, 4.1e-7 in float32) saved two FMAs
# (7%) but doubled the students' distance from PyTorch (wave: 9e-6 -> 2.2e-5), so Eigen's stays.
_TANH_P = [4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05, 5.12229709037114e-08,
           -8.60467152213735e-11, 2.00018790482477e-13, -2.76076847742355e-16]
_TANH_Q = [4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04, 1.19825839466702e-06]
_TANH_CLAMP = 7.90531110763549805


def _sin_coefficients(degree: int = 11) -> list[float]:
    """Odd polynomial for sin on [0, pi/2]: sin y ~ y (1 + c1 y^2 + c2 y^4 + ...), least squares
    on Chebyshev nodes (close to minimax)."""
    y = (np.cos(np.linspace(0, np.pi, 400)) + 1) * np.pi / 4
    y = y[y > 1e-6]
    terms = np.stack([y ** (2 * k) for k in range(1, (degree + 1) // 2)], axis=1)
    c, *_ = np.linalg.lstsq(terms, np.sin(y) / y - 1, rcond=None)
    return [1.0] + list(c)


_SIN_C = _sin_coefficients()
_TWO_PI_HI = float(np.float32(2 * math.pi))
_TWO_PI_LO = 2 * math.pi - _TWO_PI_HI  # Cody-Waite: 2 pi = hi + lo, hi exact in float32


_BINARY = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv}


def _c(v):
    from tvm import tirx

    return tirx.FloatImm("float32", float(np.float32(v)))


def _epilogue_emitter(inp, out, unary):
    """emit(node) -> the TIR expression of an epilogue node, each distinct node built once.
    inp(i) / out(k): the point's i-th input and the network's k-th output; unary(kind, a): the
    sin or tanh of a."""
    from kd_edge.compiler.chain import folder

    def leaf(node):
        if node[0] == "lin":
            terms = [inp(i) if w == 1 else _c(w) * inp(i) for i, w in enumerate(node[1]) if w]
            terms += [_c(node[2])] if node[2] or not terms else []
            e = terms[0]
            for term in terms[1:]:
                e = e + term
            return e
        return out(node[1]) if node[0] == "out" else _c(node[1])

    def combine(node, args):
        return unary(node[0], *args) if node[0] in ("sin", "tanh") else _BINARY[node[0]](*args)

    return folder(leaf, combine)


def stack_bytes(layers, lanes: int) -> int:
    """Stack the kernel's per-tile buffers take: a vector tile and a one-point tail of each."""
    rows = int(layers[0].weight.shape[1]) + sum(int(layer.weight.shape[0]) for layer in layers) + 4
    rows += unary_nodes(getattr(layers, "epilogue", None))
    return rows * (lanes + 1) * 4


def build_kernel_module(layers, lanes: int, options: KernelOptions = KernelOptions()):
    """An IRModule with the serial, the parallel and the small-batch kernel for `layers`.

    Each writes Y = chain(X), or Y = epilogue(X, chain(X)) when `layers` is a Chain with one,
    for X (n, d_in) and Y (n, d_out), float32 row-major, any n and any 4-byte alignment. The
    serial and parallel ones take X and Y as tensors (points across SIMD lanes, for batches); the
    small one takes (x, y, n) as pointers and a count (units across lanes, for a few points)."""
    import tvm

    return tvm.IRModule({ENTRY: _kernel(layers, lanes, options, ENTRY, parallel=False),
                         PARALLEL_ENTRY: _kernel(layers, lanes, options, PARALLEL_ENTRY, parallel=True),
                         SMALL_ENTRY: _small_kernel(layers, lanes, options)})


def align_stack(T, lanes: int):
    """Make LLVM align the function's frame to a whole vector, so that its vector spill slots are
    aligned: a one-vector stack buffer (naturally aligned to its size, 64 bytes for AVX-512),
    written once per tile and kept by a volatile store. Without it LLVM leaves the frame 16-byte
    aligned and spills zmm registers with unaligned moves, some of which split cache lines, and
    which ones depended on where the caller's stack sat (ASLR, per process). Burgers' Jacobian
    kernel, 3 processes x 4 stack offsets: 949-1,089 us without, 833-859 us with; an older
    residual kernel took 1,710-1,750 us at one offset of four and 2,160-2,470 us at the others.
    Only for vectors wider than the ABI's 16 bytes; the latency kernels keep everything in
    registers and do without."""
    from tvm import tirx

    if lanes * 4 <= 16:
        return
    anchor = T.alloc_buffer((1,), f"float32x{lanes}", scope="global", annotations={"tirx.volatile": True})
    T.buffer_store(anchor, tirx.Broadcast(_c(0.0), lanes), [0])


def tensor_arguments(T, name: str, d_in: int, d_out: int):
    """The batch kernels' signature, inside a T.prim_func(): X (n, d_in) and Y (n, d_out) float32
    tensors and n. align=4, offset_factor=1: callers' arrays need no particular alignment."""
    T.func_name(name)
    T.func_attr({"global_symbol": name, "tirx.noalias": True})
    x, y = T.arg("x", T.handle()), T.arg("y", T.handle())
    n = T.int64()
    return (T.match_buffer(x, (n, d_in), "float32", align=4, offset_factor=1),
            T.match_buffer(y, (n, d_out), "float32", align=4, offset_factor=1), n)


def _kernel(layers, lanes: int, options: KernelOptions, name: str, parallel: bool):
    import tvm
    from tvm import tirx
    from tvm.script.ir_builder import IRBuilder
    from tvm.script.ir_builder import tirx as T

    c, horner = _c, _horner

    epilogue = getattr(layers, "epilogue", None)
    d_in = layers[0].weight.shape[1]
    d_out = len(epilogue) if epilogue is not None else layers[-1].weight.shape[0]
    n_unary = unary_nodes(epilogue)
    with IRBuilder() as ib:
        with T.prim_func():
            X, Y, n = tensor_arguments(T, name, d_in, d_out)

            def allocate(width):
                """Per-tile registers: one buffer of one vector per unit of each layer, and four
                scratch vectors, allocated inside each loop so that parallel tiles share nothing.
                TVM puts a "global" buffer under 1 KiB on the stack, where LLVM can keep it in a
                register; a "local" or larger one becomes a heap workspace, allocated and freed
                by calls on every kernel call (0.2 us at N = 1) and, in a parallel loop, on every
                tile (which made two threads no faster than one)."""
                h = [[T.alloc_buffer((width,), "float32", scope="global") for _ in range(d_in)]]
                h += [[T.alloc_buffer((width,), "float32", scope="global") for _ in range(layer.weight.shape[0])]
                      for layer in layers]
                # then one buffer per sin/tanh of the epilogue, the last of them the scratch vectors
                h.append([T.alloc_buffer((width,), "float32", scope="global") for _ in range(n_unary)])
                return h, [T.alloc_buffer((width,), "float32", scope="global") for _ in range(4)]

            def store(rows, value, row, lane):
                T.buffer_store(rows[row], value, [lane])

            def reciprocal(q, lane, scratch):
                """1/q for q > 0 without a divide, in case the divider is the bottleneck: an
                exponent-flip estimate (12% error) and three Newton steps (to 1 ulp)."""
                store(scratch, q, 1, lane)
                q = scratch[1][lane]
                r = tirx.reinterpret("float32", tirx.IntImm("int32", 0x7EF311C7) - tirx.reinterpret("int32", q))
                for _ in range(3):
                    store(scratch, r, 2, lane)
                    r = scratch[2][lane]
                    r = r * (c(2.0) - q * r)
                return r

            def tanh(e, lane, vector, scratch):
                store(scratch, tvm.te.max(tvm.te.min(e, c(_TANH_CLAMP)), c(-_TANH_CLAMP)), 0, lane)
                v = scratch[0][lane]
                store(scratch, v * v, 1, lane)
                s = scratch[1][lane]
                store(scratch, v * horner(_TANH_P, s), 3, lane)
                if not vector or options.reciprocal == "divide":  # one point: less latency than Newton
                    return scratch[3][lane] / horner(_TANH_Q, s)
                return scratch[3][lane] * reciprocal(horner(_TANH_Q, s), lane, scratch)

            def exp(e, lane, scratch):
                """exp as _exp_value computes it, its intermediates in scratch vectors 0-2."""
                store(scratch, tvm.te.max(tvm.te.min(e, c(_EXP_MAX)), c(_EXP_MIN)), 0, lane)
                v = scratch[0][lane]
                store(scratch, tvm.te.floor(v * c(1 / math.log(2)) + c(0.5)), 1, lane)
                n = scratch[1][lane]
                store(scratch, (v - n * c(_LN2_HI)) - n * c(_LN2_LO), 2, lane)
                r = scratch[2][lane]
                two_n = tirx.reinterpret("float32", (tirx.Cast("int32", n) + tirx.const(127, "int32"))
                                         << tirx.const(23, "int32"))
                return (horner(_EXP_P, r) * (r * r) + r + c(1.0)) * two_n

            def silu(e, lane, scratch):  # x / (1 + exp(-x)): one divide; x kept in scratch vector 3
                store(scratch, e, 3, lane)
                return scratch[3][lane] / (c(1.0) + exp(-scratch[3][lane], lane, scratch))

            def sin(e, lane, scratch):
                store(scratch, e, 0, lane)
                v = scratch[0][lane]
                k = tvm.te.floor(v * c(1 / (2 * math.pi)) + c(0.5))
                store(scratch, (v - k * c(_TWO_PI_HI)) - k * c(_TWO_PI_LO), 0, lane)  # in [-pi, pi]
                r = scratch[0][lane]
                half_pi, pi = c(math.pi / 2), c(math.pi)
                # sin(pi - r) = sin r: now |r| <= pi/2
                store(scratch, tirx.Select(r > half_pi, pi - r, tirx.Select(r < -half_pi, -pi - r, r)), 0, lane)
                r = scratch[0][lane]
                store(scratch, r * r, 1, lane)
                return r * horner(_SIN_C, scratch[1][lane])

            def point(index, lane, vector, buffers):
                h, scratch = buffers
                for k in range(d_in):
                    store(h[0], X[index, k], k, lane)
                for i, layer in enumerate(layers, 1):
                    main = h[layer.main_source(i)]
                    for j in range(layer.weight.shape[0]):
                        partial = [c(layer.bias[j])] + [None] * (options.accumulators - 1)
                        terms = [(layer.weight[j, k], main[k]) for k in range(layer.weight.shape[1])
                                 if layer.weight[j, k]]  # exact zeros: a branch's or a product's selection
                        terms += [(m[j, k], h[src][k]) for src, m in sorted(layer.skips.items())
                                  for k in range(m.shape[1]) if m[j, k]]  # a skip is mostly zeros
                        if layer.gate and layer.selects:  # a product layer: its factor is the source's column j
                            partial = [main[j][lane]] + [None] * (options.accumulators - 1)
                            terms = []
                        for k, (w, row) in enumerate(terms):
                            term = c(w) * row[lane]
                            a = k % options.accumulators
                            partial[a] = term if partial[a] is None else partial[a] + term
                        e = _pairwise_sum([p for p in partial if p is not None])
                        act = layer.activations[j]
                        if act == "tanh":
                            e = tanh(e, lane, vector, scratch)
                        elif act == "sin":
                            e = sin(e, lane, scratch)
                        elif act == "silu":
                            e = silu(e, lane, scratch)
                        elif act == "sigmoid":
                            e = c(1.0) / (c(1.0) + exp(-e, lane, scratch))
                        elif act != "identity":
                            e = ACTIVATION_VALUES[act](e)
                        if layer.gate:  # a product: e * (G out + g) + (A out + a)
                            G, g, A, a = layer.gate
                            e = e * _sparse_sum(G, g, j, lambda src, k: h[src][k][lane]) + \
                                _sparse_sum(A, a, j, lambda src, k: h[src][k][lane])
                        store(h[i], e, j, lane)
                if epilogue is None:
                    for k in range(d_out):
                        T.buffer_store(Y, h[-2][k][lane], [index, k])
                    return
                unary_slots = iter(range(n_unary))

                def unary(kind, a):
                    # stored first: their expressions read scratch vectors the next one overwrites
                    slot = next(unary_slots)
                    store(h[-1], sin(a, lane, scratch) if kind == "sin" else tanh(a, lane, vector, scratch), slot, lane)
                    return h[-1][slot][lane]

                emit = _epilogue_emitter(lambda i: h[0][i][lane], lambda k: h[-2][k][lane], unary)
                for k, tree in enumerate(epilogue):
                    T.buffer_store(Y, emit(tree), [index, k])

            tiles = T.parallel(n // lanes) if parallel else T.serial(n // lanes)
            with tiles as t:
                align_stack(T, lanes)
                buffers = allocate(lanes)
                with T.vectorized(lanes) as lane:
                    point(t * lanes + lane, lane, True, buffers)
            with T.serial(n % lanes) as r:  # the last n % lanes points, one at a time
                point(n // lanes * lanes + r, 0, False, allocate(1))
    return ib.get()


def _pairwise_sum(terms):
    """terms added as a balanced tree (fewer dependent steps than a chain), None for no terms."""
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
    return terms[0] if terms else None


def small_arguments(T, d_in: int, d_out: int):
    """The latency kernels' signature, inside a T.prim_func(): SMALL_ENTRY(x, y, n) with x and y
    raw float32 pointers to (n, d_in) and (n, d_out) rows; returns X, Y and n."""
    T.func_name(SMALL_ENTRY)
    T.func_attr({"global_symbol": SMALL_ENTRY, "tirx.noalias": True})
    x, y = T.arg("x", T.handle("float32")), T.arg("y", T.handle("float32"))
    n = T.arg("n", T.int64())
    return T.decl_buffer((n, d_in), "float32", data=x), T.decl_buffer((n, d_out), "float32", data=y), n


def _sparse_sum(maps, bias, j, read):
    """Row j of sum_k maps[k] @ out_k + bias, its zero weights left out; read(k, column) reads out_k."""
    total = _c(bias[j]) if bias[j] else None
    for src, m in sorted(maps.items()):
        for k in np.flatnonzero(m[j]):
            term = read(src, int(k)) if m[j, k] == 1 else _c(m[j, k]) * read(src, int(k))
            total = term if total is None else total + term
    return _c(0.0) if total is None else total


def _let(value, body):
    """body(v) with v bound once to value (a TIR Let), so a value used many times is computed once."""
    from tvm import tirx

    v = tirx.Var("v", value.ty)
    return tirx.Let(v, value, body(v))


def _horner(coefficients, s):
    r = _c(coefficients[-1])
    for a in reversed(coefficients[:-1]):
        r = _fma(r, s, _c(a)) if _loop_mode else r * s + _c(a)
    return r


def _estrin(coefficients, s):
    """The polynomial by Estrin's scheme: the same value as Horner's in fewer dependent steps
    (for tanh's degree-6 numerator 4 instead of 6), which is what a single point waits on."""
    terms = [_c(a) for a in coefficients]
    power = s
    while len(terms) > 1:
        pairs = [(_fma(terms[i + 1], power, terms[i]) if _loop_mode else terms[i] + terms[i + 1] * power)
                 if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
        if len(pairs) == 1:
            return pairs[0]
        terms = pairs
        power = power * power  # repeated subexpressions: LLVM computes them once
    return terms[0]



# Set while build_loop_kernel builds (scalar expressions for a microcontroller): floor without a
# libm call, and multiply-adds rounded once. On x86 and Arm A-profile, LLVM fuses a * b + c by
# itself; for Cortex-M4 it declines (its vfma takes 3 cycles, a vmul and a vadd 2), and the
# unfused polynomials of tanh took the wave student's error on the grid from 3.9e-5 to 4.8e-5.
_loop_mode = False


def _fma(a, b, c):
    """a * b + c rounded once (llvm.fma on a scalar: vfma on Cortex-M4F, M7 and M33)."""
    from tvm import tirx

    return tirx.call_llvm_pure_intrin("float32", "llvm.fma", a, b, c)


def _floor(x):
    """floor(x) for the expression helpers. Cortex-M4's FPU has no rounding instruction, so LLVM
    would call libm's floorf, which a static artifact must not need; the loop kernel rounds
    through int32 instead (exact for |x| < 2^31: reduced arguments of sin and exp)."""
    import tvm
    from tvm import tirx

    if not _loop_mode:
        return tvm.te.floor(x)
    return _let(x, lambda v: _let(tirx.Cast("float32", tirx.Cast("int32", v)),
                                  lambda t: tirx.Select(t > v, t - _c(1.0), t)))


def _tanh_value(e):
    """tanh of a scalar or vector expression: the tile kernel's rational form, its polynomials by
    Estrin's scheme (fewer dependent steps than Horner's). One point waits on every step, so the
    square comes from the unclamped input (min(e^2, c^2) is clamp(e)^2) and the divide becomes a
    reciprocal of Q, which runs beside P, times x P: about 27 dependent cycles instead of 33 (the
    Burgers student's latency kernel, one point: 69 -> 65 ns, AMD EPYC), max error 3.0e-7 (was
    3.1e-7). The loop kernel (in-order microcontrollers, nothing to overlap) keeps x P / Q, two
    instructions fewer."""
    import tvm

    def clamp(x):
        return tvm.te.max(tvm.te.min(x, _c(_TANH_CLAMP)), _c(-_TANH_CLAMP))

    if _loop_mode:
        return _let(clamp(e), lambda v: _let(v * v, lambda s: v * _estrin(_TANH_P, s) / _estrin(_TANH_Q, s)))
    return _let(e, lambda x: _let(clamp(x), lambda v: _let(
        tvm.te.min(x * x, _c(_TANH_CLAMP * _TANH_CLAMP)),
        lambda s: v * _estrin(_TANH_P, s) * (_c(1.0) / _estrin(_TANH_Q, s)))))


# exp: Cephes' expf (a degree-5 polynomial after Cody-Waite reduction by ln 2), clamped so that
# 2^n stays a normal float.
_EXP_P = [5.0000001201e-1, 1.6666665459e-1, 4.1665795894e-2, 8.3334519073e-3, 1.3981999507e-3, 1.9875691500e-4]
_LN2_HI, _LN2_LO = 0.693359375, -2.12194440e-4
_EXP_MIN, _EXP_MAX = -87.3, 88.3
# erf (Abramowitz and Stegun 7.1.26): 1 - t P(t) e^(-z^2), t = 1 / (1 + 0.3275911 z), |error| < 1.5e-7.
_ERF_P = [0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429]


def _int_type(e) -> str:
    return str(e.ty).replace("float32", "int32")


def _exp_value(e):
    """exp of a scalar or vector expression (relative error about 1e-7 on [-87.3, 88.3], clamped outside)."""
    import tvm
    from tvm import tirx

    def body(x):
        return _let(_floor(x * _c(1 / math.log(2)) + _c(0.5)), lambda n: _let(
            (x - n * _c(_LN2_HI)) - n * _c(_LN2_LO), lambda r: _let(r * r, lambda z: (
                _horner(_EXP_P, r) * z + r + _c(1.0)) * tirx.reinterpret(
                    str(e.ty), (tirx.Cast(_int_type(e), n) + tirx.const(127, "int32")) << tirx.const(23, "int32")))))

    return _let(tvm.te.max(tvm.te.min(e, _c(_EXP_MAX)), _c(_EXP_MIN)), body)


def _sigmoid_value(e):
    return _c(1.0) / (_c(1.0) + _exp_value(-e))


def _silu_value(e):
    return _let(e, lambda x: x / (_c(1.0) + _exp_value(-x)))


def _relu_value(e):
    import tvm

    return tvm.te.max(e, _c(0.0))


def _gelu_tanh_value(e):
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as torch's approximate="tanh", computed as
    x sigmoid(2 sqrt(2/pi) (...)): the same function, without tanh's clamp (which left 2.4e-6 at x = -20)."""
    return _let(e, lambda x: x * _sigmoid_value(_c(2 * math.sqrt(2 / math.pi)) * (x + _c(0.044715) * x * x * x)))


def _erf_of(z):
    """erf(z) for z >= 0 by Abramowitz and Stegun 7.1.26 (|error| < 1.5e-7)."""
    return _let(_c(1.0) / (_c(1.0) + _c(0.3275911) * z), lambda t: _c(1.0) - t * _horner(_ERF_P, t) * _exp_value(-z * z))


def _gelu_value(e):
    """0.5 x (1 + erf(x / sqrt 2)), erf by Abramowitz and Stegun 7.1.26 (odd extension)."""
    import tvm
    from tvm import tirx

    return _let(e, lambda x: _let(_erf_of(tvm.te.abs(x) * _c(1 / math.sqrt(2))), lambda a: _c(0.5) * x * (
        _c(1.0) + tirx.Select(x < _c(0.0), -a, a))))


def _normal_cdf(e):
    """Phi(x) = (1 + erf(x / sqrt 2)) / 2, erf as in _gelu_value (the derivative kernel's GELU)."""
    import tvm
    from tvm import tirx

    return _let(e, lambda x: _let(_erf_of(tvm.te.abs(x) * _c(1 / math.sqrt(2))), lambda a: _c(0.5) * (
        _c(1.0) + tirx.Select(x < _c(0.0), -a, a))))


def _sin_value(e):
    """sin of a scalar or vector expression, as the tile kernel computes it."""
    import tvm
    from tvm import tirx

    half_pi, pi = _c(math.pi / 2), _c(math.pi)

    def reduced(v):  # v - 2 pi k in [-pi, pi], then folded into [-pi/2, pi/2]
        k = _floor(v * _c(1 / (2 * math.pi)) + _c(0.5))
        return _let((v - k * _c(_TWO_PI_HI)) - k * _c(_TWO_PI_LO), lambda r: tirx.Select(
            r > half_pi, pi - r, tirx.Select(r < -half_pi, -pi - r, r)))

    return _let(e, lambda v: _let(reduced(v), lambda r: r * _horner(_SIN_C, r * r)))


def _softplus_value(e):
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), log1p(t) = 2 atanh(t / (2 + t)) by its series
    (s = t / (2 + t) <= 1/3: eight terms leave 1.4e-9 relative), so no log and no cancellation."""
    import tvm

    return _let(e, lambda x: _let(_exp_value(-tvm.te.abs(x)), lambda t: _let(t / (_c(2.0) + t), lambda s: (
        tvm.te.max(x, _c(0.0)) + _c(2.0) * s * _horner(_LOG1P_SERIES, s * s)))))


def _elu_value(e):
    """ELU (alpha 1): max(x, 0) + exp(min(x, 0)) - 1, branch-free; exactly x for x >= 0 (exp(0) is 1)."""
    import tvm

    return _let(e, lambda x: tvm.te.max(x, _c(0.0)) + (_exp_value(tvm.te.min(x, _c(0.0))) - _c(1.0)))


_LOG1P_SERIES = [1 / (2 * k + 1) for k in range(8)]


# Activations both kernels compute from an expression alone (tanh and sin have their own forms in
# the batch kernel); error bounds: tests/test_compiler/test_kernel.py.
ACTIVATION_VALUES = {"sigmoid": _sigmoid_value, "silu": _silu_value, "relu": _relu_value,
                     "gelu": _gelu_value, "gelu_tanh": _gelu_tanh_value, "softplus": _softplus_value,
                     "elu": _elu_value}


def _constant_vector(values):
    """A vector constant (a scalar for one value): one weight column of a chunk of units."""
    from tvm import tirx

    if len(values) == 1:
        return _c(values[0])
    return tirx.Shuffle([_c(v) for v in values], [tirx.IntImm("int32", i) for i in range(len(values))])


def _unit_lanes(start, w):
    """The buffer index of units start .. start + w - 1 (a ramp, or one index)."""
    from tvm import tirx

    return tirx.Ramp(tirx.IntImm("int64", start), tirx.IntImm("int64", 1), w) if w > 1 else start


def _padded_chunks(width: int, lanes: int) -> list[tuple[int, int]]:
    """(first unit, vector width) covering `width` units: full vectors, then one vector of the next
    power of two for the rest (the units past `width` get zero weights and are never read). 27
    units are 16 + 16 lanes, not 16 + 8 + 2 + 1: fewer instructions and half the registers, which
    two interleaved points otherwise spill (Kovasznay's 3x27, kernel alone at N = 4: 510-551 -> 190-251 ns)."""
    full = width // lanes * lanes
    out = [(start, lanes) for start in range(0, full, lanes)]
    if width > full:
        out.append((full, min(lanes, 1 << (width - full - 1).bit_length())))
    return out


def _padded_width(width: int, lanes: int) -> int:
    start, w = _padded_chunks(width, lanes)[-1]
    return start + w


def _pad_units(values, lanes: int) -> np.ndarray:
    """A layer's bias or weight matrix (units first) with zero rows for the padded units."""
    values = np.asarray(values, np.float32)
    extra = _padded_width(len(values), lanes) - len(values)
    return np.pad(values, [(0, extra)] + [(0, 0)] * (values.ndim - 1))


def _small_kernel(layers, lanes: int, options: KernelOptions, group: int = 2):
    """The latency kernel: each layer a matrix-vector product vectorised across its units (weight
    columns as vector constants, one broadcast input per column), activations on whole vectors.
    One point is a chain of dependent steps, so points go `group` at a time, their chains
    interleaved. Takes raw pointers and n, so the call carries no tensor descriptors to check."""
    from tvm import tirx
    from tvm.script.ir_builder import IRBuilder
    from tvm.script.ir_builder import tirx as T

    epilogue = getattr(layers, "epilogue", None)
    d_in = layers[0].weight.shape[1]
    d_out = len(epilogue) if epilogue is not None else layers[-1].weight.shape[0]
    activation = dict(ACTIVATION_VALUES, tanh=_tanh_value, sin=_sin_value)

    vector, lanes_of = _constant_vector, _unit_lanes

    def dense(layer, sources, H):
        """H = activation(sum of W source + b), chunk by chunk of units; sources: (value(k), W)
        for the previous layer's output and each skip connection's."""
        width, bias = len(layer.bias), _pad_units(layer.bias, lanes)
        sources = [(source, _pad_units(m, lanes)) for source, m in sources]
        for start, w in _padded_chunks(width, lanes):
            units = slice(start, start + w)
            columns = [(m[units, k], source(k)) for source, m in sources for k in range(m.shape[1])
                       if m[units, k].any() or m is sources[0][1]]
            # the bias starts a partial sum with the fewest terms (a multiply-add instead of a
            # multiply), not a level of the final sum: one add fewer on the point's chain. With
            # fewer columns than partial sums each has one term at most: the first takes it.
            partial = [None] * options.accumulators
            partial[len(columns) % options.accumulators if len(columns) >= options.accumulators else 0] = \
                vector(bias[units])
            for k, (column, inp) in enumerate(columns):
                term = vector(column) * (tirx.Broadcast(inp, w) if w > 1 else inp)
                a = k % options.accumulators
                partial[a] = term if partial[a] is None else partial[a] + term
            e = _pairwise_sum([t for t in partial if t is not None])
            kinds = set(layer.activations[units])
            if len(kinds) == 1 and kinds != {"identity"}:
                e = activation[kinds.pop()](e)
            T.buffer_store(H, e, [lanes_of(start, w)])
            if len(kinds) > 1:  # mixed (a feature layer): unit by unit
                for j in range(start, min(start + w, width)):
                    if layer.activations[j] != "identity":
                        T.buffer_store(H, activation[layer.activations[j]](H[j]), [j])

    def points(indices):
        """The whole network for these points, layer by layer across them."""
        outputs = [[T.alloc_buffer((_padded_width(int(layer.weight.shape[0]), lanes),), "float32", scope="global")
                    for layer in layers] for _ in indices]
        for i, layer in enumerate(layers):
            for p, H in zip(indices, outputs):
                def output_of(src, p=p, H=H):  # layer src's output for point p (0: its input)
                    return (lambda k: X[p, k]) if src == 0 else (lambda k, h=H[src - 1]: h[k])

                sources = [(output_of(layer.main_source(i + 1)), np.asarray(layer.weight, np.float32))]
                sources += [(output_of(src), np.asarray(m, np.float32)) for src, m in sorted(layer.skips.items())]
                if not (layer.gate and layer.selects):
                    dense(layer, sources, H[i])
                if layer.gate:  # a product, unit by unit: few nonzero weights per unit
                    G, g, A, a = layer.gate
                    def read(src, k, output_of=output_of):
                        return output_of(src)(k)
                    for j in range(len(layer.bias)):
                        z = sources[0][0](j) if layer.selects else H[i][j]
                        T.buffer_store(H[i], z * _sparse_sum(G, g, j, read) + _sparse_sum(A, a, j, read), [j])
        for p, H in zip(indices, outputs):
            if epilogue is None:
                for k in range(d_out):
                    T.buffer_store(Y, H[-1][k], [p, k])
            else:
                emit = _epilogue_emitter(lambda i, p=p: X[p, i], lambda k, h=H[-1]: h[k],
                                         lambda kind, a: activation[kind](a))
                for k, tree in enumerate(epilogue):
                    T.buffer_store(Y, emit(tree), [p, k])

    with IRBuilder() as ib:
        with T.prim_func():
            X, Y, n = small_arguments(T, d_in, d_out)
            with T.serial(n // group) as g:
                points([g * group + i for i in range(group)])
            if group > 1:
                with T.serial(n % group) as r:
                    points([n // group * group + r])
    return ib.get()


def _runs(activations) -> list[tuple[int, int, str]]:
    """(start, stop, kind) of each run of units with the same activation."""
    runs = []
    for j, kind in enumerate(activations):
        if runs and runs[-1][2] == kind:
            runs[-1] = (runs[-1][0], j + 1, kind)
        else:
            runs.append((j, j + 1, kind))
    return runs


def loop_kernel_parameters(layers) -> tuple[np.ndarray, list[dict]]:
    """The loop kernel's parameter array (float32) and where each layer's parts start in it:
    per layer its weight (out, in) row-major, each skip matrix (sorted by source), its bias, then for a
    product layer its gate matrices and bias and its shift matrices and bias."""
    parts, layout, offset = [], [], 0
    for layer in layers:
        entry = {}
        gate = [] if not layer.gate else \
            [(f"gate{k}", m) for k, m in sorted(layer.gate[0].items())] + [("gate_bias", layer.gate[1])] + \
            [(f"shift{k}", m) for k, m in sorted(layer.gate[2].items())] + [("shift_bias", layer.gate[3])]
        for key, matrix in [("weight", layer.weight)] + [(f"skip{k}", m) for k, m in sorted(layer.skips.items())] + \
                [("bias", layer.bias)] + gate:
            values = np.asarray(matrix, np.float32).ravel()
            entry[key] = offset
            parts.append(values)
            offset += values.size
        layout.append(entry)
    return np.concatenate(parts), layout


def build_loop_kernel(layers, symbol: str):
    """The compact kernel for microcontrollers: a plain C function
    `void symbol(const float* x, float* y, int32_t n, const float* params)`, params being
    loop_kernel_parameters(layers)[0] (kept in flash by the caller). Each layer is a loop over
    its units (one per run of units with the same activation), each unit's dot product unrolled:
    code grows with the layers' widths, not with their multiply-adds, and the weights are data
    (4 bytes per multiply-add) instead of instructions. The unrolled kernels put them in the code:
    24-27 KB of Cortex-M4 code for a 3x20 student, where this takes a few KB."""
    global _loop_mode
    _loop_mode = True
    try:
        return _build_loop_kernel(layers, symbol)
    finally:
        _loop_mode = False


def _build_loop_kernel(layers, symbol: str):
    import tvm
    from tvm.script.ir_builder import IRBuilder
    from tvm.script.ir_builder import tirx as T

    epilogue = getattr(layers, "epilogue", None)
    d_in = int(layers[0].weight.shape[1])
    d_out = len(epilogue) if epilogue is not None else int(layers[-1].weight.shape[0])
    params, layout = loop_kernel_parameters(layers)
    activation = dict(ACTIVATION_VALUES, tanh=_tanh_value, sin=_sin_value, identity=lambda e: e)

    with IRBuilder() as ib:
        with T.prim_func():
            T.func_name(symbol)
            T.func_attr({"global_symbol": symbol, "tirx.noalias": True, "calling_conv": 1})  # 1: plain C call
            x, y = T.arg("x", T.handle("float32")), T.arg("y", T.handle("float32"))
            n = T.arg("n", T.int32())
            w = T.arg("params", T.handle("float32"))
            X = T.decl_buffer((n, d_in), "float32", data=x)
            Y = T.decl_buffer((n, d_out), "float32", data=y)
            P = T.decl_buffer((int(params.size),), "float32", data=w)
            H = [T.alloc_buffer((int(layer.weight.shape[0]),), "float32", scope="global") for layer in layers]
            with T.serial(n) as p:
                def output_of(src):  # layer src's output for this point (0: its input)
                    return (lambda k: X[p, k]) if src == 0 else (lambda k, h=H[src - 1]: h[k])

                for i, (layer, where) in enumerate(zip(layers, layout)):
                    sources = [(output_of(layer.main_source(i + 1)), where["weight"], int(layer.weight.shape[1]))]
                    sources += [(output_of(src), where[f"skip{src}"], int(m.shape[1]))
                                for src, m in sorted(layer.skips.items())]
                    for start, stop, kind in _runs(layer.activations):
                        with T.serial(stop - start) as u:
                            j = u + start
                            def dot(parts, bias):
                                acc = P[where[bias] + j]
                                for value, offset, width in parts:
                                    for k in range(width):
                                        acc = _fma(P[offset + j * width + k], value(k), acc)
                                return acc

                            e = activation[kind](dot(sources, "bias"))
                            if layer.gate:  # a product: e * (G out + g) + (A out + a)
                                G, A = ([(output_of(src), where[f"{part}{src}"], int(m.shape[1]))
                                         for src, m in sorted(maps.items())] for part, maps in
                                        (("gate", layer.gate[0]), ("shift", layer.gate[2])))
                                e = _fma(e, dot(G, "gate_bias"), dot(A, "shift_bias"))
                            T.buffer_store(H[i], e, [j])
                if epilogue is None:
                    for k in range(d_out):
                        T.buffer_store(Y, H[-1][k], [p, k])
                else:
                    emit = _epilogue_emitter(lambda i: X[p, i], lambda k: H[-1][k], lambda kind, a: activation[kind](a))
                    for k, tree in enumerate(epilogue):
                        T.buffer_store(Y, emit(tree), [p, k])
    return tvm.IRModule({symbol: ib.get()}), params
