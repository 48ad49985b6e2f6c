"""Derivatives of a dense chain in the fused kernel, by forward-mode propagation: each unit
carries its value, its first derivatives by the inputs asked for (tangents) and, for second
derivatives, the second-order terms, through every layer and the epilogue (hard constraints
included) in the same pass. The derivatives are by the artifact's own inputs: the input
normalisation sits in the first layer's weights, so it is differentiated with the rest.

Names follow the problem notation used by the equations: an output, "_", then one input name
per differentiation ("u_x", "u_xx", "u_xt", "p_y"); "jacobian" is every first derivative of
every output.
"""

import math

import numpy as np

# those the derivative kernel differentiates: every activation the fused kernel has
ACTIVATIONS = ("tanh", "sin", "identity", "sigmoid", "silu", "relu", "softplus", "elu", "gelu", "gelu_tanh")
MAX_ORDER = 2


def parse_derivatives(requested, inputs, outputs) -> list[tuple[str, int, tuple[int, ...]]]:
    """[(name, output index, input indices)] for the requested names, in order; raises naming the
    valid choices."""
    if isinstance(requested, str):
        requested = [requested]
    if not requested or not all(isinstance(r, str) for r in requested):
        raise ValueError(f"derivatives must be a list of names like {outputs[0]}_{inputs[0]}, got {requested!r}")
    if any(len(name) != 1 for name in inputs):
        raise ValueError(f"derivative names are written with one character per input ({outputs[0]}_xx); this "
                         f"model's inputs are {', '.join(inputs)}: give input_names of one character each")
    example = f"{outputs[0]}_{inputs[0]}, {outputs[0]}_{inputs[0] * 2}"
    parsed, seen = [], set()
    for name in requested:
        expanded = ([f"{o}_{i}" for o in outputs for i in inputs] if name == "jacobian" else [name])
        for key in expanded:
            output, sep, wrt = key.partition("_")
            if output not in outputs or not sep or not wrt or any(c not in inputs for c in wrt):
                raise ValueError(f"unknown derivative {key!r}: outputs are {', '.join(outputs)} and inputs "
                                 f"{', '.join(inputs)}; write e.g. {example}, or 'jacobian'")
            if len(wrt) > MAX_ORDER:
                raise ValueError(f"derivative {key!r} is of order {len(wrt)}; the kernel computes up to {MAX_ORDER}")
            index = (outputs.index(output), tuple(sorted(inputs.index(c) for c in wrt)))
            if index in seen:
                raise ValueError(f"derivative {key!r} is asked for twice (u_xt and u_tx are the same)")
            seen.add(index)
            parsed.append((key, *index))
    return parsed


class _Dual:
    """A value with its first derivatives {q: expr} and second-order terms {key: expr}, a missing
    key is zero. A second-order key is a weighted sum of second derivatives, ((q, r, c), ...) with
    q <= r: ((0, 0, 1.0),) is d2/dx0^2, ((0, 0, 1.0), (1, 1, 1.0)) the Laplacian in x0, x1. Each
    key is one stream through the chain, whatever its number of terms."""

    def __init__(self, value, first=None, second=None):
        self.value, self.first, self.second = value, first or {}, second or {}


def _add(a: _Dual, b: _Dual, subtract: bool = False) -> _Dual:
    from kd_edge.compiler.kernel import _c

    def combine(x, y):
        if y is None:
            return x
        if subtract:
            return _c(-1.0) * y if x is None else x - y
        return y if x is None else x + y

    value = a.value - b.value if subtract else a.value + b.value
    return _Dual(value, {k: combine(a.first.get(k), b.first.get(k)) for k in a.first.keys() | b.first.keys()},
                 {k: combine(a.second.get(k), b.second.get(k)) for k in a.second.keys() | b.second.keys()})


def _scale(expr, factor):
    return None if expr is None else expr * factor


