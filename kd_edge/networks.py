"""Networks kd-edge trains and compiles."""

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
    """Fully connected network: n_inputs -> depth hidden layers of `width` -> n_outputs."""

    def __init__(self, n_inputs: int, n_outputs: int, width: int = 20, depth: int = 4,
                 activation_name: str = "tanh"):
        super().__init__()
        if min(n_inputs, n_outputs, width, depth) < 1:
            raise ValueError(f"MLP sizes must be positive, got n_inputs={n_inputs}, "
                             f"n_outputs={n_outputs}, width={width}, depth={depth}")
        layers, d = [], n_inputs
        for _ in range(depth):
            layers += [nn.Linear(d, width), activation(activation_name)]
            d = width
        layers.append(nn.Linear(d, n_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x):  # (N, n_inputs) -> (N, n_outputs)
        return self.net(x)

    def multiply_adds(self) -> int:
        """Multiply-adds per point, the cost measure used in the KD-PINN tables."""
        return sum(m.in_features * m.out_features for m in self.net if isinstance(m, nn.Linear))
