"""PyTorch -> TVM Relax: torch.export with a dynamic batch dimension, weights bound as constants."""

import warnings
from pathlib import Path

import torch


def check_example(module: torch.nn.Module, example_input) -> tuple[torch.Tensor, int]:
    """Validate the example input and the module's output on it; return (input, output width)."""
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"compile expects a torch.nn.Module, got {type(module).__name__}")
    x = torch.as_tensor(example_input)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"example_input must have shape (n_points, n_inputs), got {tuple(x.shape)}")
    if x.dtype != torch.float32:
        raise TypeError(f"example_input must be float32, got {x.dtype}")
    for name, p in list(module.named_parameters()) + list(module.named_buffers()):
        if p.is_floating_point() and p.dtype != torch.float32:
            raise TypeError(f"kd-edge compiles float32 models; parameter {name!r} is {p.dtype}")
    with torch.no_grad():
        y = module(x)
    if not isinstance(y, torch.Tensor) or y.ndim != 2 or y.shape[0] != x.shape[0]:
        got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"the module must return one tensor of shape (n_points, n_outputs); "
                         f"on input {tuple(x.shape)} it returned {got}")
    return x, int(y.shape[1])


def to_relax(module: torch.nn.Module, x: torch.Tensor):
    """Export `module` with the batch dimension symbolic and import it into a Relax IRModule."""
    from tvm.relax.frontend.torch import from_exported_program

    # torch.export specialises a dimension of size 1, so trace with at least two points.
    trace_input = x if x.shape[0] >= 2 else x.expand(2, -1).clone()
    batch = torch.export.Dim("batch", min=1)
    was_training = module.training
    module.eval()
    try:
        with warnings.catch_warnings():
            # torch 2.13's pytree code trips its own deprecation warning when an exported
            # program is built or copied; nothing a caller can act on.
            warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                                    category=FutureWarning)
            program = torch.export.export(module, (trace_input,), dynamic_shapes=({0: batch},))
            return from_exported_program(program)
    finally:
        module.train(was_training)


def onnx_to_relax(model):
    """An ONNX model (path, bytes or ModelProto) with one (n, d_in) input -> (Relax module, d_in, d_out, name)."""
    import onnx
    from tvm import tirx
    from tvm.relax.frontend.onnx import from_onnx

    path = str(model) if isinstance(model, str) or hasattr(model, "__fspath__") else None
    if path is not None and not Path(path).is_file():
        raise FileNotFoundError(f"no ONNX model at {path}")
    if path is not None or isinstance(model, bytes):
        try:
            model = onnx.load(path, load_external_data=False) if path is not None else onnx.load_from_string(model)
        except Exception as e:  # protobuf's DecodeError names neither the file nor the format
            raise ValueError(f"{path or 'the given bytes'} is not an ONNX model ({type(e).__name__}: {e})") from None
        if path is not None:  # external weights: beside the model file, wherever the caller runs from
            from onnx.external_data_helper import load_external_data_for_model

            missing = [f for f in _external_files(model) if not (Path(path).parent / f).is_file()]
            if missing:
                raise FileNotFoundError(f"{path} keeps its weights in {', '.join(missing)}, which is not beside it "
                                        f"in {Path(path).parent.resolve()}")
            load_external_data_for_model(model, str(Path(path).parent))
    graph = model.graph
    outside = _external_files(model)
    if outside:  # bytes, or a ModelProto loaded without its data: the weights are elsewhere
        raise ValueError(f"this ONNX model keeps its weights in external files ({', '.join(outside)}), which "
                         f"were not loaded: pass the model's path (the files beside it), or onnx.load(path)")
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ValueError(f"kd-edge compiles models with one input and one output; this ONNX model has "
                         f"{len(inputs)} inputs and {len(graph.output)} outputs")
    dims = inputs[0].type.tensor_type.shape.dim
    out_dims = graph.output[0].type.tensor_type.shape.dim
    if len(dims) != 2 or not dims[1].dim_value or len(out_dims) != 2 or not out_dims[1].dim_value:
        raise ValueError("the ONNX model's input and output must have shape (n_points, width) with fixed widths")
    if inputs[0].type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise TypeError("kd-edge compiles float32 ONNX models")
    width = dims[1].dim_value
    # the batch dimension is made symbolic whatever the file says, so any n works
    name = path or "the ONNX model"
    try:
        module = from_onnx(model, shape_dict={inputs[0].name: [tirx.Var("n", "int64"), width]})
    except Exception as e:  # TVM's message names the operators but not the file
        if type(e).__name__ == "OpNotImplemented":  # TVM lists them in no fixed order
            ops = ", ".join(sorted(op.strip() for op in str(e).split(": ", 1)[-1].rstrip(".").split(",")))
            raise ValueError(f"{name} uses operators TVM's ONNX importer does not implement: "
                             f"{ops}. kd-edge compiles ONNX models whose operators TVM imports "
                             f"(Gemm, MatMul, Add, Mul, Tanh, Sin, Sigmoid, Relu, Softplus, Concat, ...): export the "
                             f"network without them, or compile the torch module itself") from None
        raise ValueError(f"TVM's ONNX importer failed on {name} ({type(e).__name__}: {e})") from None
    return module, width, out_dims[1].dim_value, inputs[0].name


def _external_files(model) -> list[str]:
    """The files an ONNX model's initializers keep their data in and that are not loaded, sorted."""
    from onnx.external_data_helper import uses_external_data

    return sorted({e.value for t in model.graph.initializer if uses_external_data(t)
                   for e in t.external_data if e.key == "location"})
