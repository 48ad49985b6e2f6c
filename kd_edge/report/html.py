"""Self-contained HTML reports (figures embedded as base64 PNG)."""

import base64
import datetime
import html
from pathlib import Path

from kd_edge.report.figures import LABELS, accuracy_vs_latency

STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%}pre{background:#f6f6f6;padding:1em}
.miss{color:#b00}.ok{color:#070}"""


def img(data: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def fmt(v, digits=2):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}e}" if abs(v) < 1e-2 or abs(v) >= 1e5 else f"{v:.{digits + 1}g}"
    return html.escape(str(v))


def table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c if isinstance(c, str) else fmt(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def grid_latency(summary: dict) -> dict:
    return {r["backend"]: r["median_us"] for r in summary.get("bench", []) if r["grid"]}


def kd_row(summary: dict) -> list:
    """One row of the KD-PINN table: errors, change, latencies on the grid and speed-ups."""
    m, lat = summary["metrics"], grid_latency(summary)
    t, s = m["teacher"], m["student"]
    cpp = lat.get("student_kd_edge_cpp") or lat.get("student_kd_edge_python")
    speedup = lambda peer: None if not (cpp and lat.get(peer)) else f"{lat[peer] / cpp:.1f}x"  # noqa: E731
    return [summary["problem"], t["rmse"], t["rel_l2"], s["rmse"], s["rel_l2"],
            f"{100 * (s['rel_l2'] - t['rel_l2']) / t['rel_l2']:+.1f}%",
            m.get("scratch", {}).get("rel_l2"),
            lat.get("teacher_pytorch"), lat.get("student_pytorch"), lat.get("student_onnxruntime"),
            lat.get("student_kd_edge_python"), lat.get("student_kd_edge_cpp"),
            speedup("teacher_pytorch"), speedup("student_onnxruntime")]


KD_HEADER = ["problem", "teacher RMSE", "teacher rel L2", "student RMSE", "student rel L2", "change", "scratch rel L2",
             "teacher PyTorch (us)", "student PyTorch (us)", "student ONNX RT (us)", "kd-edge Python (us)",
             "kd-edge C++ (us)", "speed-up vs teacher", "vs ONNX RT"]
KD_NOTE = ("Errors on the problem's full reference grid; latencies are medians for one call on the full grid, "
           "on {threads} thread(s), in one run. Change: student relative L2 against the teacher's.")


def latency_points(summary: dict, with_problem=False) -> list[dict]:
    m, lat = summary["metrics"], grid_latency(summary)
    compiled = summary.get("accuracy", {}).get("compiled", {}).get("rel_l2")
    out = []
    for backend, us in lat.items():
        if us is None:
            continue
        err = m["teacher"]["rel_l2"] if backend == "teacher_pytorch" else (
            compiled if "kd_edge" in backend and compiled is not None else m["student"]["rel_l2"])
        point = {"label": LABELS[backend], "latency_us": us, "rel_l2": err}
        if with_problem:
            point["problem"] = summary["problem"]
        out.append(point)
    return out


def page(title: str, body: str) -> str:
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}"
            f"<p><small>written by kd-edge report, {stamp}</small></p></body></html>")


def write_problem_report(path: Path, summary: dict, figures: dict) -> Path:
    """figures: {"fields": png, "training": png, "frontier": png} (any may be missing)."""
    m, acc = summary["metrics"], summary.get("accuracy", {})
    threads = summary.get("bench_threads", 1)
    parts = [f"<p>Models: {html.escape(summary['models'])}. Artifact: <code>{html.escape(summary['artifact'])}</code> "
             f"({html.escape(summary.get('runtime', '?'))} kernel, target {html.escape(summary.get('target', '?'))}).</p>",
             "<h2>KD-PINN table</h2>", table(KD_HEADER, [kd_row(summary)]),
             f"<p>{KD_NOTE.format(threads=threads)}</p>"]
    rows = [[name, m[name]["rel_l2"], m[name]["rmse"], m[name]["multiply_adds"]] for name in ("teacher", "student", "scratch")
            if name in m]
    if acc:
        rows.append(["student, compiled", acc["compiled"]["rel_l2"], acc["compiled"]["rmse"], summary.get("multiply_adds")])
        parts += ["<h2>Accuracy</h2>", table(["model", "relative L2", "RMSE", "multiply-adds per point"], rows),
                  f"<p>Compiled vs PyTorch on the {acc['points']:,} grid points: max abs difference "
                  f"{acc['max_abs_vs_pytorch']:.2e}.</p>"]
    if "fields" in figures:
        parts += ["<h2>Fields and pointwise errors</h2>", img(figures["fields"], "fields")]
    if "training" in figures:
        parts += ["<h2>Training</h2>", img(figures["training"], "training curves")]
    if summary.get("bench"):
        sizes = sorted({r["n"] for r in summary["bench"]})
        by = {(r["backend"], r["n"]): r["median_us"] for r in summary["bench"]}
        parts += ["<h2>Latency</h2>",
                  table(["backend"] + [f"N = {n:,} (us)" for n in sizes],
                        [[LABELS[b]] + [by.get((b, n)) for n in sizes] for b in LABELS]),
                  img(accuracy_vs_latency(latency_points(summary), f"{summary['problem']}: accuracy vs latency"),
                      "accuracy vs latency")]
    if summary.get("frontier"):
        f = summary["frontier"]
        rows = [[html.escape(r["model"]) + (" (shipped)" if r.get("shipped") else ""), r["multiply_adds"], r["rel_l2"],
                 r["n1_us"], r["grid_us"]] for r in f["rows"]]
        parts += ["<h2>Which student for a latency budget</h2>",
                  table(["model", "multiply-adds per point", "relative L2", "kd-edge C++, N = 1 (us)",
                         f"whole grid, {f['grid_points']:,} points (us)"], rows),
                  f"<p>Students of other sizes distilled with the shipped recipe, timed from C++ on "
                  f"{html.escape(f.get('cpu', '?'))} (training/frontier.py).</p>"]
        if "frontier" in figures:
            parts.append(img(figures["frontier"], "size frontier"))
    if summary.get("control_loop"):
        parts += ["<h2>C++ control loop</h2>", f"<pre>{html.escape(summary['control_loop'])}</pre>"]
    path.write_text(page(f"kd-edge: {summary['problem']}", "\n".join(parts)))
    return path


def write_index(path: Path, summaries: list[dict]) -> Path:
    """The KD-PINN table and accuracy-vs-latency chart across problems, linking each problem's page."""
    rows = []
    for s in summaries:
        row = kd_row(s)
        row[0] = f'<a href="{html.escape(s["problem"])}/report.html">{html.escape(s["problem"])}</a>'
        rows.append(row)
    points = [p for s in summaries for p in latency_points(s, with_problem=True)]
    body = [table(KD_HEADER, rows), f"<p>{KD_NOTE.format(threads=summaries[0].get('bench_threads', 1))}</p>"]
    if points:
        body.append(img(accuracy_vs_latency(points, "every model and backend"), "accuracy vs latency"))
    path.write_text(page("kd-edge: KD-PINN results", "\n".join(body)))
    return path
