"""kd-edge bundle: everything a C++ developer copies to a board, for one model and one target."""

import json
import shutil
from pathlib import Path

from kd_edge.compiler.target import resolve_target
from kd_edge.deploy.runtime import SOURCE, build_runtime

MODELS = SOURCE / "models"

_README = """# {name}: kd-edge bundle for {target} ({arch})

Built {what}. Copy this folder to the board; it runs wherever it is copied (RUNPATHs are relative).

| path | what |
|---|---|
| `artifact/` | the model: `manifest.json` and `model.so`, compiled for CPU `{cpu}` ({features}) |
| `bin/kd-edge-run` | latency: `bin/kd-edge-run --artifact artifact --batch 1` |
| `bin/kd-edge-predict` | points from a file: `bin/kd-edge-predict artifact in.f32 out.f32` (raw float32, {n_in} columns in, {n_out} out) |
| `bin/kd-edge-control-loop` | a fixed-rate control loop: `bin/kd-edge-control-loop artifact --rate 1000 --seconds 1` |
| `lib/libkd_edge.so` | the runtime ({runtime_kb:.0f} KB stripped; needs only the C and C++ libraries) |
| `include/kd_edge/` | `solver.hpp` (C++), `c_api.h` (C) |
| `lib/cmake/kd_edge/` | `find_package(kd_edge CONFIG REQUIRED)`, then link `kd_edge::kd_edge` |
| `lib/pkgconfig/kd_edge.pc` | `pkg-config --cflags --libs kd_edge` (with `PKG_CONFIG_PATH=$PWD/lib/pkgconfig`) |

Inputs: {inputs}; outputs: {outputs}; training domain: {domain}.

A project of your own:

```cmake
cmake_minimum_required(VERSION 3.20)
project(my_controller CXX)
find_package(kd_edge CONFIG REQUIRED)   # cmake -DCMAKE_PREFIX_PATH=/path/to/this/bundle
add_executable(my_controller main.cpp)
target_link_libraries(my_controller PRIVATE kd_edge::kd_edge)
```

```cpp
#include <kd_edge/solver.hpp>
kd_edge::Solver solver("artifact", {{/*threads=*/1}});
float in[{n_in}] = {{...}}, out[{n_out}];
solver.predict(in, 1, out);   // no allocation after construction
```

The artifact is refused, with the reason, on a CPU of another architecture or one that lacks the
features above: {portable}
"""


def bundle(model, target: str = "host", out=None, progress: bool = True) -> Path:
    """Write a bundle for `model` (a problem name with a shipped student, a student .pt file, or an
    artifact directory already compiled for `target`) into `out`; return `out`."""
    import torch

    import kd_edge

    if out is None:
        raise ValueError("bundle needs out, the folder to write")
    spec = resolve_target(target)
    out = Path(out)
    artifact = out / "artifact"
    source = Path(str(model))
    if (source / "manifest.json").exists():
        manifest = json.loads((source / "manifest.json").read_text())
        if manifest["target"]["arch"] != spec.arch or manifest["target"]["cpu"] != spec.cpu:
            raise ValueError(f"{source} is compiled for {manifest['target']['arch']} CPU {manifest['target']['cpu']}, "
                             f"not for target {target!r} ({spec.arch} CPU {spec.cpu})")
        shutil.copytree(source, artifact, dirs_exist_ok=True)
        name = source.name
    else:
        path = source if source.suffix == ".pt" else MODELS / str(model) / "student.pt"
        if not path.exists():
            raise FileNotFoundError(f"no model {model!r}: give a problem with a shipped student "
                                    f"({', '.join(sorted(p.parent.name for p in MODELS.glob('*/student.pt')))}), "
                                    f"a student .pt file or an artifact directory")
        student = kd_edge.load_model(path)
        name = student.problem.name
        if progress:
            print(f"[bundle] compile {path} for {target}")
        kd_edge.compile(student, torch.zeros(4, len(student.problem.inputs)), artifact, target=target,
                        progress=progress)
    if spec.bare_metal:
        return _microcontroller_bundle(out, artifact, spec, target)
    build_runtime(spec, prefix=out, progress=progress)
    manifest = json.loads((artifact / "manifest.json").read_text())
    domain = manifest["domain"]
    portable = {"x86_64": "compile for target x86-64-v3 for any AVX2 machine.",
                "aarch64": "compile for target aarch64 for any 64-bit Arm board."}.get(
        spec.arch, f"compile for target {spec.arch} for any {spec.arch} board.")
    (out / "README.md").write_text(_README.format(
        name=name, target=target, arch=spec.arch, cpu=spec.cpu, features=", ".join(spec.features) or "none recorded",
        what=f"by kd-edge {kd_edge.__version__} with TVM {manifest['tvm_version']}",
        runtime_kb=(out / "lib" / "libkd_edge.so").stat().st_size / 1024,
        n_in=len(manifest["inputs"]), n_out=len(manifest["outputs"]), inputs=", ".join(manifest["inputs"]),
        outputs=", ".join(manifest["outputs"]), portable=portable,
        domain="not recorded" if domain is None else ", ".join(
            f"{n} in [{lo:g}, {hi:g}]" for n, lo, hi in zip(manifest["inputs"], domain["lower"], domain["upper"]))))
    return out


