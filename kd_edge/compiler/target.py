"""Which CPU an artifact is compiled for, which ISA features it may use, and how to link it.

Every target is data, declared once in PRESETS: the compiler, `kd-edge targets`, the bundle and
the cross tests all read it. A target for another architecture is linked with the matching
cross compiler from Debian's packages and runs under qemu-user on this machine.
"""

import platform
import shutil
from dataclasses import dataclass, field

# LLVM feature name -> Linux /proc/cpuinfo flag (x86). Only features a runtime can check are
# recorded; LLVM's list also holds tuning flags ("fast-gather", "prefer-256-bit") that are not
# instructions.
_CPUINFO_FLAG = {
    "sse3": "pni", "ssse3": "ssse3", "sse4.1": "sse4_1", "sse4.2": "sse4_2", "popcnt": "popcnt",
    "avx": "avx", "avx2": "avx2", "fma": "fma", "f16c": "f16c", "bmi": "bmi1", "bmi2": "bmi2",
    "lzcnt": "abm", "movbe": "movbe", "aes": "aes", "pclmul": "pclmulqdq", "sha": "sha_ni",
    "gfni": "gfni", "vaes": "vaes", "vpclmulqdq": "vpclmulqdq",
    "avx512f": "avx512f", "avx512cd": "avx512cd", "avx512bw": "avx512bw", "avx512dq": "avx512dq",
    "avx512vl": "avx512vl", "avx512ifma": "avx512ifma", "avx512vbmi": "avx512vbmi",
    "avx512vbmi2": "avx512_vbmi2", "avx512vnni": "avx512_vnni", "avx512bitalg": "avx512_bitalg",
    "avx512vpopcntdq": "avx512_vpopcntdq", "avx512bf16": "avx512_bf16", "avx512fp16": "avx512_fp16",
    "avxvnni": "avx_vnni", "amx-tile": "amx_tile", "amx-int8": "amx_int8", "amx-bf16": "amx_bf16",
}
# LLVM feature -> the Linux hwcap name the kernel reports (AT_HWCAP, and /proc/cpuinfo's
# "Features"); the runtime checks these with getauxval, which qemu-user emulates too.
_HWCAP_NAME = {
    "aarch64": {"fp-armv8": "fp", "neon": "asimd", "aes": "aes", "sha2": "sha2", "crc": "crc32", "lse": "atomics",
                "fullfp16": "asimdhp", "rdm": "asimdrdm", "rcpc": "lrcpc", "dotprod": "asimddp"},
    "armv7": {"neon": "neon", "vfp4": "vfpv4", "hwdiv-arm": "idiva"},
    "riscv64": {"m": "m", "a": "a", "f": "f", "d": "d", "c": "c", "v": "v"},
}


@dataclass(frozen=True)
class Preset:
    """A named target: the LLVM triple, CPU and features, and the toolchain that links for it."""

    arch: str  # as the manifest and the runtime name it: x86_64, aarch64, armv7, riscv64
    triple: str  # LLVM target triple ("" for the host's own)
    cpu: str  # LLVM CPU name ("" for the host's own)
    about: str  # what hardware it assumes, for `kd-edge targets`
    mattr: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)  # further target-dict keys (mabi, mfloat-abi)
    cross: str = ""  # cross compiler prefix, e.g. "aarch64-linux-gnu" ("" links with the host's)
    debian: str = ""  # Debian package with that compiler
    qemu: str = ""  # qemu-user binary that runs it here
    qemu_cpu: str = ""  # its -cpu option, where the default CPU lacks the target's features
    # bare-metal microcontrollers: static artifacts only, built with gcc_flags, and run in
    # qemu-system's qemu_machine
    bare_metal: bool = False
    gcc_flags: tuple[str, ...] = ()
    qemu_machine: str = ""


# fast-math-contract: multiply-adds become vfma, as GCC's default -ffp-contract=fast makes them
_CORTEX_M = dict(cross="arm-none-eabi", debian="gcc-arm-none-eabi", qemu="qemu-system-arm", bare_metal=True,
                 extra={"mfloat-abi": "hard", "fast-math-contract": True})
