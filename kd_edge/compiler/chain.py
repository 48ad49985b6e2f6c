"""Recognise a dense chain in a Relax module: layers y = act(W x + b) with per-column
elementwise activations, whatever frontend (torch.export, ONNX) produced it.

The recogniser interprets main's bindings abstractly. Each value is either a constant or
an affine map of the previous layer's output, possibly with elementwise activations
applied; matmul and add/subtract/multiply/divide by constants compose affine maps, tanh,
sin, cos (cos x = sin(x + pi/2)), sigmoid, SiLU (x * sigmoid(x)), ReLU and GELU (erf and tanh
forms) close a layer, and concat joins maps of the same input. An activation exported as several
elementwise operations of one pre-activation (softplus as log(1 + exp(x)) with a threshold, ELU as
relu(x) - relu(1 - exp(x))) is recognised by its values, whichever operations spell it. A sum of values of different
layers is a skip connection: the later one is the layer's input, the earlier one a skip input.
After the chain, an elementwise *epilogue* may combine its outputs with the input columns:
add, subtract, multiply, divide, negate, integer powers, sin, cos and tanh of input columns (strided
slices of the input), constants and the chain's outputs. That is how a hard-constrained network,
u = u0(x) + t^2 x (1 - x) N(x, t), keeps the fused kernel.

Anything else means the module is not a dense chain and compiles the generic way."""

import math
from dataclasses import dataclass, field

import numpy as np

ACTIVATIONS = ("identity", "tanh", "sin", "sigmoid", "silu", "relu", "gelu", "gelu_tanh", "softplus", "elu")


class NotADenseChain(Exception):
    """The module holds an operation the fused kernel does not implement."""


@dataclass
class Layer:
    weight: np.ndarray  # (out, in), float64: applied to the previous layer's output (the input for the first)
    bias: np.ndarray  # (out,)
    activations: tuple  # per output column, from ACTIVATIONS
    # skip connections: {k: matrix (out, width of k)} applied to the output of layer k (0: the
    # network's input; layers count from 1), added before the activation
    skips: dict = field(default_factory=dict)
    # the output `weight` reads, if not the previous layer's (a branch: two layers reading one input)
    source: int | None = None
    # a product: output = act(...) * (sum_k G_k out_k + g) + (sum_k A_k out_k + a), as the gating of
    # a modified MLP, h = (1 - z) U + z V; (G, g, A, a) with G and A {k: matrix} like skips
    gate: tuple | None = None

    def main_source(self, position: int) -> int:
        """The output `weight` reads (0: the input) for the layer at 1-based `position`."""
        return position - 1 if self.source is None else self.source

    @property
    def selects(self) -> bool:
        """Whether the pre-activation is just the source's output (a product layer's factor)."""
        n = len(self.bias)
        return self.weight.shape == (n, n) and not self.skips and not self.bias.any() and \
            np.array_equal(self.weight, np.eye(n)) and set(self.activations) == {"identity"}

    @property
    def multiply_adds(self) -> int:
        gate = sum(int(np.count_nonzero(m)) for part in (self.gate[0], self.gate[2]) for m in part.values()) + \
            len(self.bias) if self.gate else 0
        weight = 0 if self.gate and self.selects else int(self.weight.size)
        return weight + sum(int(m.size) for m in self.skips.values()) + gate


@dataclass
class _Affine:  # value = act(W @ base + sum_k S_k @ output_k + b) per column; base is layer `base`'s output
    weight: np.ndarray
    bias: np.ndarray
    base: int
    activations: tuple | None = None  # None: no activation applied yet
    skips: dict = field(default_factory=dict)  # {k: S_k}: earlier layers' outputs (skip connections)

    def map(self, matrix, bias):
        """matrix @ self + bias (no activation applied yet)."""
        return _Affine(matrix @ self.weight, matrix @ self.bias + bias, self.base, None,
                       {k: matrix @ m for k, m in self.skips.items()})


@dataclass
class _Elementwise:  # per column, a function of one pre-activation: an activation exported as several operations
    pre: _Affine  # the pre-activation x (no activation applied)
    tree: tuple  # over ("lin", s, t) = s x + t per column, ("const", c), ("act", kinds, node) and numpy-named operations


@dataclass
class _Products:  # sum of c * a * b over `terms` (c per column; a, b values of the network) + sum of c * v over `linear`
    terms: list
    linear: list


@dataclass
class _Pointwise:  # per column, an epilogue expression tree (see Chain.epilogue)
    columns: list


