"""What derivatives cost: a student's value alone, value + its Jacobian, and value + Jacobian +
the second derivatives its PDE uses, from the fused kernel through C++ (kd-edge-run, one thread),
against PyTorch (torch.func.jacfwd under vmap, and nested for the second derivatives) and ONNX
Runtime running the exported Jacobian graph, on the same student, at N = 1, 64 and the grid.

    python benchmarks/derivative_cost.py [--problem burgers heat_2d navier_stokes_kovasznay]

Writes build/bench/derivative_cost.{json,md}. Times are medians on this machine, all in one run."""

import argparse
import copy
import json
import platform
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import kd_edge
from kd_edge.measure.latency import tool

ROOT = Path(__file__).resolve().parent.parent


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def cpp_us(artifact: Path, n: int) -> float:
    iters = 20000 if n == 1 else 2000 if n <= 64 else 30
    out = subprocess.run([tool("kd-edge-run"), "--artifact", str(artifact), "--batch", str(n), "--iters", str(iters),
                          "--threads", "1", "--json"], capture_output=True, text=True, check=True).stdout
    return json.loads(out)["p50_us"]


def median_us(fn, seconds=0.5) -> float:
    fn()
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 5:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e6)


class Jacobian(torch.nn.Module):
    """x -> (value, Jacobian) with torch.func: what a PyTorch user writes."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        jac = torch.func.vmap(torch.func.jacfwd(lambda p: self.model(p[None])[0]))(x)  # (n, out, in)
        return self.model(x), jac.reshape(len(x), -1)


def torch_with_second(model):
    first = torch.func.jacfwd(lambda p: model(p[None])[0])
    second = torch.func.jacfwd(first)
    return torch.func.vmap(lambda p: (first(p), second(p)))


class ForwardModeJacobian(torch.nn.Module):
    """x -> (value, Jacobian) of a dense chain by explicit forward mode, in plain tensor operations
    that export to ONNX: per layer z = h W^T + b, dz = dh W^T, then the activation and its slope.
    The derivative graph a user can hand to ONNX Runtime when torch.func's does not export."""

    def __init__(self, layers):
        super().__init__()
        if getattr(layers, "epilogue", None) is not None or any(
                l.skips or l.source is not None or l.gate for l in layers) or any(
                set(l.activations) - {"tanh", "sin", "identity"} for l in layers):
            raise ValueError("the forward-mode graph is written for plain tanh/sin chains")
        self.weights = [torch.tensor(l.weight, dtype=torch.float32) for l in layers]
        self.biases = [torch.tensor(l.bias, dtype=torch.float32) for l in layers]
        self.kinds = [[torch.tensor([a == k for a in l.activations]) for k in ("tanh", "sin")] for l in layers]

    def forward(self, x):
        h, d = x, x[:, :, None] * 0 + torch.eye(x.shape[1])  # (n, in, in): dh/dx
        for w, b, (is_tanh, is_sin) in zip(self.weights, self.biases, self.kinds):
            z, dz = h @ w.T + b, d @ w.T
            t = torch.tanh(z)
            h = torch.where(is_tanh, t, torch.where(is_sin, torch.sin(z), z))
            d = torch.where(is_tanh, 1 - t * t, torch.where(is_sin, torch.cos(z), torch.ones_like(z)))[:, None, :] * dz
        return h, d.transpose(1, 2).flatten(1)


