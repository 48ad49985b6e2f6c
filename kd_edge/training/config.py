"""Training settings. Every checkpoint stores the config that made it."""

import dataclasses
from dataclasses import dataclass, field

import torch


@dataclass
class NetworkConfig:
    width: int = 20                # neurons per hidden layer
    depth: int = 4                 # hidden layers
    activation: str = "tanh"       # tanh | sin | gelu | silu
    periodic: dict = field(default_factory=dict)  # {input name: period}: exact periodicity by embedding
    periodic_harmonics: int = 1    # harmonics of each periodic input fed to the network
    fourier_features: int = 0      # random Fourier features of the non-periodic inputs (0: none)
    fourier_scale: float = 1.0     # their frequency scale
    hard_constraints: bool = False  # output through the problem's constrain(): conditions met exactly


@dataclass
class TrainConfig:
    network: NetworkConfig = field(default_factory=NetworkConfig)
    seed: int = 0                  # seeds torch and the samplers: runs are reproducible
    adam_steps: int = 1000         # first stage: Adam (a warm-up: on Burgers it stalls near 45% error)
    adam_lr: float = 1e-3          # initial learning rate, decayed exponentially ...
    adam_lr_final: float = 1e-4    # ... to this by the last Adam step
    lbfgs_steps: int = 10000       # second stage: full-batch L-BFGS iterations, where PINNs converge (0: skip)
    n_collocation: int = 4000      # PDE residual points
    n_condition: int = 300         # points per initial/boundary condition
    sampler: str = "sobol"         # uniform | lhs | sobol
    resample_every: int = 500      # Adam steps between fresh collocation sets (0: fixed set)
    adaptive_fraction: float = 0.0  # share of a fresh set chosen where the residual is largest (RAR)
    lbfgs_resample_every: int = 0  # L-BFGS iterations between fresh collocation sets, each with a new
    #                                L-BFGS history (0: one set for the whole stage, fresh only on a stall)
    condition_weight: float = 10.0  # weight of each initial/boundary term (initial value)
    adaptive_weights: bool = False  # rebalance condition weights by gradient norms (Wang et al. 2021);
    #                                 on Burgers it ended at 17% error where fixed weights reached 1.3%
    weight_update_every: int = 200  # Adam steps between those rebalances
    causal_chunks: int = 0         # > 0: causal weighting over this many time slices (Wang et al. 2022)
    causal_epsilon: float = 1.0    # its tolerance: weight of slice i = exp(-eps * loss of slices before i)
    time_weight_rate: float = 0.0  # > 0: the squared residual at time t weighs exp(rate (t_end - t)), mean 1
    precision: str = "float32"     # float32 | float64: the training arithmetic. In float32, L-BFGS's line search
    #                                 stalls once the loss is small (wave: a restart every few iterations, no
    #                                 progress after step 5,600); float64 cost about the same per step there
    #                                 (111 against 107 ms per L-BFGS iteration, one thread).
    #                                 Models are saved, evaluated and compiled in float32 either way.
    log_every: int = 100           # steps between history records (and progress-bar updates)
    checkpoint_every: int = 500    # steps between resumable checkpoints

    def __post_init__(self):
        training_dtype(self.precision)  # a clear error for an unknown precision, at load time
        for name in ("resample_every", "lbfgs_resample_every", "causal_chunks", "time_weight_rate"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0: off), got {getattr(self, name)}")
        for name in ("adam_steps", "lbfgs_steps", "weight_update_every", "condition_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("n_collocation", "n_condition", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("adam_lr", "adam_lr_final"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.adaptive_fraction <= 1:
            raise ValueError(f"adaptive_fraction must be within [0, 1], got {self.adaptive_fraction}")
        if self.network.width < 1 or self.network.depth < 1:
            raise ValueError(f"network width and depth must be >= 1, got {self.network.width} and "
                             f"{self.network.depth}")


@dataclass
class DistillConfig(TrainConfig):
    distill_weight: float = 1.0    # lambda: weight of the distillation term ...
    distill_weight_final: float = 1.0  # ... reached linearly by the end of training (a schedule)
    temperature: float = 1.0       # T: teacher and student outputs are Gaussians of std T * (output scale)
    temperature_final: float = 1.0  # reached linearly by the end of training
    n_distill: int = 4000          # fresh points per step where the student is compared with the teacher
    match_derivatives: bool = False  # also match the teacher's first derivatives (u_x, u_t, ...)
    derivative_weight: float = 0.1  # weight of that term relative to the distillation term

    def __post_init__(self):
        super().__post_init__()
        for name in ("distill_weight", "distill_weight_final", "derivative_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("temperature", "temperature_final"):  # a Gaussian's width: 0 divides by zero
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.n_distill < 1:
            raise ValueError(f"n_distill must be >= 1, got {self.n_distill}")


def from_dict(cls, values: dict, where: str = "config"):
    """Build a config dataclass from a plain dict; unknown keys are errors naming the valid ones."""
    if not isinstance(values, dict):
        raise TypeError(f"{where} must be a table of settings, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown key {', '.join(map(repr, unknown))}; valid keys: {', '.join(fields)}")
    kwargs = {}
    for name, value in values.items():
        if name == "network":
            value = from_dict(NetworkConfig, value, f"{where}.network")
        else:
            f = fields[name]
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            expected = type(default)
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise TypeError(f"{where}.{name} must be {expected.__name__}, got {value!r}")
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except ValueError as e:  # a value checked by the dataclass itself (precision)
        raise ValueError(f"{where}: {e}") from None


def to_dict(config) -> dict:
    return dataclasses.asdict(config)


PRECISIONS = {"float32": torch.float32, "float64": torch.float64}


def training_dtype(precision: str) -> torch.dtype:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    return PRECISIONS[precision]


def changed_settings(old: dict, new: dict) -> list[str]:
    """The settings (top-level keys of two to_dict configs) whose values differ, sorted. A key
    one side lacks (a file written before the setting existed; also inside `network`) counts as its default."""
    defaults = to_dict(DistillConfig())

    def value(config, key):
        v = config.get(key, defaults.get(key))
        return {**defaults["network"], **v} if key == "network" and isinstance(v, dict) else v

    return sorted(k for k in old.keys() | new.keys() if value(old, k) != value(new, k))


def can_continue(old: dict, new: dict) -> bool:
    """Whether a run made with `old` can continue under `new`: the L-BFGS budget grows and nothing
    else changes but, possibly, the precision (a float32 run carried on in float64)."""
    changed = set(changed_settings(old, new))
    return "lbfgs_steps" in changed and changed <= {"lbfgs_steps", "precision"} \
        and new["lbfgs_steps"] > old["lbfgs_steps"]


@dataclass
class CompileConfig:
    target: str = "host"           # host, x86-64-v3 (portable AVX2), ...: `kd-edge targets`; other archs: `kd-edge bundle`
    backend: str = "auto"          # auto | fused | vm
    out_of_domain: str = "flag"    # the artifact's default policy: flag | clamp | reject
    tune_trials: int = 0           # > 0: time up to this many fused-kernel variants on this CPU (cached)


@dataclass
class BenchConfig:
    seconds: float = 0.2           # time spent per (backend, batch size) measurement
    batch_sizes: list = field(default_factory=lambda: [1, 64])  # plus the full reference grid
    threads: int = 1               # threads for every backend (PyTorch, ONNX Runtime, kd-edge)
    control_loop_seconds: float = 2.0  # the C++ control-loop example's run (0: skip it)