_ARM64 = dict(arch="aarch64", triple="aarch64-linux-gnu", mattr=("+neon",), cross="aarch64-linux-gnu",
              debian="g++-aarch64-linux-gnu", qemu="qemu-aarch64")
PRESETS = {
    "host": Preset("", "", "", "this machine's CPU (fastest here; may not run on an older CPU)"),
    "x86-64-v3": Preset("x86_64", "", "x86-64-v3", "any x86-64 CPU with AVX2, FMA and BMI2 (Haswell 2013, Zen 1 and later)"),
    "x86-64-v4": Preset("x86_64", "", "x86-64-v4", "x86-64 with AVX-512 F/BW/CD/DQ/VL (Skylake-SP, Zen 4 and later)"),
    "aarch64": Preset(cpu="generic", about="any 64-bit Arm (Armv8-A with NEON): the portable Arm choice", **_ARM64),
    "cortex-a53": Preset(cpu="cortex-a53", about="Cortex-A53 (Raspberry Pi 3, many SoCs), Armv8-A", **_ARM64),
    "cortex-a72": Preset(cpu="cortex-a72", about="Cortex-A72 (Raspberry Pi 4), Armv8-A", **_ARM64),
    "cortex-a76": Preset(cpu="cortex-a76", about="Cortex-A76 (Raspberry Pi 5), Armv8.2-A with dot product and fp16",
                         **_ARM64),
    "cortex-a78ae": Preset(cpu="cortex-a78ae", about="Cortex-A78AE (Jetson Orin), Armv8.2-A", **_ARM64),
    "neoverse-n1": Preset(cpu="neoverse-n1", about="Neoverse N1 servers (Ampere Altra, AWS Graviton2), Armv8.2-A",
                          **_ARM64),
    "armv7": Preset("armv7", "armv7a-linux-gnueabihf", "cortex-a7",
                    "32-bit Arm Cortex-A7/A9 class, hard-float, NEON and VFPv4", mattr=("+neon", "+vfp4"),
                    extra={"mfloat-abi": "hard"}, cross="arm-linux-gnueabihf", debian="g++-arm-linux-gnueabihf",
                    qemu="qemu-arm"),
    "riscv64": Preset("riscv64", "riscv64-linux-gnu", "generic-rv64", "64-bit RISC-V RV64GC (no vector extension)",
                      mattr=("+m", "+a", "+f", "+d", "+c"), extra={"mabi": "lp64d"}, cross="riscv64-linux-gnu",
                      debian="g++-riscv64-linux-gnu", qemu="qemu-riscv64"),
    # LLVM 22 vectorises the kernel with V (vsetivli/vfmacc.vv in model.so). The runtime checks the
    # AT_HWCAP "v" bit, which Linux reports from 6.5 on, and qemu-user with -cpu rv64,v=true.
    "riscv64-rvv": Preset("riscv64", "riscv64-linux-gnu", "generic-rv64",
                          "64-bit RISC-V RV64GCV (vector extension 1.0, Linux 6.5+)",
                          mattr=("+m", "+a", "+f", "+d", "+c", "+v"), extra={"mabi": "lp64d"},
                          cross="riscv64-linux-gnu", debian="g++-riscv64-linux-gnu", qemu="qemu-riscv64",
                          qemu_cpu="rv64,v=true,vlen=128"),
    # Microcontrollers (no OS): the model becomes a static C library (kd_edge.compiler.static)
    "cortex-m4f": Preset("armv7em", "thumbv7em-none-eabihf", "cortex-m4",
                         "Cortex-M4F microcontrollers (STM32F4, nRF52, ...): single-precision FPU, bare metal",
                         mattr=("+vfp4d16sp",), gcc_flags=("-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16"),
                         qemu_machine="mps2-an386", **_CORTEX_M),
    "cortex-m7": Preset("armv7em", "thumbv7em-none-eabihf", "cortex-m7",
                        "Cortex-M7 microcontrollers (STM32F7/H7, i.MX RT): FPv5 FPU, bare metal",
                        mattr=("+fp-armv8d16sp",), gcc_flags=("-mcpu=cortex-m7", "-mfpu=fpv5-sp-d16"),
                        qemu_machine="mps2-an500", **_CORTEX_M),
    "cortex-m33": Preset("armv8m", "thumbv8m.main-none-eabihf", "cortex-m33",
                         "Cortex-M33 microcontrollers (STM32U5/L5, nRF53/54): Armv8-M with FPU, bare metal",
                         mattr=("+fp-armv8d16sp", "+dsp"), gcc_flags=("-mcpu=cortex-m33", "-mfpu=fpv5-sp-d16"),
                         qemu_machine="mps2-an505", **_CORTEX_M),
}
TARGETS = tuple(PRESETS)
# Keys a target dict may hold (kd_edge.compile(target={...})).
_DICT_KEYS = {"triple", "cpu", "features", "arch", "cross", "debian", "qemu", "mabi", "mfloat-abi"}
_ARCH_OF_TRIPLE = {"x86_64": "x86_64", "aarch64": "aarch64", "riscv64": "riscv64"}


