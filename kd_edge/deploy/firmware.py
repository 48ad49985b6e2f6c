"""A static model artifact for a microcontroller, run in an emulated board: the test firmware
(firmware/: start-up code, linker script, semihosting output, harness.c) built with the target's
GCC around lib<name>.a, and run in qemu-system-arm.

    result = run_on_board("build/burgers-m4", points)   # outputs, stack, instructions per point

Instructions per point are counted, not timed: qemu's -icount makes its clock advance one
nanosecond per instruction, and the harness reads the SysTick timer around repeated calls,
calibrated against a loop of known length.
"""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

from kd_edge.compiler.static import STATIC_KIND, c_flags
from kd_edge.compiler.target import PRESETS, resolve_target

FIRMWARE = Path(__file__).with_name("firmware")
LINKER_SCRIPTS = {"mps2-an505": "mps2-an505.ld"}  # by qemu board; the others: mps2.ld


def linker_script(spec) -> Path:
    return FIRMWARE / LINKER_SCRIPTS.get(spec.qemu_machine, "mps2.ld")


HEAP_SYMBOLS = ("malloc", "_malloc_r", "calloc", "realloc", "free", "_free_r", "_sbrk", "_sbrk_r")


def firmware_tools_missing(target="cortex-m4f") -> list[str]:
    """Debian packages this machine lacks to build and run test firmware for `target`."""
    spec = resolve_target(target)
    missing = [] if shutil.which(f"{spec.cross}-gcc") else [spec.debian]
    return missing + ([] if shutil.which(spec.qemu) else ["qemu-system-arm"])


def _static_manifest(artifact: Path) -> dict:
    path = Path(artifact) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"no manifest.json in {artifact}: not an artifact directory")
    try:
        manifest = json.loads(path.read_text())
        kind = manifest["runtime"]["kind"]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path} is damaged: not a kd-edge manifest ({type(e).__name__}: {e})") from None
    if kind != STATIC_KIND:
        raise ValueError(f"{artifact} is a {kind} artifact; firmware links static ones "
                         f"(compile with a microcontroller target, or static=True)")
    return manifest


def _target(manifest: dict):
    name = manifest["target"]["name"]
    if name not in PRESETS or not PRESETS[name].bare_metal or not PRESETS[name].qemu_machine:
        boards = [n for n, p in PRESETS.items() if p.qemu_machine]
        raise ValueError(f"no emulated board for target {name!r}; boards exist for {', '.join(boards)}")
    return resolve_target(name)


def points_header(points: np.ndarray, n_outputs: int) -> str:
    points = np.ascontiguousarray(points, np.float32)
    values = ",\n".join("  " + ", ".join(f"{float(v).hex()}f" for v in row) for row in points)
    return (f"#define N_POINTS {len(points)}\n#define N_INPUTS {points.shape[1]}\n#define N_OUTPUTS {n_outputs}\n"
            f"static const float points[N_POINTS * N_INPUTS] = {{\n{values}\n}};\n")


def build_firmware(artifact, points: np.ndarray, work, repeat: int = 20, main: Path | None = None) -> Path:
    """Link the test firmware (or `main`, a C file of the same shape) around the artifact's
    library; returns the ELF, with its map file beside it (firmware.map)."""
    artifact, work = Path(artifact), Path(work)
    manifest = _static_manifest(artifact)
    spec, runtime = _target(manifest), manifest["runtime"]
    work.mkdir(parents=True, exist_ok=True)
    (work / "points.h").write_text(points_header(points, manifest["output_width"]))
    elf = work / "firmware.elf"
    command = [f"{spec.cross}-gcc", *c_flags(spec), "-std=c99", "-O2", "-Wall", "-Wextra", "-nostdlib",
               "-nostartfiles", "-T", str(linker_script(spec)), f"-I{artifact}", f"-I{FIRMWARE}", f"-I{work}",
               f"-DMODEL={runtime['name']}", f'-DMODEL_HEADER="{runtime["header"]}"', f"-DREPEAT={repeat}",
               str(FIRMWARE / "startup.c"), str(main or FIRMWARE / "harness.c"), str(artifact / runtime["library"]),
               *runtime.get("link", []), "-lgcc", f"-Wl,-Map={work / 'firmware.map'}", "-Wl,--gc-sections", "-Wl,-z,noexecstack", "-o", str(elf)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"building the firmware failed ({' '.join(command)}):\n{done.stderr[-3000:]}")
    return elf