def onnx_session(module, n_in, path: Path):
    import onnxruntime as ort

    torch.onnx.export(module, (torch.zeros(8, n_in),), str(path), input_names=["x"],
                      dynamic_shapes={"x": {0: torch.export.Dim("n")}}, dynamo=True)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_jacobian(model, n_in, path: Path):
    """ONNX Runtime on an exported Jacobian graph: torch.func's if it exports, else the explicit
    forward-mode one; (session, how), or (None, the reason)."""
    from kd_edge.compiler.chain import extract_chain
    from kd_edge.compiler.frontend import to_relax

    try:
        return onnx_session(Jacobian(model), n_in, path), "torch.func.jacfwd"
    except Exception as e:  # noqa: BLE001 (the reason goes into the table)
        why = f"jacfwd: {type(e).__name__}: {str(e).splitlines()[0][:100]}"
    try:
        forward = ForwardModeJacobian(extract_chain(to_relax(model, torch.zeros(8, n_in))))
        return onnx_session(forward, n_in, path), "forward-mode graph"
    except Exception as e:  # noqa: BLE001
        return None, f"{why}; forward mode: {type(e).__name__}: {str(e).splitlines()[0][:100]}"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--problem", nargs="+", default=["burgers", "heat_2d", "navier_stokes_kovasznay"])
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.problem:
            model = kd_edge.load_model(ROOT / "models" / name / "student.pt", kind="student")
            prob = model.problem
            second = [k for k in prob.equation_keys() if len(k.partition("_")[2]) == 2]
            n_in = len(prob.inputs)
            grid = prob.reference_grid()[0].astype(np.float32)
            artifacts = {kind: kd_edge.compile(model, torch.zeros(4, n_in), Path(tmp) / f"{name}-{kind}",
                                               derivatives=d, progress=False)
                         for kind, d in (("value", None), ("jacobian", ["jacobian"]),
                                         ("jacobian+second", ["jacobian"] + second))}
            session, why = onnx_jacobian(copy.deepcopy(model), n_in, Path(tmp) / f"{name}-jacobian.onnx")
            jac, with_second = Jacobian(model), torch_with_second(model)
            for n, label in ((1, "1"), (64, "64"), (len(grid), "grid")):
                x = grid[np.linspace(0, len(grid) - 1, n).astype(int)] if n < len(grid) else grid
                xt = torch.from_numpy(x)
                row = {"problem": name, "n": label, "second": second}
                for kind, artifact in artifacts.items():
                    row[f"kd_edge_{kind}_us"] = cpp_us(artifact, n)
                with torch.no_grad():
                    row["torch_value_us"] = median_us(lambda: model(xt))
                    row["torch_jacobian_us"] = median_us(lambda: jac(xt))
                    row["torch_jacobian+second_us"] = median_us(lambda: with_second(xt))
                row["onnxruntime_jacobian"] = why
                if session is not None:
                    row["onnxruntime_jacobian_us"] = median_us(lambda: session.run(None, {"x": x}))
                    if n == 64:  # a fast wrong answer is no result
                        with torch.no_grad():
                            want = jac(xt)[1].numpy()
                        assert np.abs(session.run(None, {"x": x})[1] - want).max() < 1e-3 * np.abs(want).max()
                rows.append(row)
                print(json.dumps(row), flush=True)
    lines = [f"{cpu_name()}, one thread; medians in microseconds (kd-edge: kd-edge-run p50 from C++).", "",
             "| problem | N | kd-edge value | + Jacobian | + Jacobian + 2nd | Jacobian / value | with 2nd / value "
             "| PyTorch jacfwd | PyTorch with 2nd | ONNX Runtime Jacobian (graph) | PyTorch / kd-edge (Jacobian) "
             "| ONNX Runtime / kd-edge (Jacobian) |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        v, j, s = r["kd_edge_value_us"], r["kd_edge_jacobian_us"], r["kd_edge_jacobian+second_us"]
        ort = r.get("onnxruntime_jacobian_us")
        ort_cell = f"{ort:.1f} ({r['onnxruntime_jacobian']})" if ort else "n/a"
        lines.append(f"| {r['problem']} | {r['n']} | {v:.2f} | {j:.2f} | {s:.2f} | {j / v:.2f}x | {s / v:.2f}x | "
                     f"{r['torch_jacobian_us']:.1f} | {r['torch_jacobian+second_us']:.1f} | "
                     f"{ort_cell} | {r['torch_jacobian_us'] / j:.0f}x | "
                     f"{f'{ort / j:.1f}x' if ort else 'n/a'} |")
    out = ROOT / "build" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "derivative_cost.json").write_text(json.dumps({"cpu": cpu_name(), "rows": rows}, indent=2) + "\n")
    (out / "derivative_cost.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