@dataclass(frozen=True)
class TargetSpec:
    """A resolved compile target: what TVM is given, what the manifest records, how to link."""

    name: str  # as the user asked for it, e.g. "host", "cortex-a72"
    arch: str  # "x86_64", "aarch64", "armv7", "riscv64"
    triple: str  # LLVM target triple
    cpu: str  # LLVM CPU name, e.g. "emeraldrapids", "cortex-a72"
    features: tuple[str, ...]  # ISA features the code may use, as the target's Linux names them
    tvm_target: dict  # the dict handed to tvm.target.Target
    lanes: int  # float32 SIMD lanes: the kernel's points per vector
    cross: str = ""  # cross compiler prefix ("" for the host's compiler)
    debian: str = ""  # Debian package with the cross compiler
    qemu: str = ""  # qemu-user binary that runs the target here ("" for the host)
    qemu_cpu: str = ""  # qemu's -cpu option for it ("" for its default CPU)
    bare_metal: bool = False  # a microcontroller: static artifacts only
    gcc_flags: tuple[str, ...] = ()  # what its GCC compiles C for it with, beside -mthumb -mfloat-abi=hard
    qemu_machine: str = ""  # the qemu-system board that emulates it ("" if none is used)

    @property
    def is_host_arch(self) -> bool:
        return self.arch == host_arch()

    def manifest_entry(self) -> dict:
        return {"name": self.name, "arch": self.arch, "triple": self.triple, "cpu": self.cpu,
                "features": list(self.features), "tvm": self.tvm_target}

    def compiler(self) -> str:
        """The C++ compiler that links this target's shared library (for a microcontroller, the C
        compiler that builds its static library); raises naming the package."""
        if not self.cross:
            return ""
        cxx = f"{self.cross}-{'gcc' if self.bare_metal else 'g++'}"
        if shutil.which(cxx) is None:
            raise RuntimeError(f"target {self.name!r} ({self.arch}) is linked with {cxx}, which is not installed: "
                               f"apt-get install {self.debian}")
        return cxx


# Architectures whose kernels are built without LLVM's machine-level loop-invariant code motion.
# With it, LLVM hoists every weight constant out of the point and tile loops, and lacking x86's
# memory operands the hoisted values spill: per point of the Burgers student's latency kernel,
# aarch64 (cortex-a72) 1,716 -> 1,228 instructions (257 stack stores -> 21), riscv64's whole
# kernels 31,220 -> 16,756 (latency) and 54,155 -> 41,953 (batch) instructions; armv7 unchanged, so
# left as it was. Counted from the disassembly (benchmarks/count_point_instructions.py): estimates,
# no board here to time them.
NO_MACHINE_LICM = ("aarch64", "riscv64", "armv7em", "armv8m")


def host_arch() -> str:
    """This machine's architecture, as manifests name it."""
    machine = platform.machine()
    return {"amd64": "x86_64", "arm64": "aarch64", "armv7l": "armv7"}.get(machine.lower(), machine)


def simd_lanes(arch: str, llvm_features) -> int:
    """float32 lanes of the widest vector the target's code may use."""
    if arch == "x86_64":
        return 16 if "avx512f" in llvm_features else 8 if "avx2" in llvm_features else 4
    return 4  # NEON's 128-bit registers; scalar RISC-V loops take 4 for the tile shape too


def _features(arch: str, llvm_features) -> tuple[str, ...]:
    names = _CPUINFO_FLAG if arch == "x86_64" else _HWCAP_NAME.get(arch, {})
    return tuple(sorted({names[f] for f in llvm_features if f in names}))