_MCU_README = """# {name}: kd-edge bundle for {target} (bare metal)

| path | what |
|---|---|
| `artifact/lib{name}.a` | the model: kernel and input screening, {flash} bytes of flash (code and weights), no heap, no libc, no global state |
| `artifact/{name}.h` | `{name}_predict(in, n_points, out)` and `{name}_predict_ex(...)`, widths, names, the training domain |
| `firmware/` | a control loop (`control_loop.c`), start-up code and a linker script for the Arm MPS2 board; `make -C firmware run` builds it and runs it in qemu-system-arm ({board}) |

Inputs: {inputs}; outputs: {outputs}. Link `artifact/lib{name}.a` into your firmware, built with
`{flags}`. The return value of `{name}_predict` is the number of points outside the training
domain (>= 0), or a negative `KD_EDGE_STATIC_ERR_*` code (NaN/Inf input, a non-finite output, a
point outside the domain under the reject policy, a null pointer).
"""


def _microcontroller_bundle(out: Path, artifact: Path, spec, target: str) -> Path:
    """A microcontroller has no runtime to build: the static artifact, the example firmware and a README."""
    from kd_edge.compiler.static import c_flags
    from kd_edge.deploy.firmware import FIRMWARE, linker_script

    manifest = json.loads((artifact / "manifest.json").read_text())
    runtime, name = manifest["runtime"], manifest["runtime"]["name"]
    firmware = out / "firmware"
    firmware.mkdir(parents=True, exist_ok=True)
    for f in ("startup.c", "semihost.h"):
        shutil.copy(FIRMWARE / f, firmware / f)
    shutil.copy(linker_script(spec), firmware / "board.ld")
    example = SOURCE / "examples" / "cortex-m"
    main = (example / "control_loop.c").read_text()
    if name != "burgers_student":  # the example is written for Burgers; another model gets its names
        main = main.replace("burgers_student", name).replace("BURGERS_STUDENT", name.upper())
    (firmware / "control_loop.c").write_text(main)
    cpu = " ".join(spec.gcc_flags)
    make = (example / "Makefile").read_text().replace("MODEL ?= burgers_student", f"MODEL ?= {name}")
    make = make.replace("CPU   ?= -mcpu=cortex-m4 -mfpu=fpv4-sp-d16", f"CPU   ?= {cpu}")
    make = make.replace("BOARD ?= mps2-an386", f"BOARD ?= {spec.qemu_machine or 'none'}")
    (firmware / "Makefile").write_text(make)
    (out / "README.md").write_text(_MCU_README.format(
        name=name, target=target, flash=runtime["flash_bytes"], board=spec.qemu_machine or "no emulated board",
        inputs=", ".join(manifest["inputs"]), outputs=", ".join(manifest["outputs"]), flags=" ".join(c_flags(spec))))
    return out
