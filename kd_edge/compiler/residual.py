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
