"""The kd-edge command line: `kd-edge run burgers` takes a problem from training to a report.

    kd-edge problems                       list the problems (built in, installed, and --problem-file ones)
    kd-edge init-config PROBLEM            write a starting config for a problem of your own
    kd-edge train PROBLEM                  train the teacher (into --out, never over models/)
    kd-edge distill PROBLEM                distilled student and the from-scratch control
    kd-edge compile PROBLEM                the student -> artifact directory
    kd-edge bench PROBLEM                  latency of every backend
    kd-edge report PROBLEM [PROBLEM...]    HTML report per problem, and one across problems
    kd-edge run PROBLEM [--retrain]        all of the above; stages already up to date are skipped
    kd-edge targets                        the CPUs an artifact can be compiled for
    kd-edge bundle PROBLEM --target NAME --out DIR
                                           the student and the runtime built for a board, to copy there

PROBLEM is a name (`kd-edge problems`), FILE.py[:CLASS] (a Problem subclass in your file) or
MODULE:CLASS; --problem-file FILE registers the problems a file defines. A problem without a config
gets a generated one (see init-config).

Training (train, distill, run) takes --device cpu|cuda|auto and runs data-parallel over processes:
`kd-edge train PROBLEM --nproc N` starts N processes through torchrun (the same as
`torchrun --standalone --nproc-per-node N -m kd_edge.cli train PROBLEM`); on several machines, run
`kd-edge train PROBLEM --nproc N --nnodes M --rdzv-endpoint HOST:PORT` on each.

Every command runs the stages before its own that are not up to date. Models come from the shipped
models/PROBLEM/ unless --retrain (train/distill imply it). Configs: training/configs/PROBLEM.toml
or --config; --set section.key=value overrides any value (e.g. --set teacher.adam_steps=500).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from kd_edge.training.parallel import DEVICES, current_group, join, launched_by_torchrun, leave, resolve_device

LAST_STAGE = {"train": "teacher", "distill": "scratch", "compile": "compile", "bench": "bench", "report": "report",
              "run": "report"}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kd-edge", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    problems_cmd = sub.add_parser("problems", help="list the problems")
    problems_cmd.add_argument("--problem-file", action="append", default=[], metavar="FILE",
                              help="also list the problems this Python file defines; repeatable")
    init = sub.add_parser("init-config", help="write a starting config for a problem (for editing)")
    init.add_argument("problem", metavar="PROBLEM")
    init.add_argument("--out", help="file to write (default PROBLEM.toml here); an existing file is kept")
    init.add_argument("--problem-file", action="append", default=[], metavar="FILE")
    sub.add_parser("targets", help="list the compile targets")
    b = sub.add_parser("bundle", help="the student compiled for a target, with the runtime built for it")
    b.add_argument("model", metavar="PROBLEM", help="a problem with a shipped student, a student .pt file or an "
                                                    "artifact directory compiled for the target")
    b.add_argument("--target", default="host", help="a compile target (kd-edge targets); default host")
    b.add_argument("--out", required=True, help="the folder to write")
    b.add_argument("--quiet", action="store_true", help="no progress")
    for name, what in [("train", "train the teacher"), ("distill", "train the distilled and scratch students"),
                       ("compile", "compile the student"), ("bench", "measure latency"),
                       ("report", "write the HTML report(s)"), ("run", "every stage, skipping those up to date")]:
        c = sub.add_parser(name, help=what)
        c.add_argument("problems", nargs="+" if name == "report" else 1, metavar="PROBLEM")
        c.add_argument("--config", help="TOML config (default training/configs/PROBLEM.toml)")
        c.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="override a config value; repeatable")
        c.add_argument("--out", help="output directory (default build/kd-edge/PROBLEM)")
        c.add_argument("--retrain", action="store_true", help="train every model instead of using models/PROBLEM")
        c.add_argument("--quiet", action="store_true", help="no progress bars")
        c.add_argument("--problem-file", action="append", default=[], metavar="FILE",
                       help="a Python file defining Problem subclasses (registered by their name); repeatable")
        if name in ("train", "distill", "run"):
            c.add_argument("--device", choices=DEVICES, help="where training runs (default: the config's device, cpu)")
            c.add_argument("--nproc", type=int, metavar="N",
                           help="train with N processes on this machine (torchrun; gloo on CPU, nccl on CUDA)")
            c.add_argument("--nnodes", type=int, default=1, metavar="M",
                           help="machines taking part (each runs this command); needs --rdzv-endpoint")
            c.add_argument("--rdzv-endpoint", metavar="HOST:PORT",
                           help="where the machines meet (torchrun's c10d rendezvous, hosted by the machine at HOST)")
            c.add_argument("--rdzv-timeout", type=float, default=120.0, metavar="S",
                           help="seconds to wait for every machine to join before giving up (default 120)")
        if name == "report":
            c.add_argument("--readme", help="also write the KD-PINN table into this README (between kd-pinn markers) "
                                            "and its pictures into docs/")
    return p


def print_problems():
    import kd_edge.problems as problems

    for name in problems.names():
        p = problems.get(name)
        box = ", ".join(f"{i} in [{lo:g}, {hi:g}]" for i, lo, hi in zip(p.inputs, p.lower, p.upper))
        print(f"{name:<28} {', '.join(p.outputs)}({', '.join(p.inputs)}): {box}")


def print_targets():
    from kd_edge.compiler.target import describe_targets

    print(f"{'target':<14} {'arch':<8} {'LLVM cpu':<14} assumes")
    for name, arch, cpu, about in describe_targets():
        print(f"{name:<14} {arch:<8} {cpu:<14} {about}")
    print("\nor a dict in Python: kd_edge.compile(..., target={'triple': ..., 'cpu': ..., 'features': [...]})")


def print_summary(run, log):
    """One screen: what ran, what was skipped, and the numbers that matter."""
    print(f"\n{run.problem.name}: " + ", ".join(f"{stage} {status}" + (f" ({sec:.0f} s)" if status == "ran" else "")
                                             for stage, status, sec in log))
    out = run.out
    metrics_file = run.models / "metrics.json"
    if metrics_file.exists():
        m = json.loads(metrics_file.read_text())
        parts = [f"{k} {m[k]['rel_l2']:.2e}" for k in ("teacher", "student", "scratch") if k in m]
        print("relative L2 on the reference grid: " + ", ".join(parts))
    if (out / "accuracy.json").exists():
        a = json.loads((out / "accuracy.json").read_text())
        print(f"compiled student: relative L2 {a['compiled']['rel_l2']:.2e}, max |compiled - PyTorch| "
              f"{a['max_abs_vs_pytorch']:.1e}")
    if (out / "bench.json").exists():
        rows = json.loads((out / "bench.json").read_text())["rows"]
        by = {(r["backend"], "grid" if r["grid"] else r["n"]): r["median_us"] for r in rows}
        cpp1, grid = by.get(("student_kd_edge_cpp", 1)), by.get(("student_kd_edge_cpp", "grid"))
        teacher, ort = by.get(("teacher_pytorch", "grid")), by.get(("student_onnxruntime", "grid"))
        if cpp1 and grid:
            print(f"latency: C++ {cpp1:.2f} us for 1 point, {grid:.0f} us for the grid "
                  f"({teacher / grid:.1f}x faster than the PyTorch teacher, {ort / grid:.1f}x than ONNX Runtime)")
    if (out / "report.html").exists():
        print(f"report: {out / 'report.html'}")


def load_problems(args) -> list[str] | None:
    """Register --problem-file files and installed problems; resolve the command's PROBLEM specs
    into registered names (None for commands without any)."""
    from kd_edge.problems.loading import load_entry_points, load_file, resolve

    load_entry_points()
    for path in getattr(args, "problem_file", []):
        load_file(path)
    specs = getattr(args, "problems", None) or ([args.problem] if getattr(args, "problem", None) else None)
    return [resolve(spec) for spec in specs] if specs else None


def init_config(name: str, out) -> int:
    import kd_edge.problems as problems
    from kd_edge.training.pipeline import default_config

    path = Path(out) if out else Path(f"{name}.toml")
    if path.exists():
        print(f"kd-edge: {path} exists; kept as it is (remove it or pass --out)", file=sys.stderr)
        return 2
    path.write_text(default_config(problems.get(name)))
    print(f"wrote {path}: kd-edge run {name} --config {path}")
    return 0


LAUNCH_OPTIONS = ("--nproc", "--nnodes", "--rdzv-endpoint", "--rdzv-timeout")


def launch_command(args, argv: list[str]) -> list[str]:
    """The torchrun command that runs this command (less its launch options) in args.nproc
    processes per machine."""
    if args.nproc < 1:
        raise ValueError(f"--nproc must be at least 1, got {args.nproc}")
    if args.nnodes < 1:
        raise ValueError(f"--nnodes must be at least 1, got {args.nnodes}")
    if args.rdzv_timeout <= 0:
        raise ValueError(f"--rdzv-timeout must be positive, got {args.rdzv_timeout}")
    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in LAUNCH_OPTIONS:
            skip = True
        elif not arg.startswith(tuple(o + "=" for o in LAUNCH_OPTIONS)):
            rest.append(arg)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(args.nproc)]
    if args.nnodes == 1 and args.rdzv_endpoint is None:
        command.append("--standalone")
    else:
        if args.rdzv_endpoint is None:
            raise ValueError(f"--nnodes {args.nnodes} needs --rdzv-endpoint HOST:PORT (a machine among them, "
                             f"and a free port there) so that the machines can find each other")
        host, sep, port = args.rdzv_endpoint.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"--rdzv-endpoint must look like HOST:PORT, got {args.rdzv_endpoint!r}")
        timeout = f"{args.rdzv_timeout:g}"
        command += ["--nnodes", str(args.nnodes), "--rdzv-backend", "c10d", "--rdzv-endpoint", args.rdzv_endpoint,
                    "--rdzv-id", f"kd-edge-{args.command}", "--rdzv-conf",
                    f"join_timeout={timeout},read_timeout={timeout},timeout={timeout}"]
    return command + ["-m", "kd_edge.cli", *rest]


def launch(args, argv: list[str]) -> int:
    """Start torchrun with this command; its exit status (a rank's failure stops every rank)."""
    try:
        if launched_by_torchrun():
            raise ValueError("--nproc starts torchrun itself; under torchrun, leave it out")
        if args.device is not None:
            resolve_device(args.device)  # --device cuda without CUDA: said here, not once per rank
        command = launch_command(args, argv)
    except ValueError as e:
        print(f"kd-edge: {e}", file=sys.stderr)
        return 2
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.nproc)))
    torchrun = subprocess.Popen(command, env=env)
    # torchrun stops its ranks on SIGTERM or SIGINT; pass a SIGTERM meant for kd-edge on to it
    previous = signal.signal(signal.SIGTERM, lambda *_: torchrun.terminate())
    try:
        status = torchrun.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if status != 0:
        meet = (f"; if the machines never met: is {args.rdzv_endpoint} reachable from every machine, its port free "
                f"on its host, and does every machine run this command within {args.rdzv_timeout:g} s of the "
                f"first?" if args.rdzv_endpoint else "")
        print(f"kd-edge: training stopped (torchrun exit status {status}); torchrun's report above names the "
              f"failing rank and its error{meet}", file=sys.stderr)
    return status


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    if getattr(args, "nproc", None) is not None or getattr(args, "rdzv_endpoint", None) is not None:
        if getattr(args, "nproc", None) is None:
            args.nproc = 1
        return launch(args, argv)
    if launched_by_torchrun():
        if args.command not in ("train", "distill", "run"):
            print(f"kd-edge: {args.command} does not run in parallel; only train, distill and run do", file=sys.stderr)
            return 2
        join()
    try:
        return _main(args, argv)
    finally:
        leave()


