"""Per-call latency of 1 to 64 points from C++, pinned to one core, side by side in one process
(each call timed alone: p50, p99; and the same calls chained, each input waiting for the last
output: mean ns per call at 1 ns resolution, where this machine's clock steps 10 ns):
kd-edge's latency kernel alone, Solver::predict, the C API, a fixed-size Eigen MLP of the same
network (the RTNeural approach) and ONNX Runtime's C API on the same network exported to ONNX
(one thread; its header from benchmarks/cpp/onnxruntime_headers.sh, its library from the
onnxruntime wheel), on the reference MLP and every shipped student.

    .venv/bin/python benchmarks/point_latency.py [--cpu 1] [--calls 20000] [MODEL ...]
    # writes build/bench/point_latency.json and .md

The Eigen peer computes the dense network only: for students with an output transform (an
epilogue: allen_cahn, taylor_green, wave) it skips those few operations, which favours it, and its
outputs are then not compared.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

import kd_edge
from kd_edge.compiler.build import _import
from kd_edge.compiler.chain import extract_chain
from kd_edge.measure.latency import cpu_name, tool as kd_edge_tool
from kd_edge.measure.peers import onnx_bytes, onnxruntime_library
from kd_edge.networks import MLP

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "bench"
BATCHES = (1, 2, 4, 8, 16, 64)


def models():
    torch.manual_seed(0)
    yield "reference_mlp", MLP(2, 1, 20, 4).eval()
    for path in sorted((ROOT / "models").glob("*/student.pt")):
        yield path.parent.name, kd_edge.load_model(path)


def write_eigen_weights(model, width, path):
    """The dense chain as the fused kernel sees it: widths, then per layer its activations, weights, bias."""
    relax_module, *_ = _import(model, torch.zeros(4, width))
    chain = extract_chain(relax_module)
    widths = [int(chain[0].weight.shape[1])] + [int(layer.weight.shape[0]) for layer in chain]
    lines = ["widths " + " ".join(map(str, widths))]
    for layer in chain:
        w = np.asarray(layer.weight, np.float32)
        lines.append(f"{w.shape[1]} {w.shape[0]} " + " ".join(layer.activations))
        lines.append(" ".join(f"{v:.9g}" for v in w.ravel()))
        lines.append(" ".join(f"{v:.9g}" for v in np.asarray(layer.bias, np.float32)))
    path.write_text("\n".join(lines) + "\n")
    return chain.epilogue is not None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", metavar="MODEL", help="reference_mlp or shipped problems (default: all)")
    p.add_argument("--cpu", type=int, default=1, help="core to pin to")
    p.add_argument("--calls", type=int, default=20000, help="timed calls per backend and batch size")
    args = p.parse_args(argv)
    tool = kd_edge_tool("kd-edge-point-bench")
    if tool is None:
        sys.exit("kd-edge-point-bench is not built (make build)")
    library = onnxruntime_library()
    results = {}
    for name, model in models():
        if args.names and name not in args.names:
            continue
        width = model.arch["n_inputs"] if hasattr(model, "arch") else 2
        artifact = kd_edge.compile(model, torch.zeros(4, width), OUT / "point" / name, progress=False)
        weights = OUT / "point" / f"{name}.eigen.txt"
        epilogue = write_eigen_weights(model, width, weights)
        peers = ["--eigen", str(weights)]
        if library:
            onnx = OUT / "point" / f"{name}.onnx"
            onnx.write_bytes(onnx_bytes(model, width))
            peers += ["--onnx", str(onnx), "--onnxruntime", library]
        run = subprocess.run([tool, "--artifact", str(artifact), *peers, "--cpu", str(args.cpu),
                              "--calls", str(args.calls), "--batches", ",".join(map(str, BATCHES)), "--json"],
                             check=True, capture_output=True, text=True)
        if run.stderr:
            print(run.stderr.strip(), file=sys.stderr)
        rows = json.loads(run.stdout)["rows"]
        results[name] = {"epilogue": epilogue, "rows": rows}
        by = {(r["backend"], r["n"]): r for r in rows}
        p50 = lambda b, k="p50_ns": by.get((b, 1), {}).get(k, float("nan"))  # noqa: E731
        print(f"{name}: N=1 p50 solver {p50('solver'):.0f} ns, kernel {p50('kernel'):.0f} ns, "
              f"Eigen {p50('eigen'):.0f} ns, ONNX Runtime {p50('onnxruntime'):.0f} ns; chained: solver "
              f"{p50('solver', 'chained_ns'):.1f} ns, kernel {p50('kernel', 'chained_ns'):.1f} ns, "
              f"Eigen {p50('eigen', 'chained_ns'):.1f} ns", flush=True)
    cpu = cpu_name()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "point_latency.json").write_text(json.dumps({"cpu": cpu, "models": results}, indent=1) + "\n")
    (OUT / "point_latency.md").write_text(markdown(results, cpu))
    print(f"wrote {OUT / 'point_latency.md'}")


def markdown(results, cpu):
    lines = [f"C++, one thread pinned, p50 / p99 per call in ns ({cpu}):", "",
             "| model | N | latency kernel alone | Solver::predict | C API | fixed-size Eigen | ONNX Runtime | "
             "Eigen / kd-edge (p50) | ONNX Runtime / kd-edge (p50) | chained, ns per call: kernel, Solver::predict, Eigen |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, result in results.items():
        by = {(r["backend"], r["n"]): r for r in result["rows"]}
        for n in BATCHES:
            cell = lambda b: f"{by[(b, n)]['p50_ns']:.0f} / {by[(b, n)]['p99_ns']:.0f}" if (b, n) in by else "-"  # noqa: E731
            ratio = lambda b: f"{by[(b, n)]['p50_ns'] / by[('solver', n)]['p50_ns']:.2f}x" if (b, n) in by else "-"  # noqa: E731
            label = name + (" (Eigen without the epilogue)" if result["epilogue"] and n == 1 else "")
            chained = ", ".join(f"{by[(b, n)]['chained_ns']:.1f}" if (b, n) in by else "-"
                                for b in ("kernel", "solver", "eigen"))
            lines.append(f"| {label} | {n} | {cell('kernel')} | {cell('solver')} | {cell('c_api')} | {cell('eigen')} | "
                         f"{cell('onnxruntime')} | {ratio('eigen')} | {ratio('onnxruntime')} | {chained} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