def run_firmware(elf, target, timeout: float = 120) -> str:
    """Run the firmware in qemu-system-arm's board for `target`; its output (semihosting)."""
    spec = resolve_target(target) if isinstance(target, str) else target
    command = [spec.qemu, "-M", spec.qemu_machine, "-nographic", "-monitor", "none", "-serial", "none",
               "-semihosting-config", "enable=on,target=native", "-icount", "shift=0", "-kernel", str(elf)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"the firmware failed in {spec.qemu_machine} (status {done.returncode}):\n"
                           f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout + done.stderr  # qemu writes semihosting output to stderr


def parse_harness(text: str, n_points: int, n_outputs: int) -> dict:
    bits = [int(h, 16) for h in re.findall(r"^out ([0-9a-f]{8})$", text, re.M)]
    if len(bits) != n_points * n_outputs:
        raise RuntimeError(f"the firmware printed {len(bits)} outputs, not {n_points * n_outputs}:\n{text[-2000:]}")
    calibration, known, model, calls = (int(v) for v in re.search(r"^ticks (\d+) (\d+) (\d+) (\d+)$", text, re.M)
                                        .groups())
    return {"status": int(re.search(r"^status (-?\d+)$", text, re.M).group(1)),
            "stack_bytes": int(re.search(r"^stack (\d+)$", text, re.M).group(1)),
            "outputs": np.array(bits, np.uint32).view(np.float32).reshape(n_points, n_outputs),
            "instructions_per_point": model * known / calibration / calls}


def heap_symbols(map_file) -> list[str]:
    """Heap functions the linker pulled into the firmware (from its map file)."""
    text = Path(map_file).read_text()
    return [s for s in HEAP_SYMBOLS if re.search(rf"^\s+0x[0-9a-f]+\s+{re.escape(s)}$", text, re.M)]


def run_on_board(artifact, points: np.ndarray, work=None, repeat: int = 20, timeout: float = 120) -> dict:
    """The artifact's model on `points` in the emulated board: {"status", "outputs",
    "stack_bytes" (what one call used), "instructions_per_point", "heap_symbols", "elf"}."""
    import tempfile

    artifact = Path(artifact)
    manifest = _static_manifest(artifact)
    spec = _target(manifest)
    missing = firmware_tools_missing(spec.name)
    if missing:
        raise RuntimeError(f"running firmware for {spec.name} needs: apt-get install {' '.join(missing)}")
    work = Path(work) if work is not None else Path(tempfile.mkdtemp(prefix="kd-edge-firmware-"))
    elf = build_firmware(artifact, points, work, repeat)
    result = parse_harness(run_firmware(elf, spec, timeout), len(points), manifest["output_width"])
    return dict(result, heap_symbols=heap_symbols(work / "firmware.map"), elf=elf)


def hand_written_c(layers, name: str = "baseline", tanh: str = "libm") -> tuple[str, str]:
    """(<name>.h, <name>.c): the loop an embedded engineer writes by hand for a plain tanh MLP
    (weights in const arrays, a dense loop per layer): the baseline the loop kernel is measured
    against. tanh: "libm" (tanhf) or "rational" (the kernel's own approximation, written in C: how
    much of the difference is the activation). Raises for chains it does not cover (feature
    layers, epilogues, skips, other activations)."""
    from kd_edge.compiler.kernel import _TANH_CLAMP, _TANH_P, _TANH_Q
    from kd_edge.compiler.static import _floats

    if getattr(layers, "epilogue", None) is not None or any(l.skips for l in layers):
        raise ValueError("the hand-written baseline covers plain MLPs (no epilogue, no skip connections)")
    hidden, last = layers[:-1], layers[-1]
    if any(set(l.activations) != {"tanh"} for l in hidden) or set(last.activations) != {"identity"}:
        raise ValueError("the hand-written baseline covers tanh hidden layers and a linear output")
    widths = [int(layers[0].weight.shape[1])] + [int(l.weight.shape[0]) for l in layers]
    arrays = "".join(f"static const float w{i}[{l.weight.size}] = {{\n{_floats(l.weight)}\n}};\n"
                     f"static const float b{i}[{l.bias.size}] = {{\n{_floats(l.bias)}\n}};\n"
                     for i, l in enumerate(layers))
    calls = "\n".join(f"    dense(w{i}, b{i}, {widths[i]}, {widths[i + 1]}, {'x' if i == 0 else f'h{i % 2}'}, "
                      f"{'y' if i == len(layers) - 1 else f'h{(i + 1) % 2}'}, {int(i < len(layers) - 1)});"
                      for i in range(len(layers)))
    h = (f"#include <stddef.h>\nint {name}_predict(const float* in, size_t n_points, float* out);\n")
    if tanh == "libm":
        activation = "#include <math.h>\n#define TANH tanhf\n"
    elif tanh == "rational":
        poly = lambda c: " + s * (".join(f"{v!r}f" for v in c) + ")" * (len(c) - 1)  # noqa: E731 (Horner)
        activation = (f"static inline float TANH(float v) {{\n  v = v > {_TANH_CLAMP!r}f ? {_TANH_CLAMP!r}f : "
                      f"v < -{_TANH_CLAMP!r}f ? -{_TANH_CLAMP!r}f : v;\n  const float s = v * v;\n"
                      f"  return v * ({poly(_TANH_P)}) / ({poly(_TANH_Q)});\n}}\n")
    else:
        raise ValueError(f"tanh must be 'libm' or 'rational', got {tanh!r}")
    c = f"""#include <stddef.h>
#include "{name}.h"
{activation}{arrays}
static inline void dense(const float* w, const float* b, int n_in, int n_out, const float* in, float* out,
                         int activate) {{
  for (int j = 0; j < n_out; ++j) {{
    float acc = b[j];
    for (int k = 0; k < n_in; ++k) acc += w[j * n_in + k] * in[k];
    out[j] = activate ? TANH(acc) : acc;
  }}
}}

int {name}_predict(const float* in, size_t n_points, float* out) {{
  float h0[{max(widths)}], h1[{max(widths)}];
  for (size_t p = 0; p < n_points; ++p) {{
    const float* x = in + p * {widths[0]};
    float* y = out + p * {widths[-1]};
{calls}
  }}
  return 0;
}}
"""
    return h, c


def build_hand_written(layers, spec, work, tanh: str = "libm") -> Path:
    """The hand-written baseline compiled with the target's GCC at -O3 into work/ as a static
    library in the shape of an artifact (manifest.json, baseline.h, libbaseline.a)."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    h, c = hand_written_c(layers, tanh=tanh)
    (work / "baseline.h").write_text(h)
    (work / "baseline.c").write_text(c)
    command = [f"{spec.cross}-gcc", *c_flags(spec), "-std=c99", "-O3", "-c", str(work / "baseline.c"),
               "-o", str(work / "baseline.o")]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"compiling the baseline failed: {done.stderr[-2000:]}")
    subprocess.run([f"{spec.cross}-ar", "rcs", str(work / "libbaseline.a"), str(work / "baseline.o")], check=True)
    n_out = int(layers[-1].weight.shape[0])
    (work / "manifest.json").write_text(json.dumps({
        "runtime": {"kind": STATIC_KIND, "name": "baseline", "header": "baseline.h", "library": "libbaseline.a",
                    "link": ["-lm", "-lc"]},
        "output_width": n_out, "target": {"name": spec.name}}))
    return work
