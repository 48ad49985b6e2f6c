"""The same student in the peer runtimes the benchmarks compare against."""

import io
import warnings


def onnx_bytes(model, n_inputs: int) -> bytes:
    """A torch module as an ONNX graph with a dynamic batch: input "x" (n, n_inputs), output "y"."""
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its own deprecation
        torch.onnx.export(model, (torch.zeros(4, n_inputs),), buffer, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, dynamo=False)
    return buffer.getvalue()


def onnx_session(model, n_inputs: int, threads: int):
    """An ONNX Runtime CPU session of a torch module with a dynamic batch, on `threads` threads."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(onnx_bytes(model, n_inputs), options, providers=["CPUExecutionProvider"])


def onnxruntime_library():
    """The ONNX Runtime shared library inside the onnxruntime wheel (its C API, for C++ peers), or None."""
    import glob
    import os

    import onnxruntime

    found = sorted(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), "capi", "libonnxruntime.so*")))
    return found[0] if found else None
