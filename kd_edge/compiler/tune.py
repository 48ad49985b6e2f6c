"""Tuning of the fused kernel on the host: time its knobs (KernelOptions), keep the fastest.

MetaSchedule has nothing to schedule here: the fused kernel is written loop by loop, with no
TIR blocks for its rules to act on, and it is already vectorised by construction. What does
vary between CPUs is how many independent FMA chains hide the FMA latency and whether the
divider or the FMA units should compute tanh's reciprocal, so those are timed instead. Results
are cached per chain shape (layer widths and activations) and target, so a second compile of
the same shape is instant.
"""

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from kd_edge.compiler.kernel import ENTRY, KernelOptions, build_kernel_module
from kd_edge.problems.base import cache_dir

TUNING_VERSION = 3  # bump when the kernel generator changes, to invalidate cached results
TUNE_POINTS = 16_384  # batch timed per candidate: large enough that per-call overhead is noise
TUNE_SECONDS = 0.25  # timing per candidate (after one warm-up call)

# Most promising first: tune_trials=N times the first N.
CANDIDATES = tuple(KernelOptions(accumulators=a, reciprocal=r)
                   for a, r in [(4, "divide"), (2, "divide"), (4, "newton"), (3, "divide"), (2, "newton"),
                                (1, "divide"), (6, "divide"), (3, "newton"), (1, "newton"), (6, "newton")])


def chain_key(layers, lanes: int, spec) -> str:
    """What a tuning result depends on: the chain's shape and activations, never its weights."""
    shape = [[int(l.weight.shape[1]), int(l.weight.shape[0]), list(l.activations)] + ([sorted(l.skips)] if l.skips else [])
             + ([{"source": l.source, "gate": sorted(set(l.gate[0]) | set(l.gate[2])) if l.gate else []}]
                if l.source is not None or l.gate else [])
             for l in layers]
    if getattr(layers, "epilogue", None) is not None:
        shape.append(layers.signature())
    text = json.dumps({"version": TUNING_VERSION, "layers": shape, "lanes": lanes, "cpu": spec.cpu,
                       "features": list(spec.features), "tvm": spec.tvm_target}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def tuning_cache() -> Path:
    return cache_dir() / "tuning.json"


def _load_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}  # a damaged cache is only a lost speed-up: start a new one
    return data if isinstance(data, dict) else {}


def _time_candidate(layers, lanes: int, spec, options: KernelOptions, x: np.ndarray, workdir: Path) -> float:
    """Median seconds of one serial call on x, through the exported library as the runtime loads it."""
    import tvm

    executable = tvm.compile(build_kernel_module(layers, lanes, options), target=tvm.target.Target(spec.tvm_target))
    library = workdir / f"candidate_{options.accumulators}_{options.reciprocal}.so"
    executable.export_library(str(library))
    kernel = tvm.runtime.load_module(str(library))[ENTRY]
    inputs = tvm.runtime.tensor(x)
    outputs = tvm.runtime.tensor(np.empty((len(x), layers.n_outputs), np.float32))
    kernel(inputs, outputs)
    times, deadline = [], time.perf_counter() + TUNE_SECONDS
    while len(times) < 5 or time.perf_counter() < deadline:
        start = time.perf_counter()
        kernel(inputs, outputs)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def tune_kernel(layers, lanes: int, spec, trials: int, progress: bool = True) -> tuple[KernelOptions, dict]:
    """The fastest of the first `trials` CANDIDATES on this host, and the tuning record.

    A cached result for the same chain shape and target is returned at once if it timed at least
    `trials` candidates. Tuning for another CPU than this one is refused (timings would be of
    the wrong machine)."""
    from tvm.target import codegen

    if not isinstance(trials, int) or isinstance(trials, bool) or trials < 1:
        raise ValueError(f"tune_trials must be a positive integer, got {trials!r}")
    if spec.cpu != codegen.llvm_get_system_cpu():
        raise ValueError(f"tuning times candidates on this CPU ({codegen.llvm_get_system_cpu()}), "
                         f"so it needs target='host', not a {spec.cpu} target")
    trials = min(trials, len(CANDIDATES))
    key, path = chain_key(layers, lanes, spec), tuning_cache()
    record = _load_cache(path).get(key)
    if isinstance(record, dict) and record.get("trials", 0) >= trials:
        return KernelOptions(**record["best"]), dict(record, cached=True)

    x = np.random.default_rng(0).uniform(-1, 1, size=(TUNE_POINTS, int(layers[0].weight.shape[1])))
    x = x.astype(np.float32)
    timings = []
    with tempfile.TemporaryDirectory(prefix="kd_edge_tune_") as tmp:
        bar = tqdm(CANDIDATES[:trials], desc="tuning the fused kernel", disable=not progress, unit="candidate")
        for options in bar:
            seconds = _time_candidate(layers, lanes, spec, options, x, Path(tmp))
            timings.append({**options.as_dict(), "seconds": seconds})
            best = min(timings, key=lambda t: t["seconds"])
            bar.set_postfix(best=f"{best['seconds'] * 1e6:.0f} us ({best['accumulators']}, {best['reciprocal']})")
    best = min(timings, key=lambda t: t["seconds"])
    record = {"trials": trials, "points": TUNE_POINTS, "best": {k: best[k] for k in ("accumulators", "reciprocal")},
              "timings": timings}
    cache = _load_cache(path)  # re-read: another process may have tuned meanwhile
    cache[key] = record
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = path.with_suffix(f".{os.getpid()}.tmp")
    tmp_path.write_text(json.dumps(cache, indent=1) + "\n")
    os.replace(tmp_path, path)
    return KernelOptions(**record["best"]), dict(record, cached=False)
