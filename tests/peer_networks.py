"""Networks as the PINN frameworks build them, in plain PyTorch, where the framework cannot be
installed here (PhysicsNeMo) or builds them only for another backend (DeepXDE's ResNet, MsFFN and
STMsFFN are TensorFlow-only): the fused-kernel tests and the latency benchmarks compile them."""

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
    """Two tanh branches multiplied and summed over their columns (a reduction): not a dense chain
    (the VM runs it)."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(2, 4), torch.nn.Linear(2, 4)

    def forward(self, x):
        return (torch.tanh(self.a(x)) * torch.tanh(self.b(x))).sum(dim=1, keepdim=True)


class FourierNet(torch.nn.Module):
    """PhysicsNeMo's FourierNetArch: the input beside its FourierLayer, sin and cos of 2 pi x F with
    frequencies 1 to `frequencies` along each axis ("axis" frequencies), then a SiLU FullyConnected."""

    def __init__(self, d_in=2, d_out=1, width=32, n=4, frequencies=4):
        super().__init__()
        f = torch.zeros(frequencies, d_in, d_in)
        for i in range(d_in):
            f[:, i, i] = torch.arange(1.0, frequencies + 1)
        self.register_buffer("frequencies", f.reshape(frequencies * d_in, d_in).t().contiguous())
        self.net = torch.nn.Sequential(torch.nn.Linear(d_in * (1 + 2 * frequencies), width), torch.nn.SiLU(),
                                       *[m for _ in range(n - 1) for m in (torch.nn.Linear(width, width), torch.nn.SiLU())],
                                       torch.nn.Linear(width, d_out))

    def forward(self, x):
        x_hat = torch.matmul(x, self.frequencies)
        return self.net(torch.cat([x, torch.sin(2.0 * torch.pi * x_hat), torch.cos(2.0 * torch.pi * x_hat)], dim=-1))


class MsFFN(torch.nn.Module):
    """DeepXDE's multi-scale Fourier feature network (Wang, Wang and Perdikaris 2021): per scale
    sigma, fixed features [cos(x B), sin(x B)] with B ~ N(0, sigma^2), one tanh network shared by
    the scales, their outputs concatenated, then a linear layer."""

    def __init__(self, d_in=2, d_out=1, width=20, n=3, sigmas=(1.0, 10.0)):
        super().__init__()
        for i, sigma in enumerate(sigmas):
            self.register_buffer(f"b{i}", torch.randn(d_in, width // 2) * sigma)
        self.scales = len(sigmas)
        self.hidden = torch.nn.ModuleList([torch.nn.Linear(width, width) for _ in range(n - 1)])
        if sigmas:
            self.last = torch.nn.Linear(width * len(sigmas), d_out)

    def shared(self, y):
        for layer in self.hidden:
            y = torch.tanh(layer(y))
        return y

    def features(self, x, b):
        return torch.cat([torch.cos(x @ b), torch.sin(x @ b)], dim=1)

    def forward(self, x):
        return self.last(torch.cat([self.shared(self.features(x, getattr(self, f"b{i}"))) for i in range(self.scales)],
                                   dim=1))


class STMsFFN(MsFFN):
    """DeepXDE's spatio-temporal MsFFN: Fourier features of space (all inputs but the last) and of
    time (the last) through the shared network, each space branch times each time branch, then a
    linear layer."""

    def __init__(self, d_in=2, d_out=1, width=20, n=3, sigmas_x=(1.0, 10.0), sigmas_t=(1.0, 5.0)):
        super().__init__(d_in, d_out, width, n, ())
        for i, sigma in enumerate(sigmas_x):
            self.register_buffer(f"bx{i}", torch.randn(d_in - 1, width // 2) * sigma)
        for i, sigma in enumerate(sigmas_t):
            self.register_buffer(f"bt{i}", torch.randn(1, width // 2) * sigma)
        self.nx, self.nt = len(sigmas_x), len(sigmas_t)
        self.last = torch.nn.Linear(width * self.nx * self.nt, d_out)

    def forward(self, x):
        space = [self.shared(self.features(x[:, :-1], getattr(self, f"bx{i}"))) for i in range(self.nx)]
        time = [self.shared(self.features(x[:, -1:], getattr(self, f"bt{i}"))) for i in range(self.nt)]
        return self.last(torch.cat([s * t for s in space for t in time], dim=1))


class ModifiedMLP(torch.nn.Module):
    """The modified MLP of Wang, Teng and Perdikaris (2021), PhysicsNeMo's and PINA's gated network:
    U = tanh(W_u x), V = tanh(W_v x), then per layer z = tanh(W h) and h = (1 - z) U + z V."""

    def __init__(self, d_in=2, d_out=1, width=20, n=3):
        super().__init__()
        self.u, self.v = torch.nn.Linear(d_in, width), torch.nn.Linear(d_in, width)
        self.layers = torch.nn.ModuleList([torch.nn.Linear(d_in, width)]
                                          + [torch.nn.Linear(width, width) for _ in range(n - 1)])
        self.last = torch.nn.Linear(width, d_out)

    def forward(self, x):
        u, v, h = torch.tanh(self.u(x)), torch.tanh(self.v(x)), x
        for layer in self.layers:
            z = torch.tanh(layer(h))
            h = (1 - z) * u + z * v
        return self.last(h)
