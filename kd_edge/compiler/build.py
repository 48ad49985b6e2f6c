"""kd_edge.compile: build a PyTorch module into an artifact directory."""

from pathlib import Path

import torch

from kd_edge.compiler.frontend import check_example, to_relax
from kd_edge.compiler.manifest import (
    LIBRARY_NAME, MANIFEST_FORMAT, MANIFEST_NAME, sha256_file, weights_sha256, write_manifest)
from kd_edge.compiler.target import resolve_target


def _column_names(names, width: int, default_prefix: str, what: str) -> list[str]:
    if names is None:
        return [f"{default_prefix}{i}" for i in range(width)]
    names = [str(n) for n in names]
    if len(names) != width:
        raise ValueError(f"{what} has {len(names)} names {names} but the model has {width} {what} columns")
    return names


def compile(module: torch.nn.Module, example_input, out_dir, target: str = "host",
            input_names=None, output_names=None) -> Path:
    """Compile `module` for the CPU and write an artifact directory; return its path.

    example_input: (n_points, n_inputs) float32, used to trace; the artifact accepts any
    number of points. out_dir gets manifest.json and the shared library model.so.
    input_names / output_names label the columns (default x0.. and y0..).
    """
    import tvm

    x, n_outputs = check_example(module, example_input)
    inputs = _column_names(input_names, x.shape[1], "x", "input")
    outputs = _column_names(output_names, n_outputs, "y", "output")
    spec = resolve_target(target)

    relax_module = to_relax(module, x)
    executable = tvm.compile(relax_module, target=tvm.target.Target(spec.tvm_target))

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST_NAME).unlink(missing_ok=True)  # no stale manifest beside a new library
    library = out / LIBRARY_NAME
    executable.export_library(str(library))
    write_manifest(out, {
        "format": MANIFEST_FORMAT,
        "library": LIBRARY_NAME,
        "library_sha256": sha256_file(library),
        "inputs": inputs,
        "input_width": len(inputs),
        "outputs": outputs,
        "output_width": len(outputs),
        "dtype": "float32",
        "tvm_version": tvm.__version__,
        "target": spec.manifest_entry(),
        "source": {
            "framework": "torch",
            "torch_version": torch.__version__,
            "module_class": f"{type(module).__module__}.{type(module).__qualname__}",
            "weights_sha256": weights_sha256(module),
        },
    })
    return out
