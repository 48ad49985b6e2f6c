"""Networks kd-edge trains and compiles: plain tensor ops only, so torch.export and TVM take them."""

import math

import torch
from torch import nn


class Sin(nn.Module):
    def forward(self, x):
        return torch.sin(x)


ACTIVATIONS = {"tanh": nn.Tanh, "sin": Sin, "gelu": nn.GELU, "silu": nn.SiLU}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class MLP(nn.Module):
    """n_inputs -> [embedding] -> depth hidden layers of `width` -> n_outputs.

    lower / upper: the domain box; inputs are mapped to [-1, 1] inside the network.
    periodic: {input index: period}; that input enters as cos/sin of 2 pi x / period
      (harmonics 1..periodic_harmonics), so the network is exactly periodic in it.
    fourier_features: number of random Fourier features sin/cos(B x) of the normalised
      non-periodic inputs, B ~ N(0, fourier_scale^2) drawn from fourier_seed.
    """

    def __init__(self, n_inputs: int, n_outputs: int, width: int = 20, depth: int = 4,
                 activation_name: str = "tanh", lower=None, upper=None, periodic: dict | None = None,
                 periodic_harmonics: int = 1, fourier_features: int = 0, fourier_scale: float = 1.0,
                 fourier_seed: int = 0):
        super().__init__()
        if min(n_inputs, n_outputs, width, depth) < 1:
            raise ValueError(f"MLP sizes must be positive, got n_inputs={n_inputs}, "
                             f"n_outputs={n_outputs}, width={width}, depth={depth}")
        self.arch = dict(n_inputs=n_inputs, n_outputs=n_outputs, width=width, depth=depth,
                         activation_name=activation_name,
                         lower=None if lower is None else [float(v) for v in lower],
                         upper=None if upper is None else [float(v) for v in upper],
                         periodic={int(k): float(v) for k, v in (periodic or {}).items()},
                         periodic_harmonics=periodic_harmonics, fourier_features=fourier_features,
                         fourier_scale=fourier_scale, fourier_seed=fourier_seed)
        lower = torch.tensor(lower if lower is not None else [-1.0] * n_inputs, dtype=torch.float32)
        upper = torch.tensor(upper if upper is not None else [1.0] * n_inputs, dtype=torch.float32)
        if lower.shape != (n_inputs,) or upper.shape != (n_inputs,) or not bool((upper > lower).all()):
            raise ValueError(f"lower/upper must be {n_inputs} values each with upper > lower")
        periodic = self.arch["periodic"]
        bad = [k for k in periodic if not 0 <= k < n_inputs]
        if bad:
            raise ValueError(f"periodic input index {bad} out of range for {n_inputs} inputs")
        # The embedding is matrix products and elementwise ops only (no gathers): the
        # non-periodic inputs mapped to [-1, 1] are z = x @ scale + shift, the periodic
        # phases are x @ phase.
        plain = [i for i in range(n_inputs) if i not in periodic]
        half_range = (upper - lower) / 2
        scale = torch.zeros(n_inputs, len(plain))
        for k, i in enumerate(plain):
            scale[i, k] = 1 / half_range[i]
        self.register_buffer("scale", scale)
        self.register_buffer("shift", -((upper + lower) / 2 / half_range)[plain])
        harmonics = [(i, h) for i in sorted(periodic) for h in range(1, periodic_harmonics + 1)]
        phase = torch.zeros(n_inputs, len(harmonics))
        for k, (i, h) in enumerate(harmonics):
            phase[i, k] = 2 * math.pi * h / periodic[i]
        self.register_buffer("phase", phase)
        generator = torch.Generator().manual_seed(fourier_seed)
        self.register_buffer("fourier_B", torch.randn(len(plain), fourier_features, generator=generator)
                             * fourier_scale)

        d = len(plain) + 2 * len(harmonics) + 2 * fourier_features
        layers = []
        for _ in range(depth):
            layers += [nn.Linear(d, width), activation(activation_name)]
            d = width
        layers.append(nn.Linear(d, n_outputs))
        self.net = nn.Sequential(*layers)

    def embed(self, x):  # (N, n_inputs) -> (N, embedding width)
        z = x @ self.scale + self.shift
        parts = [z] if z.shape[1] else []
        if self.phase.shape[1]:
            angle = x @ self.phase
            parts += [torch.cos(angle), torch.sin(angle)]
        if self.fourier_B.shape[1]:
            projected = z @ self.fourier_B
            parts += [torch.sin(projected), torch.cos(projected)]
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

    def forward(self, x):  # (N, n_inputs) -> (N, n_outputs)
        return self.net(self.embed(x))

    def multiply_adds(self) -> int:
        """Multiply-adds per point in the dense layers (plus the embedding's projections),
        the cost measure of the KD-PINN tables."""
        dense = sum(m.in_features * m.out_features for m in self.net if isinstance(m, nn.Linear))
        return dense + self.scale.numel() + self.phase.numel() + self.fourier_B.numel()


class HardConstrained(nn.Module):
    """A network whose output meets a problem's initial/boundary conditions exactly:
    forward(x) = constrain(x, body(x)), e.g. u = u0(x) + t^2 x (1 - x) N(x, t) for the wave.

    The constraint compiles into the fused kernel as an epilogue after the dense layers
    (kd_edge.compiler.chain), as long as it uses elementwise +, -, *, /, negation, integer powers, sin, cos and tanh."""

    def __init__(self, body: MLP, constrain):
        super().__init__()
        self.body, self.constrain = body, constrain
        self.arch = {**body.arch, "hard_constraints": True}

    def forward(self, x):
        return self.constrain(x, self.body(x))

    def multiply_adds(self) -> int:
        return self.body.multiply_adds()
