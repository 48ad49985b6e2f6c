"""`kd-edge run PROBLEM`: every stage from training to the report, each skipped when its output
is up to date (a SHA-256 of its inputs' contents and its config, kept in <out>/stamps.json)."""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import kd_edge
import kd_edge.problems as problems
from kd_edge.compiler.build import check_settings
from kd_edge.measure.latency import tool
from kd_edge.training.config import to_dict
from kd_edge.training.parallel import DEVICES, current_group, resolve_device
from kd_edge.training.pipeline import STAGES as TRAIN_STAGES
from kd_edge.training.pipeline import default_config, load_config, train_stages, write_metrics

ROOT = Path(kd_edge.__file__).resolve().parent.parent  # the repository (editable install)
STAGES = ("teacher", "student", "scratch", "compile", "verify", "control_loop", "bench", "report")


def file_hash(path: Path) -> str:
    path = Path(path)
    if path.is_dir():
        return hashlib.sha256("".join(file_hash(p) for p in sorted(path.iterdir()) if p.is_file()).encode()).hexdigest()
    return kd_edge._runtime.sha256_file(str(path))


def code_hash(*packages: str) -> str:
    """Hash of the Python sources of kd_edge subpackages/modules, so that a changed compiler or
    report reruns its stage. (Training stages hash only their config: retraining for hours on
    every code edit would help nobody; delete the models to force it.)"""
    base = Path(kd_edge.__file__).resolve().parent
    files = sorted(f for p in packages for f in ((base / p).rglob("*.py") if (base / p).is_dir() else [base / f"{p}.py"]))
    return stamp([file_hash(f) for f in files])


