"""The compile path's accuracy target, shared by the host and the cross tests: within 1e-5 of
float64 PyTorch on the whole reference grid, or, where float32 itself cannot get that close
(ONNX Runtime, with exact tanh, is further off), within twice ONNX Runtime's distance."""

import numpy as np

from kd_edge.measure.peers import onnx_session


def check_against_float64(student, x, compiled, exact):
    distance = np.abs(compiled - exact).max()
    print(f"largest distance from float64 on {len(x):,} points: {distance:.2e}")  # shown by pytest -rP
    if distance > 1e-5:
        peer = np.abs(onnx_session(student, x.shape[1], 1).run(None, {"x": x})[0] - exact).max()
        print(f"ONNX Runtime's: {peer:.2e}")
        assert peer > 5e-6 and distance <= 2 * peer, f"{distance:.2e} from float64; ONNX Runtime {peer:.2e}"
    return distance
