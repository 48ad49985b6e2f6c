"""Networks as the PINN frameworks build them, in plain PyTorch (the frameworks themselves are not
installed here): the fused-kernel tests and the latency benchmarks compile them."""

import torch


class FullyConnected(torch.nn.Module):
    """PhysicsNeMo's FullyConnected(skip_connections=True) in plain PyTorch: SiLU, and every second
    layer's output added to the one two layers before it."""

    def __init__(self, d_in=3, d_out=2, width=24, n=6):
        super().__init__()
        self.layers = torch.nn.ModuleList([torch.nn.Linear(d_in, width)]
                                          + [torch.nn.Linear(width, width) for _ in range(n - 1)])
        self.final = torch.nn.Linear(width, d_out)

    def forward(self, x):
        skip = None
        for i, layer in enumerate(self.layers):
            x = torch.nn.functional.silu(layer(x))
            if i % 2 == 0:
                if skip is not None:
                    x, skip = x + skip, x
                else:
                    skip = x
        return self.final(x)


class ResNet(torch.nn.Module):
    """DeepXDE's ResNet in plain PyTorch: x = tanh(x + L2(tanh(L1 x))) per block."""

    def __init__(self, d_in=3, d_out=2, width=20, blocks=2):
        super().__init__()
        self.first = torch.nn.Linear(d_in, width)
        self.blocks = torch.nn.ModuleList([torch.nn.ModuleList([torch.nn.Linear(width, width),
                                                                torch.nn.Linear(width, width)]) for _ in range(blocks)])
        self.last = torch.nn.Linear(width, d_out)

    def forward(self, x):
        x = torch.tanh(self.first(x))
        for l1, l2 in self.blocks:
            x = torch.tanh(x + l2(torch.tanh(l1(x))))
        return self.last(x)


class TwoBranches(torch.nn.Module):
    """Two tanh branches multiplied and summed: not a dense chain (the VM runs it)."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(2, 4), torch.nn.Linear(2, 4)

    def forward(self, x):
        return (torch.tanh(self.a(x)) * torch.tanh(self.b(x))).sum(dim=1, keepdim=True)
