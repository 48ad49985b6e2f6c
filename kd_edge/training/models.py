"""Model files: weights plus everything needed to rebuild and judge them.

A file holds the network architecture, the problem's name and coefficients, the training
config and seed, the metrics measured at the end, and the training history."""

from pathlib import Path

import torch

import kd_edge.problems as problems
from kd_edge.networks import MLP, HardConstrained
from kd_edge.training.config import NetworkConfig

MODEL_FORMAT = 1
KINDS = ("teacher", "student", "scratch")


def build_network(problem, network: NetworkConfig) -> MLP | HardConstrained:
    """An MLP for `problem`: its input/output widths, bounds and periodic inputs, wrapped in the
    problem's hard constraints if the config asks for them."""
    unknown = sorted(set(network.periodic) - set(problem.inputs))
    if unknown:
        raise ValueError(f"network.periodic names {unknown}, but {problem.name}'s inputs are {list(problem.inputs)}")
    lower, upper = problem.bounds
    periodic = {problem.inputs.index(name): period for name, period in network.periodic.items()}
    body = MLP(len(problem.inputs), len(problem.outputs), network.width, network.depth, network.activation,
               lower=lower.tolist(), upper=upper.tolist(), periodic=periodic,
               periodic_harmonics=network.periodic_harmonics, fourier_features=network.fourier_features,
               fourier_scale=network.fourier_scale)
    if network.hard_constraints:
        problem.exact_conditions(network)  # a problem whose constraint needs more says so now
        return constrained(body, problem)
    return body


def constrained(body: MLP, problem) -> HardConstrained:
    if not problem.has_hard_constraints:
        raise ValueError(f"network.hard_constraints is set, but {problem.name} declares no hard constraints")
    return HardConstrained(body, problem.constrain)


def save_model(path, model: MLP | HardConstrained, kind: str, problem, config: dict, metrics: dict, history: list) -> Path:
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; valid: {', '.join(KINDS)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": MODEL_FORMAT, "kind": kind, "problem": problem.name,
                "coefficients": dict(problem.coefficients), "architecture": model.arch, "config": config,
                "seed": config.get("seed"), "metrics": metrics, "history": history,
                "multiply_adds": model.multiply_adds(), "state_dict": model.state_dict()}, path)
    return path


def load_model(path, problem: str | None = None, kind: str | None = None) -> MLP | HardConstrained:
    """Rebuild a trained model from its file. If problem or kind is given, the file must match.
    The file's metadata is on the returned module as `.info`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    try:
        data = torch.load(path, weights_only=True)  # plain tensors and containers: no code runs
    except Exception as e:
        raise ValueError(f"{path} is not a kd-edge model file ({type(e).__name__}: {e})") from None
    required = {"format", "kind", "problem", "coefficients", "architecture", "state_dict"}
    if not isinstance(data, dict) or not required <= set(data):
        missing = sorted(required - set(data)) if isinstance(data, dict) else sorted(required)
        raise ValueError(f"{path} is not a kd-edge model file (missing {', '.join(missing)})")
    if data["format"] != MODEL_FORMAT:
        raise ValueError(f"{path}: model format {data['format']}, this kd-edge reads {MODEL_FORMAT}")
    if problem is not None and data["problem"] != problem:
        raise ValueError(f"{path} is a model of {data['problem']!r}, not {problem!r}")
    if kind is not None and data["kind"] != kind:
        raise ValueError(f"{path} is a {data['kind']} model, not a {kind}")
    arch = dict(data["architecture"])
    hard = arch.pop("hard_constraints", False)
    model_problem = problems.get(data["problem"], **data["coefficients"])
    model = MLP(**arch)
    if hard:
        model = constrained(model, model_problem)
    try:
        model.load_state_dict(data["state_dict"])
    except RuntimeError as e:
        raise ValueError(f"{path}: weights do not fit the stored architecture: {e}") from None
    model.eval()
    model.info = {k: v for k, v in data.items() if k != "state_dict"}
    model.problem = model_problem
    return model
