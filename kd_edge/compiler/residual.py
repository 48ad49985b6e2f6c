"""A problem's PDE residual as expression trees, traced from its own `equations` (the declaration
training uses, not a second copy), for the derivative kernel to compute beside the value.

The equations run once on symbols instead of tensors: arithmetic, integer powers and torch.sin,
cos, exp and tanh build a tree whose leaves are the fields they read ("u", "u_x", "u_xx") and the
inputs ("x", "t")."""

import numbers

import torch

from kd_edge.problems.fields import Fields

UNARY = {torch.sin: "sin", torch.cos: "cos", torch.exp: "exp", torch.tanh: "tanh"}


def _node(value):
    if isinstance(value, Symbol):
        return value.node
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return ("const", float(value))
    if torch.is_tensor(value) and value.numel() == 1:
        return ("const", float(value))
    raise TypeError(f"a compiled residual takes numbers and fields, got {type(value).__name__}")


class Symbol:
    """A traced value of a residual."""

    def __init__(self, node):
        self.node = node

    def _binary(self, kind, other, swap=False):
        a, b = _node(self), _node(other)
        return Symbol((kind, b, a) if swap else (kind, a, b))

    def __add__(self, other):
        return self._binary("add", other)

    def __radd__(self, other):
        return self._binary("add", other, swap=True)

    def __sub__(self, other):
        return self._binary("sub", other)

    def __rsub__(self, other):
        return self._binary("sub", other, swap=True)

    def __mul__(self, other):
        return self._binary("mul", other)

    def __rmul__(self, other):
        return self._binary("mul", other, swap=True)

    def __truediv__(self, other):
        return self._binary("div", other)

    def __rtruediv__(self, other):
        return self._binary("div", other, swap=True)

    def __neg__(self):
        return Symbol(("sub", ("const", 0.0), self.node))

    def __pos__(self):
        return self

    def __pow__(self, power):
        if not (isinstance(power, numbers.Real) and float(power).is_integer() and 0 <= power <= 8):
            raise ValueError(f"a compiled residual takes integer powers 0 to 8, got ** {power!r}")
        result = Symbol(("const", 1.0))
        for _ in range(int(power)):
            result = result * self if result.node != ("const", 1.0) else self
        return result

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in UNARY and len(args) == 1 and not kwargs:
            return Symbol((UNARY[func], _node(args[0])))
        raise ValueError(f"the residual calls torch.{getattr(func, '__name__', func)}, which kd-edge does not compile; "
                         f"it compiles arithmetic, integer powers and torch.{', torch.'.join(f.__name__ for f in UNARY)}")


class TracingFields(Fields):
    """Fields whose values are symbols: f["u_x"] is the leaf ("field", "u_x")."""

    def __init__(self, inputs, outputs):
        super().__init__(inputs, outputs, None)

    def _evaluate(self, key):
        if key in self.inputs:
            return Symbol(("input", self.inputs.index(key)))
        self._parse(key)  # a clear error for a key the problem does not have
        return Symbol(("field", key))

    def at(self, **shift):
        raise ValueError("a compiled residual reads fields at the point itself, not at shifted points")


def trace_residual(problem) -> list:
    """One tree per equation of `problem`."""
    result = problem.equations(TracingFields(problem.inputs, problem.outputs))
    return [_node(r) for r in (result if isinstance(result, (list, tuple)) else [result])]


def residual_names(trees) -> list[str]:
    """The output columns of the residuals: "residual", or "residual_0", ... for several equations."""
    return ["residual"] if len(trees) == 1 else [f"residual_{i}" for i in range(len(trees))]


def field_keys(trees) -> list[str]:
    """The fields the trees read, in the order they first read them."""
    from kd_edge.compiler.chain import _nodes

    return list(dict.fromkeys(node[1] for node in _nodes(trees) if node[0] == "field"))