class Chain(list):
    """The layers of a dense chain, and its epilogue: None, or one expression tree per output
    column, built from ("lin", weights, bias) (an affine map of the input columns), ("out", j)
    (the chain's output j), ("const", value), ("add" | "sub" | "mul" | "div", a, b) and
    ("sin" | "tanh", a)."""

    epilogue: list | None = None

    @property
    def n_outputs(self) -> int:
        return len(self.epilogue) if self.epilogue is not None else int(self[-1].weight.shape[0])

    def signature(self) -> list:
        """The epilogue's operations without its constants (what its cost depends on)."""
        def shape(node):
            if node[0] in ("lin", "const", "out"):  # leaves: their numbers are not the shape
                return [node[0]]
            return [node[0]] + [shape(a) for a in node[1:]]
        return [shape(tree) for tree in self.epilogue or []]


# Expression-tree nodes without subtrees: an epilogue's ("lin", weights, bias), ("out", j) and
# ("const", v), and a traced residual's ("field", key) and ("input", i).
LEAVES = ("lin", "out", "const", "field", "input")


def folder(leaf, combine):
    """emit(node): an expression tree's value, bottom-up and left to right, each distinct node
    computed once (a subexpression used twice is one node): leaf(node) for a leaf (LEAVES),
    combine(node, [values of its subtrees]) for the rest."""
    memo = {}

    def emit(node):
        if id(node) not in memo:
            memo[id(node)] = leaf(node) if node[0] in LEAVES else combine(node, [emit(a) for a in node[1:]])
        return memo[id(node)]

    return emit


def describe_layers(layers) -> dict:
    """The manifest's account of a chain: "layers", [inputs, outputs, activations] per layer, then
    the layers whose outputs it also reads (skip connections; 0: the input), if any, then for a
    branch or a product {"source": the output it reads instead of the previous layer's, "gate": the
    outputs its product reads}; and "multiply_adds" per point."""
    def entry(l):
        out = [int(l.weight.shape[1]), int(l.weight.shape[0]), sorted(set(l.activations))]
        extra = ({"source": l.source} if l.source is not None else {}) | (
            {"gate": sorted(set(l.gate[0]) | set(l.gate[2]))} if l.gate else {})
        return out + ([sorted(l.skips)] if l.skips or extra else []) + ([extra] if extra else [])

    return {"layers": [entry(l) for l in layers], "multiply_adds": sum(l.multiply_adds for l in layers)}


def unary_nodes(trees) -> int:
    """Distinct sin/tanh nodes in an epilogue: each takes a stack buffer in the kernel."""
    return sum(1 for node in _nodes(trees) if node[0] in ("sin", "tanh"))


def epilogue_operations(trees) -> int:
    """Arithmetic operations and sin/tanh evaluations per point in an epilogue."""
    return sum(1 for node in _nodes(trees) if node[0] not in ("out", "const", "lin"))


def _nodes(trees) -> list:
    """Each distinct node of the trees once (a subexpression used twice is one node)."""
    seen, out = set(), []

    def walk(node):
        if id(node) in seen:
            return
        seen.add(id(node))
        out.append(node)
        if node[0] not in LEAVES:  # a leaf's tuple (a "lin" node's weights) is data, not a subtree
            for a in node[1:]:
                walk(a)

    for tree in trees or []:
        walk(tree)
    return out


def _fold(layers: list[Layer]) -> list[Layer]:
    """Merge a layer without activations into the next one: W2 (W1 x + b1) + b2 (not across skip
    connections: a layer that has them, or whose output one reads, keeps its place)."""
    if any(layer.skips or layer.source is not None or layer.gate for layer in layers):
        return layers
    out = []
    for layer in layers:
        if out and all(a == "identity" for a in out[-1].activations):
            prev = out.pop()
            layer = Layer(layer.weight @ prev.weight, layer.weight @ prev.bias + layer.bias, layer.activations)
        out.append(layer)
    return out


