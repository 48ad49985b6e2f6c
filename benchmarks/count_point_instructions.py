"""Instructions the latency kernel runs for one point, from its disassembly, against the
arithmetic floor: for targets with no hardware here (aarch64, armv7, RISC-V) the count is the
estimate, not a timing.

    .venv/bin/python benchmarks/count_point_instructions.py [--target cortex-a72] [MODEL ...]

The kernel is built with points one at a time (group 1) and without stripping, so the body of
its point loop, straight-line code, is what one point executes.
"""

import argparse
import re
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

import torch

import kd_edge
from kd_edge.compiler.build import KERNEL_ABI, _import
from kd_edge.compiler.chain import extract_chain
from kd_edge.compiler.kernel import SMALL_ENTRY, KernelOptions, _small_kernel
from kd_edge.compiler.target import resolve_target
from kd_edge.networks import MLP

ROOT = Path(__file__).resolve().parent.parent
# instruction classes by mnemonic, per architecture family
CLASSES = {
    "fma": r"^(fmla|fmadd|fmls|vfmadd\w*|vfnmadd\w*|vfma|vfma\.f32|fmadd\.s|fnmsub\.s|fmsub\.s|fnmadd\.s|vfmacc\.v\w+|vfmadd\.v\w+)$",
    "mul/add/sub": r"^(fmul|fadd|fsub|vmulps|vaddps|vsubps|vmulss|vaddss|vsubss|vmul\.f32|vadd\.f32|vsub\.f32|fmul\.s|fadd\.s|fsub\.s|vfmul\.v\w+|vfadd\.v\w+|vfsub\.v\w+|vfrsub\.v\w+)$",
    "divide": r"^(fdiv|vdivps|vdivss|vdiv\.f32|fdiv\.s|vfdiv\.v\w+)$",
    "min/max/select": r"^(fmin\w*|fmax\w*|vminps|vmaxps|vminss|vmaxss|vmin\.f32|vmax\.f32|fmin\.s|fmax\.s|bsl|bif|bit|vblendv\w+|vfmin\.v\w+|vfmax\.v\w+)$",
    "load": r"^(ldr|ldp|ldur|ld1\w*|vmov\w*|vld1\.\w+|vldr|flw|fld|vle\w+\.v|vbroadcastss)$",
    "broadcast/shuffle": r"^(dup|ins|mov|vdup\.\w+|vshufps|vshuff\w+|vperm\w+|vextract\w+|vinsert\w+|vbroadcast\w+|vrgather\.v\w+|vfmv\.\w+)$",
}


def chain_of(name):
    if name == "reference_mlp":
        torch.manual_seed(0)
        model = MLP(2, 1, 20, 4).eval()
    else:
        model = kd_edge.load_model(ROOT / "models" / name / "student.pt")
    width = model.arch["n_inputs"] if hasattr(model, "arch") else 2
    return extract_chain(_import(model, torch.zeros(4, width))[0])


def point_instructions(layers, spec, workdir: Path) -> list[str]:
    import tvm
    from tvm.support import cc

    module = tvm.IRModule({SMALL_ENTRY: _small_kernel(layers, spec.lanes, KernelOptions(), group=1)})
    library = workdir / "point.so"
    compiler = spec.compiler() or cc.get_cc() or "g++"
    tvm.compile(module, target=tvm.target.Target(spec.tvm_target)).export_library(
        str(library), fcompile=cc.cross_compiler(compiler, add_files=[str(KERNEL_ABI)]))
    objdump = compiler.replace("g++", "objdump") if spec.cross else "objdump"
    text = subprocess.run([objdump, "-d", "--no-show-raw-insn", str(library)], check=True, capture_output=True,
                          text=True).stdout
    body = text.split(f"<{SMALL_ENTRY}_compute_>:")[1].split("\n\n")[0]
    return [m.group(1) for m in re.finditer(r"^\s*[0-9a-f]+:\s+([a-z][\w.]*)", body, re.M)]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", default=["reference_mlp", "burgers"], metavar="MODEL")
    p.add_argument("--target", default="cortex-a72")
    args = p.parse_args()
    spec = resolve_target(args.target)
    for name in args.names:
        layers = chain_of(name)
        with tempfile.TemporaryDirectory() as tmp:
            mnemonics = point_instructions(layers, spec, Path(tmp))
        counts = Counter()
        for m in mnemonics:
            kind = next((k for k, pattern in CLASSES.items() if re.match(pattern, m)), "other")
            counts[kind] += 1
        macs = sum(layer.multiply_adds for layer in layers)
        tanh = sum(layer.activations.count("tanh") for layer in layers)
        floor = -(-macs // spec.lanes)
        print(f"{name} on {spec.name} ({spec.lanes} float lanes): {len(mnemonics)} instructions for one point; "
              f"{macs} multiply-adds and {tanh} tanh per point, so at least {floor} vector FMAs")
        print("  " + ", ".join(f"{k} {v}" for k, v in counts.most_common()))
        top = Counter(mnemonics).most_common(8)
        print("  most frequent: " + ", ".join(f"{m} {c}" for m, c in top))


if __name__ == "__main__":
    main()
