"""Which CPU an artifact is compiled for, and which ISA features it may then use."""

import platform
from dataclasses import dataclass

# LLVM feature name -> Linux /proc/cpuinfo flag. Only features a runtime can check are
# recorded; LLVM's list also holds tuning flags ("fast-gather", "prefer-256-bit") that
# are not instructions.
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

# Named targets: "host" is this machine's CPU; "x86-64-v3" is portable to any x86-64 CPU
# with AVX2, FMA and BMI2 (Haswell, 2013, and later; Zen 1 and later).
TARGETS = {"host": None, "x86-64-v3": "x86-64-v3"}


@dataclass(frozen=True)
class TargetSpec:
    """A resolved compile target: what TVM is given and what the manifest records."""

    name: str  # as the user asked for it, e.g. "host"
    arch: str  # "x86_64"
    triple: str  # LLVM target triple of the host toolchain
    cpu: str  # LLVM CPU name, e.g. "emeraldrapids"
    features: tuple[str, ...]  # /proc/cpuinfo names of the ISA features the code may use
    tvm_target: dict  # the dict handed to tvm.target.Target

    def manifest_entry(self) -> dict:
        return {"name": self.name, "arch": self.arch, "triple": self.triple, "cpu": self.cpu,
                "features": list(self.features), "tvm": self.tvm_target}


def resolve_target(target: str = "host") -> TargetSpec:
    """Turn a target name into a TargetSpec: "host" (this CPU) or "x86-64-v3" (portable AVX2)."""
    import tvm
    from tvm.target import codegen

    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; valid targets: {', '.join(TARGETS)}")
    cpu = TARGETS[target] or codegen.llvm_get_system_cpu()
    tvm_target = {"kind": "llvm", "mcpu": cpu}
    llvm_features = codegen.llvm_get_cpu_features(tvm.target.Target(tvm_target))
    features = tuple(sorted(_CPUINFO_FLAG[f] for f in llvm_features if f in _CPUINFO_FLAG))
    return TargetSpec(target, platform.machine(), codegen.llvm_get_system_triple(), cpu, features, tvm_target)
