"""Every shipped student as a static library for a Cortex-M core, in the emulated MPS2 board:
flash (code + weights), stack one call uses (painted stack), and instructions per point (qemu
-icount), against the plain C loop an embedded engineer writes by hand (the same weights, tanhf
from newlib's libm, arm-none-eabi-gcc -O3) where the student is a plain tanh MLP. Also a 4x20
tanh MLP (random weights: size and cost do not depend on them).

    python benchmarks/microcontroller.py [--target cortex-m4f cortex-m7] [--mhz 168]

Writes build/bench/microcontroller.{json,md}. Microseconds are an estimate, not a measurement:
instructions / clock, as if every instruction took one cycle (a lower bound: on a Cortex-M4 a
vfma takes 3 cycles and a vdiv 14). Needs gcc-arm-none-eabi, libnewlib-arm-none-eabi and
qemu-system-arm."""

import argparse
import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

import kd_edge
from kd_edge.compiler.build import _import
from kd_edge.compiler.chain import extract_chain
from kd_edge.compiler.target import resolve_target
from kd_edge.deploy.firmware import build_hand_written, run_on_board
from kd_edge.networks import MLP

ROOT = Path(__file__).resolve().parent.parent


def models():
    for path in sorted((ROOT / "models").glob("*/student.pt")):
        yield path.parent.name, kd_edge.load_model(path, kind="student")
    torch.manual_seed(0)
    yield "4x20 tanh MLP (2 in, 1 out)", MLP(2, 1, width=20, depth=4)


def measure(name, model, spec, work: Path) -> dict:
    n_in = model.problem.inputs if hasattr(model, "problem") else ["x", "t"]
    lower, upper = (model.problem.bounds if hasattr(model, "problem") else (np.array([-1.0, -1.0]), np.ones(2)))
    points = np.random.default_rng(0).uniform(lower, upper, (64, len(n_in))).astype(np.float32)
    artifact = kd_edge.compile(model, torch.zeros(4, len(n_in)), work / "artifact", target=spec.name,
                               name="model", progress=False)
    runtime = json.loads((artifact / "manifest.json").read_text())["runtime"]
    ours = run_on_board(artifact, points, work=work / "firmware")
    row = {"model": name, "target": spec.name, "multiply_adds": runtime["multiply_adds"],
           "flash_bytes": runtime["flash_bytes"], "stack_bytes": ours["stack_bytes"],
           "instructions_per_point": round(ours["instructions_per_point"]), "heap": ours["heap_symbols"]}
    layers = extract_chain(_import(model, torch.zeros(4, len(n_in)))[0])
    try:
        baseline = build_hand_written(layers, spec, work / "baseline")
    except ValueError as e:  # not a plain tanh MLP
        row["baseline"] = str(e)
        return row
    hand = run_on_board(baseline, points, work=work / "baseline-firmware")
    rational = run_on_board(build_hand_written(layers, spec, work / "rational", tanh="rational"), points,
                            work=work / "rational-firmware")
    row.update(baseline_instructions_per_point=round(hand["instructions_per_point"]),
               baseline_stack_bytes=hand["stack_bytes"],
               baseline_max_difference=float(np.abs(hand["outputs"] - ours["outputs"]).max()),
               rational_instructions_per_point=round(rational["instructions_per_point"]),
               rational_max_difference=float(np.abs(rational["outputs"] - ours["outputs"]).max()))
    return row


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", nargs="+", default=["cortex-m4f", "cortex-m7"])
    p.add_argument("--mhz", type=float, default=168.0, help="clock for the (estimated) microseconds")
    args = p.parse_args()
    warnings.filterwarnings("ignore", module="tvm")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for target in args.target:
            spec = resolve_target(target)
            for i, (name, model) in enumerate(models()):
                rows.append(measure(name, model, spec, Path(tmp) / f"{target}-{i}"))
                print(json.dumps(rows[-1]), flush=True)
    lines = [f"Instructions per point counted in qemu-system-arm (-icount); microseconds = instructions / "
             f"{args.mhz:g} MHz, an estimate (one instruction per cycle).", "",
             "| target | model | multiply-adds | flash (bytes) | stack (bytes) | instructions / point | est. us at "
             f"{args.mhz:g} MHz | C loop, tanhf: instructions / point | C loop, kd-edge's tanh in C |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        hand, rational = r.get("baseline_instructions_per_point"), r.get("rational_instructions_per_point")
        hand = f"{hand:,} ({hand / r['instructions_per_point']:.1f}x ours)" if hand else "n/a (not a plain tanh MLP)"
        rational = f"{rational:,} ({rational / r['instructions_per_point']:.2f}x)" if rational else "n/a"
        lines.append(f"| {r['target']} | {r['model']} | {r['multiply_adds']:,} | {r['flash_bytes']:,} | "
                     f"{r['stack_bytes']:,} | {r['instructions_per_point']:,} | "
                     f"{r['instructions_per_point'] / args.mhz:.1f} | {hand} | {rational} |")
    out = ROOT / "build" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "microcontroller.json").write_text(json.dumps({"mhz": args.mhz, "rows": rows}, indent=2) + "\n")
    (out / "microcontroller.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
