"""Write golden artifacts for the C++ tests: each MLP compiled, plus inputs and PyTorch outputs.

usage: python make_golden.py OUT_DIR [--target NAME]   (a kd_edge.compile target; default host)
OUT_DIR/index.txt lists "name n_inputs n_outputs n_points" per case; OUT_DIR/<name>/ holds
the artifact and input_<N>.f32 / expected_<N>.f32 (raw little-endian float32, row-major).
mlp_2_1_tanh records the training domain [-1.5, 1.5]^2 (inputs reach +-2, so some points lie
outside it); OUT_DIR/overflow is a model whose output overflows to inf for any input.
"""

import argparse
from pathlib import Path

import numpy as np
import torch

import kd_edge
from kd_edge.networks import MLP

# (n_inputs, n_outputs, width, depth, activation)
CASES = [(2, 1, 20, 4, "tanh"), (1, 1, 8, 1, "sin"), (5, 3, 32, 3, "tanh"), (3, 2, 16, 6, "sin")]
POINTS = [1, 7, 1000, 25600]


def main(out: Path, target: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for n_in, n_out, width, depth, act in CASES:
        torch.manual_seed(n_in * 100 + depth)
        box = dict(lower=[-1.5] * n_in, upper=[1.5] * n_in) if (n_in, act) == (2, "tanh") else {}
        model = MLP(n_in, n_out, width, depth, act, **box).eval()
        name = f"mlp_{n_in}_{n_out}_{act}"
        artifact = kd_edge.compile(model, torch.zeros(4, n_in), out / name, target=target)
        rng = np.random.default_rng(0)
        for n in POINTS:
            x = rng.uniform(-2, 2, size=(n, n_in)).astype(np.float32)
            with torch.no_grad():
                y = model(torch.from_numpy(x)).numpy()
            x.tofile(artifact / f"input_{n}.f32")
            y.astype(np.float32).tofile(artifact / f"expected_{n}.f32")
            rows.append(f"{name} {n_in} {n_out} {n}")
    overflow = MLP(1, 1, width=8, depth=1).eval()
    with torch.no_grad():  # every hidden unit is tanh(1) > 0: the sum 8 x 0.76 x 3e38 overflows
        overflow.net[0].weight.zero_()
        overflow.net[0].bias.fill_(1.0)
        overflow.net[-1].weight.fill_(3e38)
    kd_edge.compile(overflow, torch.zeros(4, 1), out / "overflow", target=target)
    (out / "index.txt").write_text("\n".join(rows) + "\n")
    print(f"wrote {len(CASES)} golden artifacts to {out}")


if __name__ == "__main__":
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("out", type=Path)
    args.add_argument("--target", default="host")
    a = args.parse_args()
    main(a.out, a.target)
