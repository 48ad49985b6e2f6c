"""Where the fused kernel's time goes on the reference MLP 2-20-20-20-20-1 at 25,600 points, one
thread: the whole kernel, the same kernel with every activation removed (the dense layers
alone: the multiply-add floor of this schedule), and ONNX Runtime on the same model.

    .venv/bin/python benchmarks/profile_kernel.py [--points 25600] [--seconds 1]
"""

import argparse
import os
import tempfile
from dataclasses import replace
from pathlib import Path

os.environ["TVM_NUM_THREADS"] = "1"

import numpy as np  # noqa: E402
import torch  # noqa: E402

from kd_edge.compiler.chain import extract_chain  # noqa: E402
from kd_edge.compiler.frontend import to_relax  # noqa: E402
from kd_edge.compiler.kernel import ENTRY, KernelOptions, build_kernel_module  # noqa: E402
from kd_edge.compiler.target import resolve_target  # noqa: E402
from kd_edge.measure import onnx_session  # noqa: E402
from kd_edge.measure.latency import median_seconds  # noqa: E402
from kd_edge.networks import MLP  # noqa: E402


def kernel(layers, options, workdir: Path):
    import tvm

    spec = resolve_target("host")
    library = workdir / f"k{len(list(workdir.iterdir()))}.so"
    tvm.compile(build_kernel_module(layers, spec.lanes, options),
                target=tvm.target.Target(spec.tvm_target)).export_library(str(library))
    return tvm.runtime.load_module(str(library))[ENTRY]


def main():
    import tvm

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=25_600)
    parser.add_argument("--seconds", type=float, default=1.0, help="timing per variant")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = MLP(2, 1, 20, 4).eval()
    layers = extract_chain(to_relax(model, torch.zeros(3, 2)))
    x = np.random.default_rng(0).uniform(-1, 1, size=(args.points, 2)).astype(np.float32)
    inputs, outputs = tvm.runtime.tensor(x), tvm.runtime.tensor(np.empty((args.points, 1), np.float32))
    dense_only = [replace(layer, activations=("identity",) * len(layer.activations)) for layer in layers]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, chain, options in [
            ("fused kernel (default: 4 accumulators, divide)", layers, KernelOptions()),
            ("fused kernel, Newton reciprocal", layers, KernelOptions(reciprocal="newton")),
            ("dense layers alone (activations removed)", dense_only, KernelOptions()),
        ]:
            f = kernel(chain, options, Path(tmp))
            rows.append((label, median_seconds(lambda: f(inputs, outputs), args.seconds)))
    session = onnx_session(model, 2, 1)
    rows.append(("ONNX Runtime, same model", median_seconds(lambda: session.run(None, {"x": x}), args.seconds)))
    tanh_per_point = sum(layer.activations.count("tanh") for layer in layers)
    macs = sum(layer.multiply_adds for layer in layers)
    print(f"reference MLP, {args.points:,} points, one thread: {macs} multiply-adds and {tanh_per_point} tanh per point")
    for label, seconds in rows:
        print(f"  {label:<50} {seconds * 1e3:7.3f} ms  ({seconds / args.points * 1e9:5.2f} ns/point)")
    full, dense = rows[0][1], rows[2][1]
    print(f"  tanh share of the kernel: {(full - dense) / full:.0%}; "
          f"ONNX Runtime / kernel: {rows[3][1] / full:.2f}x; ONNX Runtime / dense layers alone: {rows[3][1] / dense:.2f}x")


if __name__ == "__main__":
    main()