def stamp(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def writable_directory(path: Path):
    """Create `path` if needed and show it takes files, or say plainly why not."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"output directory {path} is a file; --out needs a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise ValueError(f"cannot write to the output directory {path}: {e.strerror or e}") from None


def write_atomically(path: Path, text: str):
    """Readers see the old file or the new one, never a part of it."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_stamps(path: Path) -> dict:
    """The stamps of earlier runs; an unreadable file means every stage reruns (with a warning)."""
    if not path.exists():
        return {}
    try:
        stamps = json.loads(path.read_text())
        if isinstance(stamps, dict):
            return stamps
    except (ValueError, UnicodeDecodeError):
        pass
    print(f"kd-edge: warning: {path} is damaged (not a JSON object); every stage reruns", file=sys.stderr)
    return {}


class Run:
    """One problem's pipeline in `out`: models (shipped, or trained into out/models), artifact,
    accuracy.json, control_loop.txt, bench.json, report.html and summary.json.
    device (cpu | cuda | auto) overrides the config's. Under torch.distributed every rank trains
    together; rank 0 alone writes files, prints, and runs the stages after training."""

    def __init__(self, problem: str, out=None, config=None, overrides=(), retrain=False, progress=True, device=None):
        self.group = current_group()
        self.out = Path(out) if out else ROOT / "build" / "kd-edge" / problem
        self.config_path = Path(config) if config else ROOT / "training" / "configs" / f"{problem}.toml"
        if config is None and not self.config_path.is_file() and problem in problems.names():
            # a problem of the user's without a config: a generated default, kept beside the outputs
            writable_directory(self.out)
            self.config_path = self.out / "config.toml"
            if self.group.is_main:
                self.config_path.write_text(default_config(problems.get(problem)))
            self.group.barrier()
            if self.group.is_main:
                print(f"kd-edge: no config for {problem}: using a generated default, {self.config_path} "
                  f"(`kd-edge init-config {problem}` writes one to edit)", file=sys.stderr)
            config = self.config_path
        if not self.config_path.is_file():
            known = sorted(p.stem for p in (ROOT / "training" / "configs").glob("*.toml"))
            raise FileNotFoundError(f"no config {self.config_path} for {problem!r}; configs exist for: {', '.join(known)}")
        self.cfg = load_config(self.config_path, overrides)
        if device is not None:
            if device not in DEVICES:
                raise ValueError(f"unknown device {device!r}; valid: {', '.join(DEVICES)}")
            self.cfg["device"] = device
        self.problem = self.cfg["problem"]
        b = self.cfg["bench"]
        if not b.batch_sizes or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in b.batch_sizes):
            raise ValueError(f"{self.config_path}: [bench].batch_sizes must be a list of positive integers, "
                             f"got {b.batch_sizes!r}")
        if b.seconds <= 0 or b.threads < 1 or b.control_loop_seconds < 0:
            raise ValueError(f"{self.config_path}: [bench] needs seconds > 0, threads >= 1 and control_loop_seconds "
                             f">= 0, got {b.seconds}, {b.threads}, {b.control_loop_seconds}")
        if self.problem.name != problem:
            raise ValueError(f"{self.config_path} is for problem {self.problem.name!r}, not {problem!r}")
        c = self.cfg["compile"]
        spec = check_settings(c.target, c.backend, c.out_of_domain, tune_trials=c.tune_trials)
        if not spec.is_host_arch:
            raise ValueError(f"{self.config_path}: [compile].target {c.target!r} is for {spec.arch}, and the stages "
                             f"after compile run the artifact here; use `kd-edge bundle {problem} --target "
                             f"{c.target} --out DIR` for another architecture")
        writable_directory(self.out)
        shipped = ROOT / "models" / problem
        # Shipped models match the shipped config only: another config, or overrides of what
        # trains them, means training.
        training_changed = config is not None or any(o.split(".")[0].strip() in ("teacher", "student", "coefficients")
                                                     for o in overrides)
        self.retrain = retrain or training_changed or not all((shipped / f"{s}.pt").exists() for s in TRAIN_STAGES)
        self.models = self.out / "models" if self.retrain else shipped
        if self.retrain:
            resolve_device(self.cfg["device"])  # --device cuda without CUDA: said before any work
        self.progress = progress
        self.stamps_path = self.out / "stamps.json"
        self.stamps = read_stamps(self.stamps_path)
        self.group.barrier()  # every rank read the stamps before rank 0 changes them
        self.log = []  # (stage, "ran" | "skipped" | "shipped", seconds)

    # --- stage bookkeeping -------------------------------------------------------
    def save_stamps(self):
        if self.group.is_main:
            write_atomically(self.stamps_path, json.dumps(self.stamps, indent=2) + "\n")

    def model_file(self, stage):
        return self.models / f"{stage}.pt"

    def inputs(self, stage) -> list:
        # where training runs (device) is not what it makes: a stage is not redone for it
        c = {k: to_dict(v) for k, v in self.cfg.items() if k not in ("problem", "device")}
        problem = [self.problem.name, self.problem.coefficients]
        m = lambda s: file_hash(self.model_file(s))  # noqa: E731
        artifact = lambda: file_hash(self.out / "artifact" / "manifest.json")  # noqa: E731 (holds the library's sha)
        return {
            "teacher": lambda: [problem, c["teacher"]],
            "student": lambda: [problem, c["student"], m("teacher")],
            "scratch": lambda: [problem, c["student"]],
            "compile": lambda: [m("student"), c["compile"], code_hash("compiler")],
            "verify": lambda: [problem, m("student"), artifact(), code_hash("measure")],
            "control_loop": lambda: [artifact(), c["bench"]["control_loop_seconds"], tool("kd-edge-control-loop")],
            "bench": lambda: [m("teacher"), artifact(), c["bench"], code_hash("measure")],
            "report": lambda: [m(s) for s in TRAIN_STAGES] + [file_hash(self.out / f) for f in
                                                             ("accuracy.json", "control_loop.txt", "bench.json")]
            + [code_hash("report", "cli/stages")],
        }[stage]()

    def outputs(self, stage) -> list[Path]:
        return {"compile": [self.out / "artifact" / "manifest.json"], "verify": [self.out / "accuracy.json"],
                "control_loop": [self.out / "control_loop.txt"], "bench": [self.out / "bench.json"],
                "report": [self.out / "report.html", self.out / "summary.json", self.out / "fields.png"],
                }.get(stage, [self.model_file(stage)])

    def execute(self, last: str = "report") -> list:
        """Run the stages up to and including `last`, skipping those up to date."""
        if last not in STAGES:
            raise ValueError(f"unknown stage {last!r}; valid: {', '.join(STAGES)}")
        for stage in STAGES[:STAGES.index(last) + 1]:
            if stage not in TRAIN_STAGES and not self.group.is_main:
                break  # the stages after training are rank 0's
            start = time.perf_counter()
            if stage in TRAIN_STAGES and not self.retrain:
                self.log.append((stage, "shipped", 0.0))
                continue
            key = stamp(stage, self.inputs(stage))
            if self.stamps.get(stage) == key and all(p.exists() for p in self.outputs(stage)):
                self.log.append((stage, "skipped", 0.0))
                continue
            if self.group.is_main:
                print(f"== {self.problem.name}: {stage}", flush=True)
            # Forget the old stamp before touching the outputs: a run killed in between leaves
            # no stamp, so the next run redoes the stage instead of trusting half-written files.
            if self.stamps.pop(stage, None) is not None:
                self.save_stamps()
            if stage in TRAIN_STAGES:
                self.train(stage, key)
            else:
                getattr(self, f"stage_{stage}")()
            self.stamps[stage] = key
            self.save_stamps()
            self.log.append((stage, "ran", time.perf_counter() - start))
        return self.log

    # --- the stages --------------------------------------------------------------
    def train(self, stage, key):
        """Train one model. An interrupted run with the same inputs resumes from its checkpoint;
        a checkpoint made from other inputs (say, the student of an earlier teacher) is dropped."""
        checkpoints = self.out / "checkpoints" / self.problem.name
        if self.group.is_main:
            if self.stamps.get(f"{stage}.started") != key:
                (checkpoints / f"{stage}.ckpt").unlink(missing_ok=True)
            self.model_file(stage).unlink(missing_ok=True)
        self.stamps[f"{stage}.started"] = key
        self.save_stamps()
        self.group.barrier()
        train_stages(self.cfg, self.models, checkpoints, (stage,), self.progress)

    def load(self, kind):
        return kd_edge.load_model(self.model_file(kind), problem=self.problem.name, kind=kind)

    def stage_compile(self):
        c = self.cfg["compile"]  # checked in __init__
        student = self.load("student")
        kd_edge.compile(student, torch.zeros(4, len(self.problem.inputs)), self.out / "artifact", target=c.target,
                        backend=c.backend, input_names=self.problem.inputs, output_names=self.problem.outputs,
                        out_of_domain=c.out_of_domain, tune_trials=c.tune_trials, progress=self.progress)

    def stage_verify(self):
        from kd_edge.measure import verify_artifact

        result = verify_artifact(self.problem, self.load("student"), self.out / "artifact")
        (self.out / "accuracy.json").write_text(json.dumps(result, indent=2) + "\n")

    def stage_control_loop(self):
        seconds = self.cfg["bench"].control_loop_seconds
        loop = tool("kd-edge-control-loop")
        if seconds <= 0:
            text = "skipped (bench.control_loop_seconds = 0)"
        elif loop is None:
            raise FileNotFoundError("kd-edge-control-loop is not installed beside this Python or on PATH (make build)")
        else:
            text = subprocess.run([loop, str(self.out / "artifact"), "--rate", "1000", "--seconds", str(seconds)],
                                  check=True, capture_output=True, text=True).stdout
        (self.out / "control_loop.txt").write_text(text)

    def stage_bench(self):
        from kd_edge.measure import measure_latency

        b = self.cfg["bench"]
        rows = measure_latency(self.problem, self.load("teacher"), self.load("student"), self.out / "artifact",
                               b.batch_sizes, b.threads, b.seconds, self.progress)
        (self.out / "bench.json").write_text(json.dumps({"threads": b.threads, "rows": rows}, indent=2) + "\n")

    def summary(self) -> dict:
        metrics_file = self.models / "metrics.json"
        # train_stages rewrites metrics.json after every training stage; evaluate only if it is missing
        metrics = (json.loads(metrics_file.read_text()) if metrics_file.exists()
                   else write_metrics(self.problem, self.models))
        manifest = json.loads((self.out / "artifact" / "manifest.json").read_text())
        bench = json.loads((self.out / "bench.json").read_text()) if (self.out / "bench.json").exists() else {}
        frontier_file = self.models / "frontier.json"  # training/frontier.py --measure writes it
        return {"problem": self.problem.name, "metrics": metrics,
                "models": f"trained by this run in {self.models}" if self.retrain else f"shipped, {self.models}",
                "artifact": str(self.out / "artifact"), "runtime": manifest["runtime"]["kind"],
                "target": manifest["target"].get("cpu", "?"),
                "multiply_adds": manifest["runtime"].get("multiply_adds"),
                "accuracy": json.loads((self.out / "accuracy.json").read_text()),
                "bench": bench.get("rows", []), "bench_threads": bench.get("threads", 1),
                "control_loop": (self.out / "control_loop.txt").read_text(),
                "frontier": json.loads(frontier_file.read_text()) if frontier_file.exists() else None}

    def stage_report(self):
        from kd_edge.report import write_problem_report
        from kd_edge.report.figures import fields, frontier, training_curves

        summary = self.summary()
        models = {kind: self.load(kind) for kind in TRAIN_STAGES}
        figures = {"fields": fields(self.problem, models["teacher"], models["student"]),
                   "training": training_curves(models)}
        if summary["frontier"]:
            figures["frontier"] = frontier(summary["frontier"]["rows"], f"{self.problem.name}: student sizes")
        write_problem_report(self.out / "report.html", summary, figures)
        (self.out / "fields.png").write_bytes(figures["fields"])
        (self.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