def extract_chain(module) -> Chain:
    """The layers (and epilogue) of `module`'s main function, or NotADenseChain naming what is not one."""
    from tvm.ir import expr as ir  # TVM 0.27: Relax calls, tuples and constants are ir.expr nodes

    func = module["main"]
    if len(func.params) != 1:
        raise NotADenseChain(f"main takes {len(func.params)} inputs, a dense chain takes 1")
    width = int(func.params[0].ty.shape[1])
    layers = Chain()
    values = {func.params[0]: _Affine(np.eye(width), np.zeros(width), 0)}
    ended = {}  # the chain's final value, once the epilogue has used it: {"value": _Affine, "leaves": [...]}

    def width_of(k: int) -> int:
        """Columns of layer k's output (0: the input)."""
        return width if k == 0 else len(layers[k - 1].bias)

    closed = {}  # id of an activated value -> its layer's output (a value used twice is one layer)

    def append(v: _Affine, activations, gate=None):
        """A new layer computing v (its input any earlier output: the previous layer's by default)."""
        layers.append(Layer(v.weight, v.bias, activations, v.skips,
                            None if v.base == len(layers) else v.base, gate))

    def close(v: _Affine) -> _Affine:
        """Turn v into the output of a new layer, so that more layers can follow it."""
        if v.activations is None:
            return v
        if id(v) in closed:
            return closed[id(v)][1]
        if ended:
            raise NotADenseChain("a layer follows the epilogue (two networks?)")
        append(v, v.activations)
        k = len(v.bias)
        closed[id(v)] = (v, _Affine(np.eye(k), np.zeros(k), len(layers)))
        return closed[id(v)][1]

    def add(a: _Affine, b: _Affine, sign: float) -> _Affine:
        """a + sign * b of two values of the network: a skip connection when they come from
        different layers (the later one is the layer's input, the earlier one a skip input)."""
        a, b = close(a), close(b)
        if a.base < b.base:
            a, b, flip = b, a, True
        else:
            flip = False
        sa, sb = (sign, 1.0) if flip else (1.0, sign)
        skips = {k: sa * m for k, m in a.skips.items()}
        for k, m in b.skips.items():
            skips[k] = skips.get(k, 0) + sb * m
        if a.base == b.base:
            return _Affine(sa * a.weight + sb * b.weight, sa * a.bias + sb * b.bias, a.base, None, skips)
        skips[b.base] = skips.get(b.base, 0) + sb * b.weight
        return _Affine(sa * a.weight, sa * a.bias + sb * b.bias, a.base, None, skips)

    def value(expr):
        if isinstance(expr, ir.GenericConst):
            return expr.value.numpy().astype(np.float64)
        if expr in values:
            return values[expr]
        raise NotADenseChain(f"unsupported expression {type(expr).__name__}")

    def as_vector(c, k):
        c = np.asarray(c)
        if c.size not in (1, k) or c.ndim > 2 or (c.ndim == 2 and c.shape[0] != 1):
            raise NotADenseChain(f"a constant of shape {c.shape} does not broadcast over {k} columns")
        return np.broadcast_to(c.reshape(-1), (k,))

    def pointwise(v) -> list:
        """v as epilogue columns: input-linear values become ("lin", ...) leaves; the chain's
        running value ends the chain and becomes ("out", j) leaves."""
        if isinstance(v, _Pointwise):
            return v.columns
        if isinstance(v, _Products):  # a product the epilogue uses: its factors as epilogue columns
            def scaled(c, columns):
                c = np.broadcast_to(c, (len(columns),))
                return [x if cj == 1 else ("mul", ("const", float(cj)), x) for cj, x in zip(c, columns)]

            sums = [scaled(c, [("mul", x, y) for x, y in zip(*broadcast(pointwise(a), pointwise(b)))])
                    for c, a, b in v.terms]
            sums += [scaled(c, pointwise(u)) for c, u in v.linear]
            columns = sums[0]
            for more in sums[1:]:
                columns = [("add", x, y) for x, y in zip(*broadcast(columns, more))]
            return columns
        if isinstance(v, np.ndarray):
            return [("const", float(c)) for c in np.asarray(v).reshape(-1)]
        if v.base == 0 and (v.activations is None or layers):  # a function of the input alone
            lin = [("lin", tuple(float(w) for w in row), float(b)) for row, b in zip(v.weight, v.bias)]
            return lin if v.activations is None else [x if a == "identity" else (a, x) for x, a in zip(lin, v.activations)]
        if ended:
            if ended["value"] is v:
                return ended["leaves"]
            raise NotADenseChain("elementwise arithmetic between two different values of the network "
                                 "(a skip connection?)")
        append(v, v.activations or ("identity",) * len(v.bias))
        ended.update(value=v, leaves=[("out", j) for j in range(len(v.bias))])
        return ended["leaves"]

    def broadcast(*parts):
        k = max(len(p) for p in parts)
        if any(len(p) not in (1, k) for p in parts):
            raise NotADenseChain(f"epilogue values of {sorted({len(p) for p in parts})} columns do not broadcast")
        return [p * k if len(p) == 1 else p for p in parts]

    def epilogue(op, args):
        if op in BINARY:
            a, b = broadcast(pointwise(args[0]), pointwise(args[1]))
            return _Pointwise([(BINARY[op], x, y) for x, y in zip(a, b)])
        a = pointwise(args[0])
        if op == "relax.cos":  # cos x = sin(x + pi/2)
            return _Pointwise([("sin", ("add", x, ("const", math.pi / 2))) for x in a])
        return _Pointwise([(op.split(".")[1], x) for x in a])

    def affine_and_const(a, b):
        if isinstance(a, _Affine) and isinstance(b, np.ndarray):
            return close(a), b, False
        if isinstance(b, _Affine) and isinstance(a, np.ndarray):
            return close(b), a, True
        raise NotADenseChain("elementwise arithmetic between two non-constant tensors outside an epilogue")

    def strided_slice(call):
        source = resolve(value(call.args[0]))
        axes, begin, end, strides = ([int(i) for i in call.args[k].fields] for k in range(1, 5))
        if isinstance(source, np.ndarray) or axes != [1]:
            raise NotADenseChain("a slice of anything but the columns of a running value")
        columns = pointwise(source)
        return _Pointwise(columns[slice(begin[0], end[0], strides[0])])

    def related(v: _Affine, x: _Affine):
        """(s, t) with v's pre-activation = s x + t per column, or None."""
        if v.base != x.base or len(v.bias) != len(x.bias) or set(v.skips) != set(x.skips):
            return None
        rows = np.hstack([x.weight] + [x.skips[k] for k in sorted(x.skips)])
        other = np.hstack([v.weight] + [v.skips[k] for k in sorted(v.skips)])
        pivot = np.abs(rows).argmax(axis=1)
        index = np.arange(len(pivot))
        s = np.where(rows[index, pivot] != 0, other[index, pivot] / np.where(rows[index, pivot] != 0,
                                                                               rows[index, pivot], 1), 1.0)
        if not np.allclose(other, s[:, None] * rows, rtol=1e-6, atol=1e-12 * (1 + np.abs(rows).max())):
            return None
        return s, v.bias - s * x.bias

    def as_tree(a, x: _Affine, k: int):
        """An operand of an elementwise operation as a tree in x."""
        if isinstance(a, np.ndarray):
            return ("const", np.asarray(as_vector(a, k), np.float64))
        if isinstance(a, _Elementwise):
            if a.pre is x:
                return a.tree
            st = related(a.pre, x)
            if st is None:
                raise NotADenseChain("elementwise arithmetic between values of different layers")
            return _substitute(a.tree, *st)
        st = related(a, x)
        if st is None:
            raise NotADenseChain("elementwise arithmetic between values of different layers "
                                 "(a gated or multiplicative network?)")
        leaf = ("lin",) + st
        return leaf if a.activations is None else ("act", a.activations, leaf)

    def elementwise(op, args) -> _Elementwise:
        first = next(a for a in args if isinstance(a, (_Elementwise, _Affine)))
        x = first.pre if isinstance(first, _Elementwise) else _Affine(first.weight, first.bias, first.base, None,
                                                                      first.skips)
        trees = [as_tree(a, x, len(x.bias)) for a in args]
        if op in UNARY:  # an activation of the pre-activation's function: relu(1 - exp(x)) in ELU
            return _Elementwise(x, ("act", (UNARY[op],) * len(x.bias),
                                    ("add", trees[0], ("const", np.full(len(x.bias), math.pi / 2))) if op == "relax.cos"
                                    else trees[0]))
        return _Elementwise(x, (ELEMENTWISE[op], *trees))

    identified = {}

    def resolve(v):
        """v, with an _Elementwise turned into the layer of the activation it computes and a product
        into a product layer."""
        if isinstance(v, _Products):
            if id(v) not in identified:
                identified[id(v)] = (v, product_layer(v))
            return identified[id(v)][1]
        if not isinstance(v, _Elementwise):
            return v
        if id(v) not in identified:
            kinds, beta, scale = _identify(v.tree, len(v.pre.bias))
            x = v.pre.map(np.diag(beta), 0.0)  # scale * act(beta x): beta into this layer's weights,
            layer = close(_Affine(x.weight, x.bias, x.base, kinds, x.skips))
            identified[id(v)] = (v, layer if np.all(scale == 1) else layer.map(np.diag(scale), 0.0))  # scale into the next
        return identified[id(v)][1]

    def products(op, args):
        """A product of two values of the network (gating), or a sum or scaling of such; None
        when the operation takes the product elsewhere (the epilogue)."""
        def as_sum(a, sign):
            if isinstance(a, _Products):
                return _Products([(sign * c, x, y) for c, x, y in a.terms], [(sign * c, u) for c, u in a.linear])
            return _Products([], [(np.asarray(sign, np.float64), a)])

        def scaled(p, c):
            return _Products([(c * t[0], *t[1:]) for t in p.terms], [(c * t[0], t[1]) for t in p.linear])

        if op == "relax.multiply" and all(isinstance(a, _Affine) for a in args):
            return _Products([(np.ones(1), args[0], args[1])], [])
        if op in ("relax.multiply", "relax.divide") and isinstance(args[0], _Products) and isinstance(args[1], np.ndarray):
            c = np.asarray(args[1], np.float64).reshape(-1)
            return scaled(args[0], 1 / c if op == "relax.divide" else c)
        if op == "relax.multiply" and isinstance(args[1], _Products) and isinstance(args[0], np.ndarray):
            return scaled(args[1], np.asarray(args[0], np.float64).reshape(-1))
        if op == "relax.negative":
            return scaled(args[0], np.full(1, -1.0))
        if op in ("relax.add", "relax.subtract") and all(isinstance(a, (_Products, _Affine, np.ndarray)) for a in args):
            a, b = as_sum(args[0], 1.0), as_sum(args[1], 1.0 if op == "relax.add" else -1.0)
            return _Products(a.terms + b.terms, a.linear + b.linear)
        return None

    def epilogue_able(p: _Products) -> bool:
        """Whether the product's factors are all functions of the input or the chain's last value
        (then it is an epilogue, as a hard constraint's products are), not earlier layers'."""
        def able(v):
            return isinstance(v, np.ndarray) or (not v.skips and (
                (v.base == 0 and (v.activations is None or (layers and set(v.activations) <= {"tanh", "sin"})))
                or (v.base == len(layers) and layers and id(v) not in closed)))
        return all(able(x) and able(y) for _, x, y in p.terms) and all(able(u) for _, u in p.linear)

    def product_layer(p: _Products) -> _Affine:
        """The product as a layer: output = z * G + A, z one layer's output that a factor of every
        term is an elementwise (diagonal) function of."""
        def diagonal_on(f):
            return None if f.skips or f.weight.shape[0] != f.weight.shape[1] or \
                np.count_nonzero(f.weight - np.diag(np.diag(f.weight))) else f.base
        k = max([len(a.bias) if isinstance(a, _Affine) else 1 for t in p.terms for a in t[1:]]
                + [len(u.bias) if isinstance(u, _Affine) else 1 for _, u in p.linear])
        terms = [(np.broadcast_to(c, (k,)), close(a), close(b)) for c, a, b in p.terms]
        candidates = set.intersection(*[{diagonal_on(a), diagonal_on(b)} - {None} for _, a, b in terms])
        if not candidates:
            raise NotADenseChain("a product of two values of the network neither of which is an elementwise "
                                 "function of one layer's output")
        z = max(candidates)
        G, g, A, a = {}, np.zeros(k), {}, np.zeros(k)

        def add_to(maps, s, q):  # maps += diag(s) q, q an affine map of earlier outputs; returns its bias part
            for src, m in [(q.base, q.weight)] + list(q.skips.items()):
                maps[src] = maps.get(src, 0) + np.broadcast_to(s, (k,))[:, None] * np.broadcast_to(m, (k, m.shape[1]))
            return np.broadcast_to(s, (k,)) * np.broadcast_to(q.bias, (k,))

        for c, x, y in terms:
            f, q = (x, y) if diagonal_on(x) == z else (y, x)
            g = g + add_to(G, c * np.diag(f.weight), q)  # (s z + t) q = z (s q) + t q
            a = a + add_to(A, c * f.bias, q)
        for c, u in p.linear:
            if isinstance(u, np.ndarray):
                a = a + np.broadcast_to(c * np.asarray(u, np.float64).reshape(-1), (k,))
            else:
                a = a + add_to(A, c, close(u))
        if width_of(z) != k:
            raise NotADenseChain(f"a product of {k} columns gated by a layer of {width_of(z)}")
        append(_Affine(np.eye(k), np.zeros(k), z), ("identity",) * k, (G, g, A, a))
        return _Affine(np.eye(k), np.zeros(k), len(layers))

    def evaluate(call):
        op = call.op.name if hasattr(call.op, "name") else str(call.op)
        if op == "relax.strided_slice":
            return strided_slice(call)
        if op == "relax.concat":
            parts = [resolve(value(f)) for f in call.args[0].fields]
            if call.attrs.axis not in (1, -1):
                raise NotADenseChain("concat along anything but columns")
            if any(isinstance(p, _Pointwise) for p in parts):
                return _Pointwise(sum((pointwise(p) for p in parts), []))
            if not all(isinstance(p, _Affine) for p in parts):
                raise NotADenseChain("concat of anything but column blocks of the running value")
            acts = sum(((p.activations or ("identity",) * len(p.bias)) for p in parts), ())
            base = max(p.base for p in parts)  # parts of other layers (branches) join as skip inputs
            inputs = [{**p.skips, p.base: p.weight + p.skips.get(p.base, 0)} for p in parts]
            sources = sorted({k for i in inputs for k in i} - {base})
            skips = {k: np.vstack([i.get(k, np.zeros((len(p.bias), width_of(k)))) for i, p in zip(inputs, parts)])
                     for k in sources}
            weight = np.vstack([i.get(base, np.zeros((len(p.bias), width_of(base)))) for i, p in zip(inputs, parts)])
            return _Affine(weight, np.concatenate([p.bias for p in parts]), base, acts, skips)
        args = [value(a) for a in call.args]
        if op in ELEMENTWISE and not any(isinstance(a, _Pointwise) for a in args) and (
                any(isinstance(a, _Elementwise) for a in args)
                or (op in NONLINEAR and any(isinstance(a, _Affine) for a in args) and not ended)):
            return elementwise(op, args)
        if not ended and (any(isinstance(a, _Products) for a in args) or (
                op == "relax.multiply" and all(isinstance(a, _Affine) for a in args) and not _is_silu(*args))):
            product = products(op, args)
            if product is not None:
                return product
            if op in BINARY or op == "relax.power":  # e.g. a product times the network's output: an epilogue
                args = [_Pointwise(pointwise(a)) if isinstance(a, _Products) else a for a in args]
        args = [resolve(a) for a in args]
        if op == "relax.power" and not isinstance(args[0], np.ndarray):
            exponent = np.asarray(args[1]) if isinstance(args[1], np.ndarray) else None
            if exponent is None or exponent.size != 1 or float(exponent) not in range(1, 9):
                raise NotADenseChain("power with an exponent other than a constant integer 1 to 8")
            base = pointwise(args[0])
            product = base
            for _ in range(int(float(exponent)) - 1):
                product = [("mul", p, b) for p, b in zip(product, base)]
            return _Pointwise(product)
        if op == "relax.negative":
            if isinstance(args[0], _Pointwise):
                return _Pointwise([("mul", x, ("const", -1.0)) for x in args[0].columns])
            if isinstance(args[0], _Affine):
                a = close(args[0])
                return a.map(-np.eye(len(a.bias)), 0.0)
        if any(isinstance(a, _Pointwise) for a in args) and op in set(BINARY) | set(EPILOGUE_UNARY):
            return epilogue(op, args)
        if op == "relax.take" and isinstance(args[1], np.ndarray) and call.attrs.axis in (1, -1) and \
                isinstance(args[0], (_Affine, _Pointwise)):  # x[:, [i, j, ...]]: columns picked
            picked = [int(i) for i in np.asarray(args[1]).reshape(-1)]
            if isinstance(args[0], _Pointwise):
                return _Pointwise([args[0].columns[i] for i in picked])
            a = close(args[0])
            return a.map(np.eye(len(a.bias))[picked], 0.0)
        if op in ("relax.ones_like", "relax.zeros_like", "relax.full_like") and isinstance(args[0], _Affine):
            a = close(args[0])  # a constant column: 0 x + value
            fill = {"relax.ones_like": 1.0, "relax.zeros_like": 0.0}.get(op)
            if fill is None:
                fill = as_vector(args[1], len(a.bias)) if isinstance(args[1], np.ndarray) else None
            if fill is None:
                raise NotADenseChain("full_like with a value that is not a constant")
            return a.map(np.zeros((len(a.bias), len(a.bias))), fill)
        if op == "relax.permute_dims" and isinstance(args[0], np.ndarray):
            return np.transpose(args[0], [int(i) for i in call.attrs.axes] if call.attrs.axes else None)
        if op == "relax.matmul":
            a, c = args
            if isinstance(a, _Pointwise) and all(col[0] == "lin" for col in a.columns):  # x[:, :-1] @ B
                a = _Affine(np.array([col[1] for col in a.columns]), np.array([col[2] for col in a.columns]), 0)
            if not (isinstance(a, _Affine) and isinstance(c, np.ndarray) and c.ndim == 2):
                raise NotADenseChain("matmul of anything but the running value by a constant matrix")
            a = close(a)
            return a.map(c.T, 0.0)
        if op in BINARY:
            if op == "relax.multiply" and _is_silu(*args):  # x * sigmoid(x), as torch.nn.SiLU exports
                a = args[0] if args[0].activations is None else args[1]
                return _Affine(a.weight, a.bias, a.base, ("silu",) * len(a.bias), a.skips)
            if op in ("relax.add", "relax.subtract") and all(isinstance(a, _Affine) for a in args) and not ended:
                return add(args[0], args[1], 1.0 if op == "relax.add" else -1.0)
            if all(isinstance(a, _Affine) for a in args):  # e.g. N * N: only an epilogue may do this
                return epilogue(op, args)
            a, c, const_first = affine_and_const(*args)
            c = as_vector(c, len(a.bias))
            k = len(a.bias)
            if op == "relax.add":
                return a.map(np.eye(k), c)
            if op == "relax.subtract":
                return a.map(-np.eye(k), c) if const_first else a.map(np.eye(k), -c)
            if op == "relax.divide" and const_first:
                raise NotADenseChain("division by the running value")
            scale = 1 / c if op == "relax.divide" else c
            return a.map(np.diag(scale), 0.0)
        if op in UNARY:
            a = close(args[0])
            shift = math.pi / 2 if op == "relax.cos" else 0.0
            return _Affine(a.weight, a.bias + shift, a.base, (UNARY[op],) * len(a.bias), a.skips)
        raise NotADenseChain(f"operator {op} is not part of a dense chain")

    for block in func.body.blocks:
        for binding in block.bindings:
            v = binding.value
            if isinstance(v, ir.Call):
                values[binding.var] = evaluate(v)
            elif isinstance(v, ir.Tuple):
                if len(v.fields) != 1:
                    raise NotADenseChain("the model returns several tensors")
                values[binding.var] = value(v.fields[0])
            else:
                values[binding.var] = value(v)
    result = func.body.body
    out = value(result.fields[0]) if isinstance(result, ir.Tuple) else values.get(result)
    if isinstance(out, _Products) and epilogue_able(out):
        out = _Pointwise(pointwise(out))
    out = resolve(out)
    if isinstance(out, _Pointwise):
        if not ended:
            raise NotADenseChain("the output does not use the network")
        chain = Chain(_fold(layers))
        chain.epilogue = out.columns
        return chain
    if not isinstance(out, _Affine):
        raise NotADenseChain("the output is not computed from the input")
    if not (layers and layers[-1].gate and out.activations is None and out.base == len(layers) and not out.skips
            and np.array_equal(out.weight, np.eye(len(out.bias))) and not out.bias.any()):  # not the product layer itself
        append(out, out.activations or ("identity",) * len(out.bias))
    return Chain(_fold(layers))