def _sum(*terms):
    terms = [t for t in terms if t is not None]
    if not terms:
        return None
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def second_key(wrt) -> tuple:
    """The second-order key of input indices (q, r): ((q, r, 1.0),)."""
    q, r = sorted(wrt)
    return ((q, r, 1.0),)


def _cross(fa: dict, fb: dict, key):
    """sum over key's terms of c * fa[q] * fb[r] (None if no term has both)."""
    from kd_edge.compiler.kernel import _c

    terms = [fa[q] * fb[r] if c == 1.0 else _c(c) * fa[q] * fb[r] for q, r, c in key if q in fa and r in fb]
    return _sum(*terms)


def _chain_rule(a: _Dual, value, d1, d2, pairs) -> _Dual:
    """f(a) for f with value, f' = d1 and f'' = d2 at a.value (d2 None: f'' = 0)."""
    first = {q: _scale(e, d1) for q, e in a.first.items()}
    second = {}
    for key in pairs:
        curvature = _cross(a.first, a.first, key) if d2 is not None else None
        term = _sum(_scale(curvature, d2), _scale(a.second.get(key), d1))
        if term is not None:
            second[key] = term
    return _Dual(value, {q: e for q, e in first.items() if e is not None}, second)


def _product(a: _Dual, b: _Dual, pairs) -> _Dual:
    first = {q: _sum(_scale(a.first.get(q), b.value), _scale(b.first.get(q), a.value))
             for q in a.first.keys() | b.first.keys()}
    second = {}
    for key in pairs:
        term = _sum(_scale(a.second.get(key), b.value), _scale(b.second.get(key), a.value),
                    _cross(a.first, b.first, key), _cross(b.first, a.first, key))
        if term is not None:
            second[key] = term
    return _Dual(a.value * b.value, {q: e for q, e in first.items() if e is not None}, second)


def _activation(kind: str, a: _Dual, pairs, let) -> _Dual:
    """kind(a) with its derivatives; let(expr) binds a value computed once."""
    from kd_edge.compiler.kernel import _c, _sin_value, _tanh_value

    if kind == "identity":
        return a
    if kind == "tanh":
        t = let(_tanh_value(a.value))
        d1 = let(_c(1.0) - t * t)
        return _chain_rule(a, t, d1, _c(-2.0) * t * d1, pairs)
    if kind == "sin":
        s = let(_sin_value(a.value))
        cos = let(_sin_value(a.value + _c(math.pi / 2)))
        return _chain_rule(a, s, cos, _c(-1.0) * s, pairs)
    from tvm import te, tirx

    from kd_edge.compiler.kernel import _exp_value, _normal_cdf, _sigmoid_value, _softplus_value

    import tvm

    x = a.value
    lanes = tvm.DataType(str(x.ty)).lanes  # constants as wide as x: Select takes no scalar beside a vector
    one, zero = (tirx.Broadcast(_c(v), lanes) if lanes > 1 else _c(v) for v in (1.0, 0.0))
    if kind in ("sigmoid", "silu", "softplus"):
        s = let(_sigmoid_value(x))
        ds = let(s * (one - s))  # sigma' = sigma (1 - sigma), sigma'' = sigma' (1 - 2 sigma)
        if kind == "sigmoid":
            return _chain_rule(a, s, ds, ds * (one - _c(2.0) * s), pairs)
        if kind == "softplus":  # softplus' = sigma
            return _chain_rule(a, let(_softplus_value(x)), s, ds, pairs)
        return _chain_rule(a, x * s, s + x * ds, ds * (_c(2.0) + x * (one - _c(2.0) * s)), pairs)  # x sigma(x)
    if kind == "relu":
        return _chain_rule(a, te.max(x, zero), tirx.Select(x > zero, one, zero), None, pairs)
    if kind == "elu":  # x > 0: x, 1, 0; else e^x - 1, e^x, e^x
        e = let(_exp_value(te.min(x, zero)))
        return _chain_rule(a, te.max(x, zero) + (e - one), tirx.Select(x > zero, one, e),
                           tirx.Select(x > zero, zero, e), pairs)
    if kind == "gelu":  # x Phi(x): Phi + x phi, phi (2 - x^2)
        cdf = let(_normal_cdf(x))
        pdf = let(_exp_value(_c(-0.5) * x * x) * _c(1 / math.sqrt(2 * math.pi)))
        return _chain_rule(a, x * cdf, cdf + x * pdf, pdf * (_c(2.0) - x * x), pairs)
    if kind == "gelu_tanh":  # x sigma(u), u = k (x + c x^3)
        k, c = 2 * math.sqrt(2 / math.pi), 0.044715
        s = let(_sigmoid_value(_c(k) * (x + _c(c) * x * x * x)))
        ds = let(s * (one - s))
        du = let(_c(k) * (one + _c(3 * c) * x * x))
        return _chain_rule(a, x * s, s + x * ds * du,
                           _c(2.0) * ds * du + x * (ds * (one - _c(2.0) * s) * du * du + ds * _c(6 * k * c) * x), pairs)
    raise ValueError(f"derivatives through {kind!r} are not compiled yet; the derivative kernel takes "
                     f"{', '.join(ACTIVATIONS)}")


