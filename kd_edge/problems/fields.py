"""Fields: the values and derivatives an equation is written in, e.g. f["u_xx"].

A key is an output name, optionally followed by "_" and the inputs to differentiate by,
one character each ("u_t", "u_xx", "p_y"); an input name alone ("x") is that coordinate.
Two backends give the same keys: autograd through a model (training, and checking the
residual code against exact solutions) and central finite differences of any function
(checking a reference solution independently of autograd).
"""

import numpy as np
import torch


class Fields:
    """Lazy, cached evaluation of field keys at a batch of points."""

    def __init__(self, inputs, outputs, points):
        self.inputs, self.outputs, self.points = tuple(inputs), tuple(outputs), points
        self._cache = {}

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in self._cache:
            self._cache[key] = self._evaluate(key)
        return self._cache[key]

    def _parse(self, key: str) -> tuple[int, str]:
        name, _, wrt = key.partition("_")
        if name not in self.outputs or any(c not in self.inputs for c in wrt):
            raise KeyError(f"unknown field {key!r}: outputs are {self.outputs}, inputs {self.inputs}; "
                           f"write derivatives as e.g. '{self.outputs[0]}_{self.inputs[0] * 2}'")
        return self.outputs.index(name), wrt

    def _evaluate(self, key):
        raise NotImplementedError

    def at(self, **shift: float) -> "Fields":
        """The same fields at the points moved by `shift` (e.g. at(x=2.0) for a periodic partner)."""
        raise NotImplementedError

    def _shifted(self, shift):
        unknown = set(shift) - set(self.inputs)
        if unknown:
            raise KeyError(f"cannot shift by {sorted(unknown)}: inputs are {self.inputs}")
        offset = [float(shift.get(name, 0.0)) for name in self.inputs]
        return self.points + self.points.new_tensor(offset) if torch.is_tensor(self.points) \
            else self.points + np.asarray(offset)


class AutogradFields(Fields):
    """Fields of model(points), derivatives by autograd (kept in the graph for training)."""

    def __init__(self, inputs, outputs, model, points: torch.Tensor):
        points = points if points.requires_grad else points.detach().requires_grad_(True)
        super().__init__(inputs, outputs, points)
        self.model = model
        self.values = model(points)  # (N, n_outputs)

    def _evaluate(self, key):
        if key in self.inputs:
            return self.points[:, self.inputs.index(key)]
        index, wrt = self._parse(key)
        if not wrt:
            return self.values[:, index]
        lower = self[key[:-1].rstrip("_")]
        (grad,) = torch.autograd.grad(lower, self.points, torch.ones_like(lower), create_graph=True)
        return grad[:, self.inputs.index(wrt[-1])]

    def at(self, **shift):
        return AutogradFields(self.inputs, self.outputs, self.model, self._shifted(shift))


class FiniteDifferenceFields(Fields):
    """Fields of fn(points) (numpy, (N, d_in) -> (N, d_out)), derivatives by second-order
    central differences with step h (one for all inputs, or one per input); results are
    float64 tensors."""

    def __init__(self, inputs, outputs, fn, points: np.ndarray, h):
        super().__init__(inputs, outputs, np.asarray(points, dtype=np.float64))
        self.fn = fn
        self.steps = dict(zip(self.inputs, np.broadcast_to(np.asarray(h, float), (len(self.inputs),))))

    def _value(self, index, offsets):
        p = self.points.copy()
        for name, steps in offsets.items():
            p[:, self.inputs.index(name)] += steps * self.steps[name]
        return self.fn(p)[:, index]

    def _evaluate(self, key):
        if key in self.inputs:
            return torch.from_numpy(self.points[:, self.inputs.index(key)])
        index, wrt = self._parse(key)
        h, v = self.steps, lambda **o: self._value(index, o)
        if not wrt:
            out = v()
        elif len(wrt) == 1:
            out = (v(**{wrt: 1}) - v(**{wrt: -1})) / (2 * h[wrt])
        elif len(wrt) == 2 and wrt[0] == wrt[1]:
            a = wrt[0]
            out = (v(**{a: 1}) - 2 * v() + v(**{a: -1})) / h[a] ** 2
        elif len(wrt) == 2:
            a, b = wrt
            out = (v(**{a: 1, b: 1}) - v(**{a: 1, b: -1}) - v(**{a: -1, b: 1}) + v(**{a: -1, b: -1})) / (4 * h[a] * h[b])
        else:
            raise KeyError(f"finite differences go to second order; {key!r} asks for more")
        return torch.from_numpy(np.ascontiguousarray(out))

    def at(self, **shift):
        steps = [self.steps[name] for name in self.inputs]
        return FiniteDifferenceFields(self.inputs, self.outputs, self.fn, self._shifted(shift), steps)