# Elementwise operations an activation exported as several operations may use (numpy's names), and
# those that start one from a pre-activation.
NONLINEAR = {"relax.exp": "exp", "relax.log": "log", "relax.abs": "abs", "relax.greater": "greater",
             "relax.less": "less", "relax.where": "where", "relax.maximum": "maximum", "relax.minimum": "minimum"}
ELEMENTWISE = dict(NONLINEAR, **{"relax.add": "add", "relax.subtract": "subtract", "relax.multiply": "multiply",
                                 "relax.divide": "divide", "relax.negative": "negative", "relax.tanh": "tanh",
                                 "relax.sin": "sin", "relax.cos": "cos", "relax.sigmoid": "sigmoid",
                                 "relax.nn.relu": "relu", "relax.nn.gelu": "gelu", "relax.nn.gelu_tanh": "gelu_tanh"})


def _substitute(tree, s, t):
    """tree with its pre-activation x replaced by s x + t."""
    if tree[0] == "lin":
        return ("lin", tree[1] * s, tree[1] * t + tree[2])
    if tree[0] == "const":
        return tree
    if tree[0] == "act":
        return ("act", tree[1], _substitute(tree[2], s, t))
    return (tree[0],) + tuple(_substitute(a, s, t) for a in tree[1:])


def _evaluate_tree(tree, x):
    """The tree's values at pre-activations x (points, columns), in float64."""
    if tree[0] == "lin":
        return tree[1] * x + tree[2]
    if tree[0] == "const":
        return np.broadcast_to(tree[1], x.shape)
    if tree[0] == "act":
        import torch

        v = torch.from_numpy(np.ascontiguousarray(_evaluate_tree(tree[2], x)))
        f = {"tanh": torch.tanh, "sin": torch.sin, "sigmoid": torch.sigmoid, "relu": torch.relu,
             "silu": torch.nn.functional.silu, "gelu": torch.nn.functional.gelu, "identity": lambda u: u,
             "gelu_tanh": lambda u: torch.nn.functional.gelu(u, approximate="tanh")}
        return np.stack([f[kind](v[:, j]).numpy() for j, kind in enumerate(tree[1])], axis=1)
    args = [_evaluate_tree(a, x) for a in tree[1:]]
    return getattr(np, tree[0])(*args)


