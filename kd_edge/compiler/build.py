"""kd_edge.compile: build a PyTorch module or an ONNX model into an artifact directory."""

import math
import warnings
from pathlib import Path

from kd_edge.compiler.manifest import (DOMAIN_POLICIES, LIBRARY_NAME, MANIFEST_FORMAT, MANIFEST_NAME, sha256_file,
                                       weights_sha256, write_manifest)
from kd_edge.compiler.static import build_static, model_name
from kd_edge.compiler.target import resolve_target

BACKENDS = ("auto", "fused", "vm")


VM_HOST_ONLY = "a model that is not a dense chain runs on TVM's Relax VM, which kd-edge builds for the host only"


class FallbackWarning(UserWarning):
    """backend="auto" compiled a model that is not a dense chain to the Relax VM."""


def small_max_points(lanes: int) -> int:
    """The most leftover points (fewer than a tile) the latency kernel takes; more go through the
    batch kernel as one padded tile. On AVX-512 (16 lanes, AMD EPYC) a tile cost as much as 7 to 10
    points of the latency kernel; other targets are assumed alike (not measured: no hardware)."""
    return lanes // 2
# Below this many points a call stays on the calling thread: waking the pool costs more.
PARALLEL_MIN_POINTS = 4096
KERNEL_ABI = Path(__file__).with_name("kernel_abi.cc")


def _column_names(names, width: int, default_prefix: str, what: str) -> list[str]:
    if names is None:
        return [f"{default_prefix}{i}" for i in range(width)]
    names = [str(n) for n in names]
    if len(names) != width:
        raise ValueError(f"{what} has {len(names)} names {names} but the model has {width} {what} columns")
    return names


def _domain(model, input_bounds, n_in: int):
    """-> {"lower": [...], "upper": [...]} or None. Default: the box a kd_edge MLP normalises to."""
    if input_bounds is None:
        arch = getattr(model, "arch", None)
        if not isinstance(arch, dict) or arch.get("lower") is None or arch.get("upper") is None:
            return None
        input_bounds = list(zip(arch["lower"], arch["upper"]))
    bounds = [tuple(b) for b in input_bounds]
    if len(bounds) != n_in or any(len(b) != 2 for b in bounds):
        raise ValueError(f"input_bounds must be {n_in} (lower, upper) pairs, one per input, got {input_bounds!r}")
    lower, upper = [float(b[0]) for b in bounds], [float(b[1]) for b in bounds]
    if not all(math.isfinite(v) for v in lower + upper) or any(lo > hi for lo, hi in zip(lower, upper)):
        raise ValueError(f"input_bounds must be finite with lower <= upper, got {input_bounds!r}")
    return {"lower": lower, "upper": upper}


def _is_onnx(model) -> bool:
    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        return True
    return type(model).__name__ == "ModelProto"


def _import(model, example_input):
    """-> (Relax module, n_inputs, n_outputs, source description for the manifest), with every
    computation on constants alone folded (weight normalisation's g v / |v|, for one)."""
    from tvm import relax

    module, n_in, n_out, source = _import_unfolded(model, example_input)
    return relax.transform.FoldConstant()(module), n_in, n_out, source


def _import_unfolded(model, example_input):
    if _is_onnx(model):
        import onnx

        from kd_edge.compiler.frontend import onnx_to_relax

        module, n_in, n_out, name = onnx_to_relax(model)
        return module, n_in, n_out, {"framework": "onnx", "onnx_version": onnx.__version__, "input": name}
    import torch

    from kd_edge.compiler.frontend import check_example, to_relax

    if example_input is None:
        raise ValueError("compiling a torch module needs example_input of shape (n_points, n_inputs)")
    x, n_out = check_example(model, example_input)
    return to_relax(model, x), int(x.shape[1]), n_out, {
        "framework": "torch", "torch_version": torch.__version__,
        "module_class": f"{type(model).__module__}.{type(model).__qualname__}",
        "weights_sha256": weights_sha256(model)}


