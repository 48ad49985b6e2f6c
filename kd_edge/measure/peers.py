"""The same student in the peer runtimes the benchmarks compare against."""

import io
import warnings


def onnx_session(model, n_inputs: int, threads: int):
    """An ONNX Runtime CPU session of a torch module with a dynamic batch, on `threads` threads."""
    import onnxruntime
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its own deprecation
        torch.onnx.export(model, (torch.zeros(4, n_inputs),), buffer, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, dynamo=False)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