def evaluate(node, leaf, sin, cos, exp, tanh, absolute=False):
    """The tree's value, leaves from leaf(node); with absolute, the sum of its terms' magnitudes
    (|a| + |b| for a +- b, and |.| of each product, quotient and function): the scale rounding
    errors are relative to."""
    from kd_edge.compiler.chain import folder

    functions = {"sin": sin, "cos": cos, "exp": exp, "tanh": tanh}
    magnitude = abs if absolute else (lambda v: v)

    def leaves(n):
        return magnitude(n[1] if n[0] == "const" else leaf(n))

    def combine(n, args):
        kind = n[0]
        if kind in ("add", "sub"):
            return args[0] + args[1] if kind == "add" or absolute else args[0] - args[1]
        if kind == "mul":
            return magnitude(args[0] * args[1])
        if kind == "div":
            return magnitude(args[0] / args[1])
        return magnitude(functions[kind](args[0]))

    return folder(leaves, combine)(node)


def _second_order_sum(node, keys):
    """{(output, (q, r)): coefficient} if node is a constant-coefficient sum of second derivatives
    (u_xx + u_yy, u_tt - 4 u_xx, nu * (u_xx + u_yy)), else None."""
    kind = node[0]
    if kind == "field":
        output, wrt = keys[node[1]]
        return {(output, tuple(sorted(wrt))): 1.0} if len(wrt) == 2 else None
    if kind in ("add", "sub"):
        if kind == "sub" and node[1] == ("const", 0.0):  # -a
            b = _second_order_sum(node[2], keys)
            return None if b is None else {k: -c for k, c in b.items()}
        a, b = _second_order_sum(node[1], keys), _second_order_sum(node[2], keys)
        if a is None or b is None:
            return None
        sign = -1.0 if kind == "sub" else 1.0
        total = dict(a)
        for k, c in b.items():
            total[k] = total.get(k, 0.0) + sign * c
        return total
    if kind in ("mul", "div"):
        a, b = node[1], node[2]
        if kind == "mul" and a[0] == "const":
            a, b = b, a
        if b[0] != "const" or (kind == "div" and b[1] == 0.0):
            return None
        inner = _second_order_sum(a, keys)
        factor = b[1] if kind == "mul" else 1.0 / b[1]
        return None if inner is None else {k: c * factor for k, c in inner.items()}
    return None


def fuse_second_order(trees, keys):
    """(trees, keys) with each constant-coefficient sum of one output's second derivatives
    replaced by one field: u_xx + u_yy (u the output 0) becomes the internal field
    "0_{1*00+1*11}", the Laplacian, whose key is ((0, 0, 1.0), (1, 1, 1.0)), a second-order key
    of kd_edge.compiler.derivatives, and a sum scaled by c becomes c times such a field. The kernel
    carries such a sum as one stream instead of one per term, as forward-mode Laplacian methods
    do. Sums with the same pattern up to a factor share a field (nu * (u_xx + u_yy) and
    v_xx + v_yy both read the Laplacian)."""
    keys = dict(keys)
    names = {value: name for name, value in keys.items()}

    def fused(node):
        form = _second_order_sum(node, keys)
        form = {k: c for k, c in form.items() if c != 0.0} if form is not None else None
        if not form or len({output for output, _ in form}) != 1:
            return None
        (output,) = {output for output, _ in form}
        terms = sorted((q, r, c) for (_, (q, r)), c in form.items())
        scale = terms[0][2]
        key = tuple((q, r, c / scale) for q, r, c in terms)
        if len(key) == 1:
            return None  # one derivative: nothing to fuse
        if (output, key) not in names:
            name = f"{output}_{{{'+'.join(f'{c:g}*{q}{r}' for q, r, c in key)}}}"
            names[(output, key)] = name
            keys[name] = (output, key)
        field = ("field", names[(output, key)])
        return field if scale == 1.0 else ("mul", ("const", scale), field)

    done = {}  # by id: a subexpression used twice stays one node

    def rewrite(node):
        if node[0] in ("const", "input", "field"):
            return node
        if id(node) not in done:
            replaced = fused(node)
            done[id(node)] = replaced if replaced is not None else \
                (node[0], *(rewrite(child) if isinstance(child, tuple) else child for child in node[1:]))
        return done[id(node)]

    trees = [rewrite(tree) for tree in trees]
    used = set(field_keys(trees))
    return trees, {name: value for name, value in keys.items() if name in used}
