"""What derivatives cost: a student's value alone, value + its Jacobian, value + its PDE residual,
and value + Jacobian + the second derivatives its PDE uses, from the fused kernel through C++
(kd-edge-run, one thread), against PyTorch (torch.func.jacfwd under vmap, nested for the second
derivatives; Problem.residual by autograd) and ONNX Runtime running the exported Jacobian graph,
on the same student, at N = 1, 64 and the grid.

    python benchmarks/derivative_cost.py [--problem burgers heat_2d navier_stokes_kovasznay wave_1d]

Writes build/bench/derivative_cost.{json,md}. Times are medians on this machine, all in one run.
Each kd-edge time is the median of REPEATS kd-edge-run processes (each reporting its own p50),
the kinds taken in turn: on the VM measured, the same artifact's time moved up to 2x from one
process to the next (with the process's memory layout), so one process is one draw."""

import argparse
import copy
import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

import kd_edge
from kd_edge.measure.latency import cpu_name, median_seconds, run_p50_us

ROOT = Path(__file__).resolve().parent.parent


REPEATS = 5


def cpp_us(artifact: Path, n: int) -> float:
    return run_p50_us(artifact, n, 20000 if n == 1 else 2000 if n <= 64 else 30)


def cpp_medians(artifacts: dict, n: int) -> dict:
    """{kind: median over REPEATS processes of its p50}, the kinds in turn."""
    times = {kind: [] for kind in artifacts}
    for _ in range(REPEATS):
        for kind, artifact in artifacts.items():
            times[kind].append(cpp_us(artifact, n))
    return {kind: float(np.median(t)) for kind, t in times.items()}


def median_us(fn) -> float:
    return median_seconds(fn, 0.5) * 1e6


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
    p.add_argument("--problem", nargs="+", default=["burgers", "heat_2d", "navier_stokes_kovasznay", "wave_1d"])
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
                                               progress=False, **options)
                         for kind, options in (("value", {}), ("jacobian", {"derivatives": ["jacobian"]}),
                                               ("residual", {"residual": True}),
                                               ("jacobian+second", {"derivatives": ["jacobian"] + second}))}
            mode = json.loads((artifacts["jacobian"] / "manifest.json").read_text())["runtime"]["derivative_mode"]
            session, why = onnx_jacobian(copy.deepcopy(model), n_in, Path(tmp) / f"{name}-jacobian.onnx")
            jac, with_second = Jacobian(model), torch_with_second(model)
            for n, label in ((1, "1"), (64, "64"), (len(grid), "grid")):
                x = grid[np.linspace(0, len(grid) - 1, n).astype(int)] if n < len(grid) else grid
                xt = torch.from_numpy(x)
                row = {"problem": name, "n": label, "second": second, "jacobian_mode": mode}
                for kind, us in cpp_medians(artifacts, n).items():
                    row[f"kd_edge_{kind}_us"] = us
                with torch.no_grad():
                    row["torch_value_us"] = median_us(lambda: model(xt))
                    row["torch_jacobian_us"] = median_us(lambda: jac(xt))
                    row["torch_jacobian+second_us"] = median_us(lambda: with_second(xt))
                row["torch_residual_us"] = median_us(lambda: prob.residual(model, xt.clone().requires_grad_(True)))
                row["onnxruntime_jacobian"] = why
                if session is not None:
                    row["onnxruntime_jacobian_us"] = median_us(lambda: session.run(None, {"x": x}))
                    if n == 64:  # a fast wrong answer is no result
                        with torch.no_grad():
                            want = jac(xt)[1].numpy()
                        assert np.abs(session.run(None, {"x": x})[1] - want).max() < 1e-3 * np.abs(want).max()
                rows.append(row)
                print(json.dumps(row), flush=True)
    lines = [f"{cpu_name()}, one thread; medians in microseconds (kd-edge: the median of {REPEATS} kd-edge-run "
             "processes' p50, from C++).", "",
             "| problem | N | value | + Jacobian | + residual | + Jacobian + 2nd | PyTorch Jacobian "
             "| PyTorch residual | PyTorch with 2nd | ONNX Runtime Jacobian |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        v, j, res, s = (r[f"kd_edge_{k}_us"] for k in ("value", "jacobian", "residual", "jacobian+second"))
        ort = r.get("onnxruntime_jacobian_us")
        ort_cell = f"{ort:,.1f} ({ort / j:.0f}x ours)" if ort else "n/a (no exported graph; the reason is in the json)"
        lines.append(f"| {r['problem']} | {r['n']} | {v:,.2f} | {j:,.2f} ({j / v:.2f}x, {r['jacobian_mode']}) | "
                     f"{res:,.2f} ({res / v:.2f}x) | {s:,.2f} ({s / v:.2f}x) | "
                     f"{r['torch_jacobian_us']:,.0f} ({r['torch_jacobian_us'] / j:.0f}x ours) | "
                     f"{r['torch_residual_us']:,.0f} ({r['torch_residual_us'] / res:.0f}x) | "
                     f"{r['torch_jacobian+second_us']:,.0f} ({r['torch_jacobian+second_us'] / s:.0f}x) | {ort_cell} |")
    out = ROOT / "build" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "derivative_cost.json").write_text(json.dumps({"cpu": cpu_name(), "rows": rows}, indent=2) + "\n")
    (out / "derivative_cost.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