def _main(args, argv) -> int:
    group = current_group()
    try:
        names = load_problems(args)
    except (FileNotFoundError, ValueError, TypeError) as e:
        print(f"kd-edge: {e}", file=sys.stderr)
        return 2
    if args.command == "problems":
        print_problems()
        return 0
    if args.command == "init-config":
        return init_config(names[0], args.out)
    if args.command == "targets":
        print_targets()
        return 0
    if args.command == "bundle":
        from kd_edge.deploy import bundle

        try:
            out = bundle(args.model, args.target, args.out, progress=not args.quiet)
        except (FileNotFoundError, ValueError, RuntimeError) as e:
            print(f"kd-edge: {e}", file=sys.stderr)
            return 2
        print(f"bundle for {args.target}: {out} (see {out / 'README.md'})")
        return 0
    from kd_edge.cli.stages import Run

    retrain = args.retrain or args.command in ("train", "distill")
    runs = []
    try:
        for problem in names:
            out = args.out if len(names) == 1 else (Path(args.out) / problem if args.out else None)
            run = Run(problem, out, args.config, args.overrides, retrain, progress=not args.quiet,
                      device=getattr(args, "device", None))
            log = run.execute(LAST_STAGE[args.command])
            if group.is_main:
                print_summary(run, log)
            runs.append(run)
    except (FileNotFoundError, ValueError, TypeError) as e:
        where = f" (rank {group.rank} of {group.world})" if group.world > 1 else ""
        print(f"kd-edge{where}: {e}", file=sys.stderr)
        return 2
    if not group.is_main:
        return 0
    if args.command == "report":
        summaries = [json.loads((r.out / "summary.json").read_text()) for r in runs]
        if len(runs) > 1:
            from kd_edge.report import write_index

            root = Path(args.out) if args.out else runs[0].out.parent
            print(f"\nreport across problems: {write_index(root / 'report.html', summaries)}")
        if args.readme:
            write_readme(Path(args.readme), runs, summaries, argv)
    return 0


def write_readme(readme: Path, runs, summaries, argv):
    from kd_edge.report.figures import accuracy_vs_latency
    from kd_edge.report.html import latency_points
    from kd_edge.report.markdown import update_readme

    update_readme(readme, summaries, "kd-edge " + " ".join(argv))
    docs = readme.parent / "docs"
    docs.mkdir(exist_ok=True)
    points = [p for s in summaries for p in latency_points(s, with_problem=True)]
    (docs / "accuracy_vs_latency.png").write_bytes(accuracy_vs_latency(points, "every model and backend"))
    (docs / f"fields_{runs[0].problem.name}.png").write_bytes((runs[0].out / "fields.png").read_bytes())
    print(f"updated {readme} and its pictures in {docs}")


if __name__ == "__main__":
    sys.exit(main())