def _identify(tree, k: int):
    """(activations, beta, scale) per column of an elementwise function of one pre-activation x, which
    is scale * activation(beta x): softplus (any beta, a threshold over 16: torch's is 20), ReLU, or
    ELU with alpha 1 (beta and scale 1); else NotADenseChain."""
    probe = np.concatenate([np.linspace(-60, 60, 4001), [-1e-3, -1e-6, 0.0, 1e-6, 1e-3]])
    x = np.repeat(probe[:, None], k, axis=1)
    with np.errstate(all="ignore"):
        f = _evaluate_tree(tree, x).astype(np.float64)
    zero = probe.size - 3
    kinds, beta, scale = [], np.ones(k), np.ones(k)

    def close_to(g):
        return np.all(np.abs(f[:, j] - g) <= 1e-6 * (1 + np.abs(g)))

    for j in range(k):
        scale[j] = f[zero, j] / np.log(2)  # c softplus(beta x): c log 2 at 0, slope c beta far right
        beta[j] = (f[4000, j] - f[3999, j]) / (probe[4000] - probe[3999]) / scale[j] if scale[j] else 0
        if beta[j] > 0 and np.isfinite(beta[j]) and close_to(scale[j] * np.logaddexp(0, beta[j] * probe)):
            kinds.append("softplus")
            continue
        beta[j] = scale[j] = 1.0
        if close_to(np.maximum(probe, 0)):  # ReLU spelt as max(x, 0) (ONNX)
            kinds.append("relu")
            continue
        alpha = -f[0, j]
        if np.isfinite(alpha) and close_to(np.where(probe > 0, probe, alpha * np.expm1(np.minimum(probe, 0)))):
            if abs(alpha - 1) > 1e-6:
                raise NotADenseChain(f"ELU with alpha {alpha:g} (the fused kernel's ELU has alpha 1)")
            kinds.append("elu")
            continue
        raise NotADenseChain("an elementwise function of a layer's pre-activation that is none of the fused "
                             "activations (tanh, sin, sigmoid, SiLU, ReLU, GELU, softplus, ELU)")
    return tuple(kinds), beta, scale


BINARY = {"relax.add": "add", "relax.subtract": "sub", "relax.multiply": "mul", "relax.divide": "div"}
# Activations that end a layer (cos as sin shifted by pi/2); the epilogue takes the first three.
UNARY = {"relax.tanh": "tanh", "relax.sin": "sin", "relax.cos": "sin", "relax.sigmoid": "sigmoid",
         "relax.nn.relu": "relu", "relax.nn.gelu": "gelu", "relax.nn.gelu_tanh": "gelu_tanh"}
EPILOGUE_UNARY = ("relax.tanh", "relax.sin", "relax.cos")


def _is_silu(a, b) -> bool:
    """Whether a * b is x * sigmoid(x): one a pre-activation, the other its sigmoid."""
    if not (isinstance(a, _Affine) and isinstance(b, _Affine)):
        return False
    x, s = (a, b) if a.activations is None else (b, a)
    return (x.activations is None and s.activations is not None and set(s.activations) == {"sigmoid"}
            and x.base == s.base and np.array_equal(x.weight, s.weight) and np.array_equal(x.bias, s.bias))
