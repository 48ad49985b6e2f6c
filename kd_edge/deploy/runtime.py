"""Build and install the C++ runtime for a target: CMake with the target's toolchain file."""

import shutil
import subprocess
import sys
from pathlib import Path

from kd_edge.compiler.target import TargetSpec, resolve_target

SOURCE = Path(__file__).resolve().parents[2]  # the checkout: CMakeLists.txt, csrc/, cmake/


def toolchain_file(spec: TargetSpec) -> Path | None:
    """cmake/<arch>.cmake for another architecture, None for the host's."""
    if spec.is_host_arch:
        return None
    path = SOURCE / "cmake" / f"{spec.arch}.cmake"
    if not path.exists():
        raise ValueError(f"no CMake toolchain file for {spec.arch} (expected {path})")
    return path


def cross_tools_missing(target) -> list[str]:
    """Debian packages this machine lacks to build and emulate `target` ([] when it has them)."""
    spec = target if isinstance(target, TargetSpec) else resolve_target(target)
    if spec.is_host_arch:
        return []
    missing = [] if shutil.which(f"{spec.cross}-g++") else [spec.debian]
    return missing + ([] if shutil.which(spec.qemu) else ["qemu-user"])


def _run(command: list[str], what: str, progress: bool) -> None:
    if progress:
        print(f"[runtime] {what}", file=sys.stderr)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({' '.join(command)}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")


def build_runtime(target="host", prefix=None, build_dir=None, with_vm: bool = False, tests: bool = False,
                  progress: bool = True) -> Path:
    """Configure, build and install libkd_edge and its tools for `target`; return the install prefix.

    Without with_vm the runtime runs fused artifacts only and links no TVM library. The build
    tree (default build/runtime-<arch>[-vm]) is reused, so a second call only relinks what changed.
    tests also builds the C++ tests (ctest in the build tree, under qemu-user for another arch).
    """
    spec = target if isinstance(target, TargetSpec) else resolve_target(target)
    if not (SOURCE / "CMakeLists.txt").exists():
        raise RuntimeError(f"building the runtime needs the kd-edge source tree (CMakeLists.txt, csrc/) at {SOURCE}")
    if spec.cross:
        spec.compiler()  # names the Debian package when the cross compiler is missing
    build = Path(build_dir) if build_dir else SOURCE / "build" / f"runtime-{spec.arch}{'-vm' if with_vm else ''}"
    prefix = Path(prefix) if prefix else build / "install"
    configure = ["cmake", "-S", str(SOURCE), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                 f"-DPython_EXECUTABLE={sys.executable}", f"-DCMAKE_INSTALL_PREFIX={prefix.resolve()}",
                 f"-DKD_EDGE_WITH_VM={'ON' if with_vm else 'OFF'}", f"-DKD_EDGE_BUILD_TESTS={'ON' if tests else 'OFF'}",
                 "-DKD_EDGE_BUILD_PYTHON=OFF"]
    if shutil.which("ninja") and not (build / "CMakeCache.txt").exists():  # a generator is chosen once
        configure += ["-G", "Ninja"]
    chain = toolchain_file(spec)
    if chain is not None:
        configure.append(f"-DCMAKE_TOOLCHAIN_FILE={chain}")
    _run(configure, f"configure the {spec.arch} runtime in {build}", progress)
    _run(["cmake", "--build", str(build)], f"build the {spec.arch} runtime", progress)
    _run(["cmake", "--install", str(build), "--strip"], f"install it into {prefix}", progress)
    return prefix