def check_settings(target="host", backend="auto", out_of_domain="flag", check_outputs=True, tune_trials=0,
                   static=None):
    """Check compile's settings that do not need the model; returns the resolved target. The CLI
    calls it before training, so that a typo does not surface hours later."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if out_of_domain not in DOMAIN_POLICIES:
        raise ValueError(f"unknown out_of_domain {out_of_domain!r}; valid: {', '.join(DOMAIN_POLICIES)}")
    if not isinstance(check_outputs, bool):
        raise TypeError(f"check_outputs must be True or False, got {check_outputs!r}")
    if not isinstance(tune_trials, int) or isinstance(tune_trials, bool) or tune_trials < 0:
        raise ValueError(f"tune_trials must be a non-negative integer, got {tune_trials!r}")
    if tune_trials and backend == "vm":
        raise ValueError("tune_trials tunes the fused kernel; backend='vm' has none")
    if static not in (None, True, False):
        raise TypeError(f"static must be True, False or None (the target decides), got {static!r}")
    spec = resolve_target(target)
    if static or spec.bare_metal:
        if static is False:
            raise ValueError(f"target {spec.name!r} is a microcontroller: its artifacts are static libraries "
                             f"(leave static unset or True)")
        if backend == "vm":
            raise ValueError("a static artifact is the fused kernel in a C library; backend='vm' has none")
        if tune_trials:
            raise ValueError("tune_trials times kernels on this CPU; a static artifact's kernel is not tuned")
    return spec


def compile(model, example_input=None, out_dir=None, target="host", input_names=None, output_names=None,
            backend: str = "auto", input_bounds=None, out_of_domain: str = "flag",
            check_outputs: bool = True, tune_trials: int = 0, progress: bool = True, static: bool | None = None,
            name: str | None = None, derivatives=None, residual: bool = False) -> Path:
    """Compile a model for the CPU and write an artifact directory; return its path.

    model: a torch.nn.Module (traced with example_input, (n_points, n_inputs) float32) or an
      ONNX model (a path, bytes or onnx.ModelProto). The artifact accepts any number of points.
    backend: "fused" compiles a dense chain (linear layers with elementwise activations, skip
      connections, branches and gated products, optionally followed by an elementwise epilogue of
      the inputs and the chain's outputs, such as a hard constraint; see kd_edge.compiler.chain)
      into one kernel the runtime calls directly; "vm" runs TVM's Relax VM, which takes any model;
      "auto" (default) uses "fused" when the model is a dense chain.
    input_names / output_names: column names (default: the problem's, for a model from
      kd_edge.load_model, else x0, x1, ... and y0, ...).
    input_bounds: the training domain, (lower, upper) per input; default: the box a kd_edge MLP
      was built for, else none recorded. out_of_domain ("flag", "clamp" or "reject") and
      check_outputs (refuse non-finite outputs) are the runtime defaults the manifest records;
      a Solver can override them.
    tune_trials: 0 (default) compiles the fused kernel with its default knobs; N > 0 times up to
      N variants of it on this CPU and keeps the fastest (kd_edge.compiler.tune; results are
      cached per chain shape and target, so a second compile is instant). Needs a dense chain
      and target="host". progress shows tuning progress.
    target: where the artifact runs: "host" (this CPU, default), a preset ("x86-64-v3", "aarch64",
      "cortex-a72", "armv7", "riscv64", ...: kd_edge.compiler.target.PRESETS, `kd-edge targets`) or
      a dict naming an LLVM triple and CPU. Other architectures are linked with Debian's cross
      compiler for them and need a dense chain (the fused kernel).
    static: True writes a static C library instead of a shared one: lib<name>.a and <name>.h, a
      plain C entry point `int <name>_predict(const float* in, size_t n_points, float* out)`
      with the runtime's screening, no heap, no libc, no global state (kd_edge.compiler.static).
      Microcontroller targets ("cortex-m4f", "cortex-m7", "cortex-m33") always get one. name: the
      prefix of its symbols (default <problem>_student for a kd-edge student).
    derivatives: names in the problem's notation ("u_x", "u_xx", "u_xt", ...; "jacobian": every
      first derivative of every output), computed by the fused kernel in the same pass as the
      value (kd_edge.compiler.derivatives) and returned as extra output columns after the outputs,
      named as asked. Needs a dense chain of tanh, sin and linear layers (hard constraints included).
    residual: True adds the problem's PDE residual (one column per equation, "residual" or
      "residual_0", ...), traced from the problem's own equations (kd_edge.compiler.residual) and
      computed from the kernel's derivatives. Needs a model that knows its problem (kd_edge.load_model).
      The manifest records a threshold for screening them: RESIDUAL_MULTIPLE x the 99th percentile
      of the model's |residual| on validation points (random points of the domain, never the
      reference grid).
    out_dir gets manifest.json and the shared library model.so (or the static library).
    """
    import tvm

    from kd_edge.compiler.chain import NotADenseChain, describe_layers, epilogue_operations, extract_chain
    from kd_edge.compiler.kernel import (ENTRY, PARALLEL_ENTRY, SMALL_ENTRY, KernelOptions, build_kernel_module,
                                         stack_bytes)
    from kd_edge.compiler.tune import tune_kernel

    spec = check_settings(target, backend, out_of_domain, check_outputs, tune_trials, static)
    static = bool(static) or spec.bare_metal
    if out_dir is None:
        raise ValueError("compile needs out_dir, the artifact directory to write")
    relax_module, n_in, n_out, source = _import(model, example_input)
    domain = _domain(model, input_bounds, n_in)
    if domain is None and out_of_domain != "flag":
        raise ValueError(f"out_of_domain={out_of_domain!r} needs input_bounds (the model records no domain)")
    problem = getattr(model, "problem", None)  # a kd_edge.load_model module knows its PDE's names
    if problem is not None and len(problem.inputs) == n_in and len(problem.outputs) == n_out:
        input_names = problem.inputs if input_names is None else input_names
        output_names = problem.outputs if output_names is None else output_names
    inputs = _column_names(input_names, n_in, "x", "input")
    outputs = _column_names(output_names, n_out, "y", "output")
    if not isinstance(residual, bool):
        raise TypeError(f"residual must be True or False, got {residual!r}")
    residual_trees = _residual(problem, inputs, outputs) if residual else None
    differentiate = derivatives is not None or residual  # the derivative kernel, not the value kernels
    if differentiate:
        from kd_edge.compiler.derivatives import parse_derivatives

        # a residual alone needs no derivative columns of its own
        derivatives = [] if residual and not derivatives else parse_derivatives(derivatives, inputs, outputs)
        if static:
            raise ValueError("derivatives are not compiled into static artifacts yet; compile a shared one")
        if backend == "vm":
            raise ValueError("derivatives are computed by the fused kernel; backend='vm' has none")
        if tune_trials:
            raise ValueError("tune_trials tunes the value kernel; the derivative kernel is not tuned")
    cxx = spec.compiler()  # before the slow part: a missing cross compiler fails first
    layers, fallback_reason = None, None
    if backend != "vm":
        try:
            layers = extract_chain(relax_module)
        except NotADenseChain as e:
            if backend == "fused" or static or differentiate:
                wanted = ("a static artifact" if static else "a residual" if residual
                          else "derivatives" if differentiate else "backend='fused'")
                raise ValueError(f"{wanted} needs a dense chain, but {e}") from None
            if tune_trials:
                raise ValueError(f"tune_trials tunes the fused kernel, which needs a dense chain, but {e}") from None
            fallback_reason = str(e)
            if not spec.is_host_arch:
                raise ValueError(f"target {spec.name!r} ({spec.arch}): {VM_HOST_ONLY} ({e})") from None
            warnings.warn(f"compiling to TVM's Relax VM, not the fused kernel (10-20x slower per call): {e}",
                          FallbackWarning, stacklevel=2)
    if static:
        return _write_static(layers, spec, out_dir, model_name(name, model), inputs, outputs, domain, out_of_domain,
                             check_outputs, source)
    if layers is not None:
        lanes = spec.lanes
        options, tuning = KernelOptions(), None
        if tune_trials:
            options, tuning = tune_kernel(layers, lanes, spec, tune_trials, progress)
        has_small = True
        if differentiate:
            from kd_edge.compiler.derivatives import build_derivative_kernel, build_small_derivative_kernel

            functions = {entry: build_derivative_kernel(layers, lanes, derivatives, entry, parallel, residual_trees)
                         for entry, parallel in ((ENTRY, False), (PARALLEL_ENTRY, True))}
            small_kernel = build_small_derivative_kernel(layers, lanes, derivatives, residual_trees)
            if small_kernel is not None:
                functions[SMALL_ENTRY] = small_kernel
            has_small = small_kernel is not None
            module = tvm.IRModule(functions)
        else:
            module = build_kernel_module(layers, lanes, options)
        executable = tvm.compile(module, target=tvm.target.Target(spec.tvm_target))
        # a chain with product layers has no latency kernel for derivatives (the batch kernel takes every n)
        small = {"small_entry": SMALL_ENTRY, "tile_points": lanes,
                 "small_max_points": small_max_points(lanes)} if has_small else {}
        runtime = {"kind": "fused", "entry": ENTRY, "parallel_entry": PARALLEL_ENTRY,
                   "parallel_min_points": PARALLEL_MIN_POINTS, "simd_lanes": lanes, **small,
                   "kernel": dict(options.as_dict(), tuned_trials=tuning["trials"] if tuning else 0),
                   "stack_bytes": stack_bytes(layers, lanes), **describe_layers(layers)}
        if layers.epilogue is not None:
            runtime["epilogue"] = {"outputs": len(layers.epilogue), "operations": epilogue_operations(layers.epilogue)}
        if derivatives:
            runtime["derivatives"] = [{"name": d, "output": outputs[k], "by": [inputs[q] for q in wrt]}
                                      for d, k, wrt in derivatives]
        if differentiate:
            from kd_edge.compiler.derivatives import derivative_mode

            runtime["derivative_mode"] = derivative_mode(layers, derivatives, residual_trees)
        if residual:
            from kd_edge.compiler.residual import residual_names

            runtime["residual"] = {"names": residual_names(residual_trees[0]), "problem": problem.name,
                                   "coefficients": problem.coefficients, **residual_threshold(model, problem)}
        if differentiate:
            outputs = outputs + [d for d, _, _ in derivatives] + (runtime["residual"]["names"] if residual else [])
    else:
        if not spec.is_host_arch:
            raise ValueError(f"target {spec.name!r} ({spec.arch}): {VM_HOST_ONLY}")
        executable = tvm.compile(relax_module, target=tvm.target.Target(spec.tvm_target))
        runtime = {"kind": "vm", "entry": "main"}
        if fallback_reason:  # auto chose the VM: why the fused kernel could not take this model
            runtime["fallback_reason"] = fallback_reason

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST_NAME).unlink(missing_ok=True)  # no stale manifest beside a new library
    library = out / LIBRARY_NAME
    if layers is not None:  # the fused library carries its own error hook (kernel_abi.cc)
        from tvm.support import cc

        # -s: no symbol tables or debug info in a library meant for a board (a third of its size)
        link = cc.cross_compiler(cxx or cc.get_cc() or "g++", options=["-s"], add_files=[str(KERNEL_ABI)])
        executable.export_library(str(library), fcompile=link)
    else:
        executable.export_library(str(library))
    write_manifest(out, {
        "format": MANIFEST_FORMAT,
        "library": LIBRARY_NAME,
        "library_sha256": sha256_file(library),
        "runtime": runtime,
        "inputs": inputs,
        "input_width": len(inputs),
        "outputs": outputs,
        "output_width": len(outputs),
        "domain": domain,
        "defaults": {"out_of_domain": out_of_domain, "check_outputs": check_outputs},
        "dtype": "float32",
        "tvm_version": tvm.__version__,
        "target": spec.manifest_entry(),
        "source": source,
    })
    return out


def _write_static(layers, spec, out_dir, name, inputs, outputs, domain, out_of_domain, check_outputs, source) -> Path:
    import tvm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST_NAME).unlink(missing_ok=True)  # no stale manifest beside a new library
    runtime = build_static(layers, spec, out, name, inputs, outputs, domain, out_of_domain, check_outputs)
    write_manifest(out, {
        "format": MANIFEST_FORMAT, "library": runtime["library"], "library_sha256": sha256_file(out / runtime["library"]),
        "runtime": runtime, "inputs": inputs, "input_width": len(inputs), "outputs": outputs,
        "output_width": len(outputs), "domain": domain,
        "defaults": {"out_of_domain": out_of_domain, "check_outputs": check_outputs}, "dtype": "float32",
        "tvm_version": tvm.__version__, "target": spec.manifest_entry(), "source": source,
    })
    return out


def _residual(problem, inputs, outputs):
    """(trees, {field key: (output index, input indices)}) of the problem's residual, for the kernel."""
    from kd_edge.compiler.derivatives import parse_derivatives
    from kd_edge.compiler.residual import field_keys, trace_residual

    if problem is None:
        raise ValueError("residual=True compiles the problem's equations, but this model has no problem: load it "
                         "with kd_edge.load_model, or compile its derivatives and evaluate the residual yourself")
    if tuple(inputs) != tuple(problem.inputs) or tuple(outputs) != tuple(problem.outputs):
        raise ValueError(f"residual=True needs the problem's names: inputs {', '.join(problem.inputs)} and outputs "
                         f"{', '.join(problem.outputs)}, got {', '.join(inputs)} and {', '.join(outputs)}")
    trees = trace_residual(problem)
    keys = [k for k in field_keys(trees) if "_" in k]
    parsed = {name: (k, wrt) for name, k, wrt in (parse_derivatives(keys, inputs, outputs) if keys else [])}
    parsed.update({name: (outputs.index(name), ()) for name in field_keys(trees) if "_" not in name})
    return trees, parsed


RESIDUAL_MULTIPLE = 2.0  # the residual threshold: this many times the validation points' 99th percentile
RESIDUAL_VALIDATION_POINTS = 4096


def residual_threshold(model, problem) -> dict:
    """{"threshold": [per equation], "validation_p99": [...], ...}: the model's |residual| on random
    points of the domain (float64 autograd through a copy of it), and a threshold above it. A
    percentile, not the RMS: near a shock a few points carry most of the RMS, which then moves
    2x between two samples of the same domain."""
    import copy

    import numpy as np
    import torch

    points = problem.sample(RESIDUAL_VALIDATION_POINTS, np.random.default_rng(12345), "uniform")
    network = copy.deepcopy(model).double()
    residuals = problem.residual(network, torch.from_numpy(points))
    p99 = [float(np.quantile(np.abs(r.detach().numpy()), 0.99)) for r in residuals]
    return {"validation_p99": p99, "threshold": [RESIDUAL_MULTIPLE * r for r in p99],
            "threshold_rule": f"{RESIDUAL_MULTIPLE:g} x the 99th percentile of |residual| on "
                              f"{RESIDUAL_VALIDATION_POINTS} random points of the domain (seed 12345)"}