def _second_of(wrt):
    """The second-order key a field reads: a fused sum's own, ((q, r, 1.0),) for inputs (q, r),
    None for a value or a first derivative."""
    if wrt and isinstance(wrt[0], tuple):
        return wrt
    return second_key(wrt) if len(wrt) == 2 else None


def plan(derivatives, residual):
    """(firsts, pairs, residual): the inputs to carry tangents for, the second-order keys to carry
    (one stream each), and the residual with its sums of second derivatives fused into one field
    where that saves streams (kd_edge.compiler.residual.fuse_second_order)."""
    from kd_edge.compiler.residual import fuse_second_order

    columns = {second_key(wrt) for _, _, wrt in derivatives if len(wrt) == 2}

    def streams(keys):
        return (columns | {_second_of(wrt) for _, wrt in keys.values()}) - {None}

    if residual is not None:
        fused = fuse_second_order(*residual)
        if len(streams(fused[1])) < len(streams(residual[1])):
            residual = fused
    keys = residual[1] if residual is not None else {}
    firsts = {q for _, _, wrt in derivatives for q in wrt}
    for _, wrt in keys.values():
        firsts |= {i for q, r, _ in wrt for i in (q, r)} if _second_of(wrt) is wrt else set(wrt)
    return sorted(firsts), sorted(streams(keys)), residual


def check_differentiable(layers):
    from kd_edge.compiler.chain import _nodes

    kinds = {k for layer in layers for k in layer.activations}
    kinds |= {node[0] for node in _nodes(layers.epilogue)} & {"sin", "tanh"}
    unsupported = sorted(kinds - set(ACTIVATIONS))
    if unsupported:
        raise ValueError(f"derivatives through {', '.join(unsupported)} are not compiled yet; the derivative kernel "
                         f"takes {', '.join(ACTIVATIONS)}")