def _from_dict(target: dict) -> Preset:
    unknown = set(target) - _DICT_KEYS
    if unknown:
        raise ValueError(f"unknown target key(s) {sorted(unknown)}; valid: {sorted(_DICT_KEYS)}")
    if "triple" not in target or "cpu" not in target:
        raise ValueError(f"a target dict needs 'triple' and 'cpu' (LLVM names), got {target!r}")
    triple = str(target["triple"])
    head = triple.split("-")[0]
    arch = target.get("arch") or ("armv7" if head.startswith("armv7") else _ARCH_OF_TRIPLE.get(head))
    if arch is None:
        raise ValueError(f"cannot tell the architecture of triple {triple!r}; add 'arch' "
                         f"(x86_64, aarch64, armv7 or riscv64)")
    extra = {k: target[k] for k in ("mabi", "mfloat-abi") if k in target}
    mattr = tuple(target.get("features", ()))
    if any(not (isinstance(f, str) and f[:1] in "+-") for f in mattr):
        raise ValueError(f"target features are LLVM attributes like '+neon', got {list(mattr)}")
    if arch != host_arch() and "cross" not in target:
        same = next((p for p in PRESETS.values() if p.arch == arch and p.cross), None)
        if same is not None:  # link with the preset's toolchain for that architecture
            extra_keys = dict(cross=same.cross, debian=same.debian, qemu=same.qemu)
        else:
            raise ValueError(f"no cross compiler known for {arch}; give 'cross' (its GNU prefix)")
    else:
        extra_keys = {k: target.get(k, "") for k in ("cross", "debian", "qemu")}
    return Preset(arch, triple, str(target["cpu"]), "custom", mattr, extra, **extra_keys)


def resolve_target(target="host") -> TargetSpec:
    """Turn a target name (see PRESETS, `kd-edge targets`) or a dict into a TargetSpec.

    A dict names any LLVM target: {"triple": "aarch64-linux-gnu", "cpu": "cortex-a55",
    "features": ["+neon"]}; optional keys "arch", "cross" (GNU prefix of the cross compiler),
    "mabi", "mfloat-abi".
    """
    import tvm
    from tvm.target import codegen

    if isinstance(target, dict):
        preset, name = _from_dict(target), "custom"
    elif isinstance(target, str) and target in PRESETS:
        preset, name = PRESETS[target], target
    else:
        raise ValueError(f"unknown target {target!r}; valid targets: {', '.join(PRESETS)}, "
                         f"or a dict with an LLVM triple and cpu (kd-edge targets lists them)")
    arch = preset.arch or host_arch()
    triple = preset.triple or codegen.llvm_get_system_triple()
    cpu = preset.cpu or codegen.llvm_get_system_cpu()
    tvm_target = {"kind": "llvm", "mcpu": cpu}
    if preset.triple:
        tvm_target["mtriple"] = preset.triple
    if preset.mattr:
        tvm_target["mattr"] = list(preset.mattr)
    tvm_target.update(preset.extra)
    if arch in NO_MACHINE_LICM and "cl-opt" not in tvm_target:
        tvm_target["cl-opt"] = ["-disable-machine-licm"]
    try:
        llvm_features = codegen.llvm_get_cpu_features(tvm.target.Target(tvm_target))
    except Exception as e:  # TVM raises its own error types for an unknown CPU or triple
        raise ValueError(f"LLVM refuses target {tvm_target}: {e}") from None
    llvm_features = set(llvm_features) | {f[1:] for f in preset.mattr if f.startswith("+")}
    return TargetSpec(name, arch, triple, cpu, _features(arch, llvm_features), tvm_target,
                      simd_lanes(arch, llvm_features), preset.cross, preset.debian, preset.qemu, preset.qemu_cpu,
                      preset.bare_metal, preset.gcc_flags, preset.qemu_machine)


def describe_targets() -> list[tuple[str, str, str, str]]:
    """(name, arch, LLVM cpu, what it assumes) per preset, for `kd-edge targets`."""
    return [(name, p.arch or host_arch(), p.cpu or "(this CPU)", p.about) for name, p in PRESETS.items()]
