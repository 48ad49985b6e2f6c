"""Measure stage: accuracy of compiled students against references, latency against peers."""

from kd_edge.measure.accuracy import verify_artifact
from kd_edge.measure.latency import measure_latency
from kd_edge.measure.peers import onnx_session

__all__ = ["measure_latency", "onnx_session", "verify_artifact"]