def build_derivative_kernel(layers, lanes: int, derivatives, name: str, parallel: bool, residual=None):
    """A PrimFunc like the batch kernel's (X (n, d_in) -> Y (n, d_out + len(derivatives) [+ residuals]),
    points across `lanes` SIMD lanes, any n), writing each point's outputs, then the derivatives
    parse_derivatives returned, then each residual. residual: (trees, {field key: (output, inputs)})
    from kd_edge.compiler.residual, or None."""
    import tvm
    from tvm import tirx
    from tvm.script.ir_builder import IRBuilder
    from tvm.script.ir_builder import tirx as T

    from kd_edge.compiler.kernel import _c, align_stack, tensor_arguments

    check_differentiable(layers)
    epilogue = layers.epilogue
    d_in = int(layers[0].weight.shape[1])
    n_out = layers.n_outputs
    firsts, pairs, residual = plan(derivatives, residual)
    trees, keys = residual if residual is not None else ([], {})
    width = n_out + len(derivatives) + len(trees)
    reverse = reverse_outputs(layers, derivatives, keys, firsts, pairs)

    count = 0

    class Counter:  # stands for the slots in the dry run
        def __iter__(self):
            return self

        def __next__(self):
            nonlocal count
            count += 1
            return T.alloc_buffer((1,), "float32", scope="global")

    with IRBuilder():
        with T.prim_func():
            xs = T.match_buffer(T.arg("x", T.handle()), (1, d_in), "float32")
            ys = T.match_buffer(T.arg("y", T.handle()), (1, width), "float32")
            _point_body(layers, xs, ys, 0, 0, Counter(), derivatives, firsts, pairs, n_out, T, residual, reverse)

    with IRBuilder() as ib:
        with T.prim_func():
            X, Y, n = tensor_arguments(T, name, d_in, width)

            # The slots are allocated outside the vectorised loop (inside it, TVM's vectoriser
            # gets them wrong), one stack vector each: a dry run of point() counts them.
            def slots(w):
                return [T.alloc_buffer((w,), "float32", scope="global") for _ in range(count)]

            tiles = T.parallel(n // lanes) if parallel else T.serial(n // lanes)
            with tiles as t:
                align_stack(T, lanes)
                vectors = slots(lanes)
                with T.vectorized(lanes) as lane:
                    _point_body(layers, X, Y, t * lanes + lane, lane, vectors, derivatives, firsts, pairs, n_out, T,
                                residual, reverse)
            with T.serial(n % lanes) as r:
                _point_body(layers, X, Y, n // lanes * lanes + r, 0, slots(1), derivatives, firsts, pairs, n_out, T,
                            residual, reverse)
    return ib.get()


def reverse_outputs(layers, derivatives, keys, firsts, pairs) -> tuple[int, ...] | None:
    """The chain outputs to differentiate by reverse mode, or None for forward mode.

    Forward mode carries one tangent per input differentiated through every layer past the first;
    reverse mode runs one backward pass (a transposed matrix-vector product per layer) per chain
    output whose derivatives are needed. For a one-output network of d inputs the Jacobian then
    costs about 2x the value instead of (1 + d)x. Reverse mode is taken for first derivatives
    only (second ones go forward), for chains without product layers, when it needs fewer passes."""
    if pairs or not firsts or any(layer.gate for layer in layers):
        return None
    if layers.epilogue is not None:  # the epilogue may read every chain output
        wanted = tuple(range(len(layers[-1].bias)))
    else:
        wanted = tuple(sorted({k for _, k, _ in derivatives} | {k for k, _ in keys.values()}))
    return wanted if len(wanted) < len(firsts) else None


def _dot(products, start=None):
    """start + sum of a * b over products, one chain of multiply-adds (each a + w * x one FMA).
    One chain, not the value kernel's four: the derivative kernel has many independent chains
    (units times streams) in flight already, and each extra chain costs a multiply and an add
    (measured on Burgers' Jacobian, median of 9 processes: 1,068 us with one chain, 1,127 with
    two, 1,218 with four)."""
    total = start
    for a, b in products:
        total = a * b if total is None else total + a * b
    return total


def derivative_mode(layers, derivatives, residual=None) -> str:
    """How the batch kernel differentiates: "reverse" (backward passes) or "forward" (tangents);
    the latency kernel always goes forward."""
    firsts, pairs, residual = plan(derivatives, residual)
    keys = residual[1] if residual is not None else {}
    return "forward" if reverse_outputs(layers, derivatives, keys, firsts, pairs) is None else "reverse"


def _backward(layers, values, slopes, output, firsts, let):
    """{q: d out/d x_q} for chain output `output`: its adjoint (1) carried back through every
    layer, times each unit's activation slope, through each weight matrix transposed."""
    from kd_edge.compiler.kernel import _c, _pairwise_sum

    contributions = {i: [[] for _ in row] for i, row in values.items()}  # adjoint terms per unit
    contributions[len(layers)][output].append(_c(1.0))
    for i in range(len(layers), 0, -1):
        layer = layers[i - 1]
        adjoint = []  # of the layer's pre-activation, per unit
        for j, terms in enumerate(contributions[i]):
            if not terms:
                adjoint.append(None)
                continue
            a = _pairwise_sum(terms)
            adjoint.append(let(a if slopes[i][j] is None else a * slopes[i][j]))
        sources = [(layer.main_source(i), np.asarray(layer.weight))]
        sources += [(src, np.asarray(m)) for src, m in sorted(layer.skips.items())]
        for src, matrix in sources:
            for k in range(matrix.shape[1]):
                term = _dot([(_c(float(matrix[j, k])), adjoint[j]) for j in range(matrix.shape[0])
                             if adjoint[j] is not None and matrix[j, k] != 0.0])
                if term is not None:
                    contributions[src][k].append(term)
    return {q: _pairwise_sum(contributions[0][q]) if contributions[0][q] else _c(0.0) for q in firsts}


def _point_body(layers, X, Y, index, lane, slots, derivatives, firsts, pairs, n_out, T, residual, reverse=None):
    """One point (or one vector of points, across `lane`): outputs, then derivatives, into Y;
    by forward mode, or by reverse mode for the chain outputs in `reverse` (reverse_outputs)."""
    from kd_edge.compiler.kernel import _c

    epilogue, d_in = layers.epilogue, int(layers[0].weight.shape[1])
    free = iter(slots)

    def let(expr):  # a value used more than once, computed once: through a stack slot
        buffer = next(free)
        T.buffer_store(buffer, expr, [lane])
        return buffer[lane]

    def stored(d: _Dual) -> _Dual:
        return _Dual(let(d.value), {q: let(e) for q, e in d.first.items()},
                     {p: let(e) for p, e in d.second.items()})

    inputs = [_Dual(X[index, k], {k: _c(1.0)} if k in firsts else {}) for k in range(d_in)]
    if reverse is not None:
        _reverse_point(layers, inputs, X, Y, index, derivatives, firsts, n_out, T, residual, reverse, let)
        return
    previous = {0: inputs}

    def linear(sources, bias, j) -> _Dual:
        """Row j of sum over (duals, matrix) of matrix @ duals, plus bias[j]."""
        first = {q: _row(sources, bias, j, q) for q in firsts}
        second = {key: _row(sources, bias, j, key) for key in pairs}
        return _Dual(_row(sources, bias, j, "value"), {q: e for q, e in first.items() if e is not None},
                     {key: e for key, e in second.items() if e is not None})

    for i, layer in enumerate(layers, 1):
        units = []
        sources = [(previous[layer.main_source(i)], np.asarray(layer.weight))]
        sources += [(previous[src], np.asarray(m)) for src, m in sorted(layer.skips.items())]
        if not layer.gate:
            previous[i] = _dense_layer(sources, layer, firsts, pairs, let)
            continue
        G, g, A, a = layer.gate  # a product layer: unit * (G out + g) + (A out + a), by the product rule
        for j in range(layer.weight.shape[0]):
            z = stored(linear(sources, layer.bias, j))
            unit = stored(_activation(layer.activations[j], z, pairs, let))
            scale = stored(linear([(previous[src], m) for src, m in sorted(G.items())], g, j))
            shift = linear([(previous[src], m) for src, m in sorted(A.items())], a, j)
            units.append(stored(_add(_product(unit, scale, pairs), shift)))
        previous[i] = units
    _write_point(layers, previous[0], previous[len(layers)], X, Y, index, derivatives, pairs, n_out, T, residual, let)


def _row(sources, bias, j, part):
    """Row j of the sum over (duals, matrix) of matrix @ the duals' `part` (their value, their
    tangent by input q, or a second-order key), plus bias[j] for the value; None if no term."""
    from kd_edge.compiler.kernel import _c

    products = []
    for duals, matrix in sources:
        for k, dual in enumerate(duals):
            e = dual.value if part == "value" else dual.second.get(part) if isinstance(part, tuple) \
                else dual.first.get(part)
            if e is not None and matrix[j, k] != 0.0:
                products.append((_c(float(matrix[j, k])), e))
    return _dot(products, _c(float(bias[j])) if part == "value" else None)


def _activate(kind, z, second: bool, let):
    """(f(z), f'(z), f''(z)) for the activation `kind` at z, each computed once; f'' only if
    `second`; None for the identity's 1 and 0 (and z itself as its value)."""
    from kd_edge.compiler.kernel import _c

    if kind == "identity":
        return z, None, None
    seed = (("seed", "seed", 1.0),)  # the derivatives of a unit tangent through the activation
    out = _activation(kind, _Dual(z, {"seed": _c(1.0)}), [seed] if second else [], let)
    return let(out.value), let(out.first["seed"]), let(out.second[seed]) if second and seed in out.second else None


def _dense_layer(sources, layer, firsts, pairs, let) -> list[_Dual]:
    """A layer's units as duals, one stream at a time: every unit's value and activation
    derivatives, then every unit's tangent by each input, then each second-order term. Each
    stream is a matrix-vector product over the previous layers' stream of the same kind."""
    n = layer.weight.shape[0]
    z = [_Dual(let(_row(sources, layer.bias, j, "value"))) for j in range(n)]
    value, d1, d2 = zip(*(_activate(layer.activations[j], z[j].value, bool(pairs), let) for j in range(n)))
    units = [_Dual(v) for v in value]
    for q in firsts:
        for j in range(n):
            zq = _row(sources, layer.bias, j, q)
            if zq is None:
                continue
            if pairs and d1[j] is not None:
                zq = let(zq)
                z[j].first[q] = zq  # the curvature terms read it
            units[j].first[q] = let(zq if d1[j] is None else zq * d1[j])
    for key in pairs:
        for j in range(n):
            curvature = _cross(z[j].first, z[j].first, key) if d2[j] is not None else None
            s = _row(sources, layer.bias, j, key)
            term = _sum(_scale(curvature, d2[j]), s if d1[j] is None or s is None else s * d1[j])
            if term is not None:
                units[j].second[key] = let(term)
    return units


def _reverse_point(layers, inputs, X, Y, index, derivatives, firsts, n_out, T, residual, reverse, let):
    """The forward pass keeps each unit's value and activation slope; then one backward pass per
    chain output in `reverse` gives its first derivatives."""
    values = {0: inputs}
    slopes = {}
    for i, layer in enumerate(layers, 1):
        sources = [(values[layer.main_source(i)], np.asarray(layer.weight))]
        sources += [(values[src], np.asarray(m)) for src, m in sorted(layer.skips.items())]
        units = [_activate(kind, let(_row(sources, layer.bias, j, "value")), False, let)
                 for j, kind in enumerate(layer.activations)]
        values[i], slopes[i] = [_Dual(v) for v, _, _ in units], [d1 for _, d1, _ in units]
    outs = []
    for m, unit in enumerate(values[len(layers)]):
        first = _backward(layers, values, slopes, m, firsts, let) if m in reverse else {}
        outs.append(_Dual(unit.value, {q: let(e) for q, e in first.items()}))
    _write_point(layers, inputs, outs, X, Y, index, derivatives, [], n_out, T, residual, let)


def _write_point(layers, inputs, outs, X, Y, index, derivatives, pairs, n_out, T, residual, let):
    """The point's row of Y from the chain's output duals: the epilogue, the outputs, the
    derivatives asked for, then each residual."""
    from kd_edge.compiler.kernel import _c

    if layers.epilogue is not None:
        outs = _epilogue_duals(layers.epilogue, inputs, outs, pairs, let)
    for k in range(n_out):
        T.buffer_store(Y, outs[k].value, [index, k])

    def field(k, wrt):
        key = _second_of(wrt)  # a second derivative or a fused sum of them
        d = outs[k].value if not wrt else outs[k].first.get(wrt[0]) if key is None else outs[k].second.get(key)
        return d if d is not None else _c(0.0)

    for column, (_, k, wrt) in enumerate(derivatives, n_out):
        T.buffer_store(Y, field(k, wrt), [index, column])
    if residual is not None:
        from kd_edge.compiler.kernel import _exp_value, _sin_value, _tanh_value
        from kd_edge.compiler.residual import evaluate

        trees, keys = residual
        leaf = lambda node: field(*keys[node[1]]) if node[0] == "field" else X[index, node[1]]  # noqa: E731
        for column, tree in enumerate(trees, n_out + len(derivatives)):
            T.buffer_store(Y, evaluate(tree, leaf, _sin_value, lambda a: _sin_value(a + _c(math.pi / 2)), _exp_value,
                                       _tanh_value), [index, column])


def _epilogue_duals(trees, inputs, outs, pairs, let):
    """Each epilogue tree as a _Dual of the point's inputs and the chain's outputs."""
    from kd_edge.compiler.chain import folder
    from kd_edge.compiler.kernel import _c

    def leaf(node):
        if node[0] == "lin":
            value, first = _c(node[2]), {}
            for i, w in enumerate(node[1]):
                if w:
                    value = value + _c(w) * inputs[i].value
                    for q in inputs[i].first:
                        first[q] = _sum(first.get(q), _c(w))
            return _Dual(value, first)
        return outs[node[1]] if node[0] == "out" else _Dual(_c(node[1]))

    def combine(node, args):
        kind = node[0]
        if kind in ("add", "sub"):
            return _add(*args, subtract=kind == "sub")
        if kind == "mul":
            return _product(*args, pairs)
        if kind == "div":
            a, b = args
            inverse = let(_c(1.0) / b.value)
            # 1/b: value 1/b, first -b'/b^2, second (2 b'_q b'_r / b - b''_qr) / b^2
            reciprocal = _chain_rule(b, inverse, _c(-1.0) * inverse * inverse,
                                     _c(2.0) * inverse * inverse * inverse, pairs)
            return _product(a, reciprocal, pairs)
        if kind in ("sin", "tanh"):
            return _activation(kind, args[0], pairs, let)
        raise ValueError(f"cannot differentiate the epilogue operation {kind!r}")

    emit = folder(leaf, combine)
    return [emit(tree) for tree in trees]


def build_small_derivative_kernel(layers, lanes: int, derivatives, residual=None):
    """The latency kernel's derivative form (SMALL_ENTRY: x, y, n as pointers, rows as the batch
    kernel writes them): per layer, the value, each tangent and each second-order term is a
    matrix-vector product across the layer's units (the input's tangents are unit vectors, so the
    first layer's are weight columns), the activation's derivatives on whole vectors; one point at
    a time. None for chains with product layers (their gates are unit by unit): the batch kernel
    then takes every n."""
    if any(layer.gate for layer in layers):
        return None
    from tvm.script.ir_builder import IRBuilder
    from tvm.script.ir_builder import tirx as T

    from kd_edge.compiler.kernel import (_c, _constant_vector, _pad_units, _padded_chunks, _padded_width,
                                         _pairwise_sum, _unit_lanes, small_arguments)

    d_in, n_out = int(layers[0].weight.shape[1]), layers.n_outputs
    firsts, pairs, residual = plan(derivatives, residual)
    trees, keys = residual if residual is not None else ([], {})
    parts = ["value"] + firsts + pairs  # a layer's output: its value, tangents, second-order terms

    with IRBuilder() as ib:
        with T.prim_func():
            X, Y, n = small_arguments(T, d_in, n_out + len(derivatives) + len(trees))
            with T.serial(n) as point:
                H = [{part: T.alloc_buffer((_padded_width(len(layer.bias), lanes),), "float32", scope="global")
                      for part in parts} for layer in layers]

                def let_of(w):
                    def let(expr):
                        buffer = T.alloc_buffer((w,), "float32", scope="global")
                        T.buffer_store(buffer, expr, [_unit_lanes(0, w)])
                        return buffer[_unit_lanes(0, w)]
                    return let

                def term(src, part, k, column):
                    """column (a chunk's weights on input k of output src) times that input's `part`."""
                    if src == 0:  # the point itself: value x_k, tangent e_k, no second-order terms
                        if part == "value":
                            return _constant_vector(column) * _broadcast(X[point, k], len(column))
                        return _constant_vector(column) if part == k else None
                    return _constant_vector(column) * _broadcast(H[src - 1][part][k], len(column))

                for i, layer in enumerate(layers):
                    # units first, zero rows for the last vector's padding, as in the value kernel
                    sources = [(layer.main_source(i + 1), _pad_units(layer.weight, lanes))]
                    sources += [(src, _pad_units(m, lanes)) for src, m in sorted(layer.skips.items())]
                    width, bias = len(layer.bias), _pad_units(layer.bias, lanes)
                    for start, w in _padded_chunks(width, lanes):
                        units = slice(start, start + w)
                        pre = {}
                        for part in parts:
                            terms = [term(src, part, k, m[units, k]) for src, m in sources for k in range(m.shape[1])
                                     if m[units, k].any()]
                            terms = [t for t in terms if t is not None]
                            if part == "value":
                                terms.insert(0, _constant_vector(bias[units]))
                            pre[part] = _pairwise_sum(terms)
                        kinds = set(layer.activations[units])
                        if len(kinds) == 1:
                            dual = _Dual(pre["value"], {q: pre[q] for q in firsts if pre[q] is not None},
                                         {qr: pre[qr] for qr in pairs if pre[qr] is not None})
                            out = _activation(kinds.pop(), dual, pairs, let_of(w))
                            values = {"value": out.value, **out.first, **out.second}
                            for part in parts:
                                T.buffer_store(H[i][part], values.get(part, _broadcast(_c(0.0), w)),
                                               [_unit_lanes(start, w)])
                            continue
                        for part in parts:  # mixed activations (a feature layer): unit by unit
                            T.buffer_store(H[i][part], pre[part] if pre[part] is not None else _broadcast(_c(0.0), w),
                                           [_unit_lanes(start, w)])
                        for j in range(start, min(start + w, width)):
                            dual = _Dual(H[i]["value"][j], {q: H[i][q][j] for q in firsts},
                                         {qr: H[i][qr][j] for qr in pairs})
                            let = let_of(1)
                            out = _activation(layer.activations[j], dual, pairs, let)
                            # each computed before any is stored: they read the unit's pre-activation parts
                            values = {part: let(e) for part, e in {"value": out.value, **out.first, **out.second}.items()}
                            for part in parts:
                                T.buffer_store(H[i][part], values.get(part, _c(0.0)), [j])
                outs = [_Dual(H[-1]["value"][j], {q: H[-1][q][j] for q in firsts}, {qr: H[-1][qr][j] for qr in pairs})
                        for j in range(len(layers[-1].bias))]
                inputs = [_Dual(X[point, k], {k: _c(1.0)} if k in firsts else {}) for k in range(d_in)]
                _write_point(layers, inputs, outs, X, Y, point, derivatives, pairs, n_out, T, residual, let_of(1))
    return ib.get()


def _broadcast(value, w):
    from tvm import tirx

    return tirx.Broadcast(value, w) if w > 1 else value
