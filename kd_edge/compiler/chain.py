"""Recognise a dense chain in a Relax module: layers y = act(W x + b) with per-column
elementwise activations, whatever frontend (torch.export, ONNX) produced it.

The recogniser interprets main's bindings abstractly. Each value is either a constant or
an affine map of the previous layer's output, possibly with elementwise activations
applied; matmul and add/subtract/multiply/divide by constants compose affine maps, tanh /
sin / cos close a layer (cos x = sin(x + pi/2)), and concat joins maps of the same input.
Anything else means the module is not a dense chain and compiles the generic way."""

import math
from dataclasses import dataclass

import numpy as np

ACTIVATIONS = ("identity", "tanh", "sin")


class NotADenseChain(Exception):
    """The module holds an operation the fused kernel does not implement."""


@dataclass
class Layer:
    weight: np.ndarray  # (out, in), float64
    bias: np.ndarray  # (out,)
    activations: tuple  # per output column, from ACTIVATIONS

    @property
    def multiply_adds(self) -> int:
        return int(self.weight.size)


@dataclass
class _Affine:  # value = act(W @ base + b) per column; base is layer `base`'s output
    weight: np.ndarray
    bias: np.ndarray
    base: int
    activations: tuple | None = None  # None: no activation applied yet


def _fold(layers: list[Layer]) -> list[Layer]:
    """Merge a layer without activations into the next one: W2 (W1 x + b1) + b2."""
    out = []
    for layer in layers:
        if out and all(a == "identity" for a in out[-1].activations):
            prev = out.pop()
            layer = Layer(layer.weight @ prev.weight, layer.weight @ prev.bias + layer.bias, layer.activations)
        out.append(layer)
    return out


def extract_chain(module) -> list[Layer]:
    """The layers of `module`'s main function, or NotADenseChain naming what is not one."""
    from tvm.ir import expr as ir  # TVM 0.27: Relax calls, tuples and constants are ir.expr nodes

    func = module["main"]
    if len(func.params) != 1:
        raise NotADenseChain(f"main takes {len(func.params)} inputs, a dense chain takes 1")
    width = int(func.params[0].ty.shape[1])
    layers: list[Layer] = []
    values = {func.params[0]: _Affine(np.eye(width), np.zeros(width), 0)}

    def close(v: _Affine) -> _Affine:
        """Turn v into the output of a new layer, so that more layers can follow it."""
        if v.activations is None:
            return v
        if v.base != len(layers):
            raise NotADenseChain("a layer's input is not the previous layer's output (a skip connection?)")
        layers.append(Layer(v.weight, v.bias, v.activations))
        k = len(v.bias)
        return _Affine(np.eye(k), np.zeros(k), len(layers))

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

    def affine_and_const(a, b):
        if isinstance(a, _Affine) and isinstance(b, np.ndarray):
            return close(a), b, False
        if isinstance(b, _Affine) and isinstance(a, np.ndarray):
            return close(b), a, True
        raise NotADenseChain("elementwise arithmetic between two non-constant tensors")

    def evaluate(call):
        op = call.op.name if hasattr(call.op, "name") else str(call.op)
        if op == "relax.concat":
            parts = [value(f) for f in call.args[0].fields]
            if call.attrs.axis not in (1, -1) or not all(isinstance(p, _Affine) for p in parts):
                raise NotADenseChain("concat of anything but column blocks of the running value")
            if len({p.base for p in parts}) != 1:
                raise NotADenseChain("concat of values from different layers")
            acts = sum(((p.activations or ("identity",) * len(p.bias)) for p in parts), ())
            return _Affine(np.vstack([p.weight for p in parts]), np.concatenate([p.bias for p in parts]),
                           parts[0].base, acts)
        args = [value(a) for a in call.args]
        if op == "relax.permute_dims" and isinstance(args[0], np.ndarray):
            return np.transpose(args[0], [int(i) for i in call.attrs.axes] if call.attrs.axes else None)
        if op == "relax.matmul":
            a, c = args
            if not (isinstance(a, _Affine) and isinstance(c, np.ndarray) and c.ndim == 2):
                raise NotADenseChain("matmul of anything but the running value by a constant matrix")
            a = close(a)
            return _Affine(c.T @ a.weight, c.T @ a.bias, a.base)
        if op in ("relax.add", "relax.subtract", "relax.multiply", "relax.divide"):
            a, c, const_first = affine_and_const(*args)
            c = as_vector(c, len(a.bias))
            if op == "relax.add":
                return _Affine(a.weight, a.bias + c, a.base)
            if op == "relax.subtract":
                return _Affine(-a.weight, c - a.bias, a.base) if const_first else _Affine(a.weight, a.bias - c, a.base)
            if op == "relax.divide" and const_first:
                raise NotADenseChain("division by the running value")
            scale = 1 / c if op == "relax.divide" else c
            return _Affine(a.weight * scale[:, None], a.bias * scale, a.base)
        if op in ("relax.tanh", "relax.sin", "relax.cos"):
            a = close(args[0])
            shift = math.pi / 2 if op == "relax.cos" else 0.0
            act = "tanh" if op == "relax.tanh" else "sin"
            return _Affine(a.weight, a.bias + shift, a.base, (act,) * len(a.bias))
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
    if not isinstance(out, _Affine):
        raise NotADenseChain("the output is not computed from the input")
    if out.base != len(layers):
        raise NotADenseChain("the output skips layers")
    layers.append(Layer(out.weight, out.bias, out.activations or ("identity",) * len(out.bias)))
    return _fold(layers)
