"""The report's figures, each returned as PNG bytes (matplotlib, Agg backend)."""

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from kd_edge.training.evaluate import predict, without_gauge  # noqa: E402

LABELS = {"teacher_pytorch": "teacher, PyTorch", "student_pytorch": "student, PyTorch",
          "student_onnxruntime": "student, ONNX Runtime", "student_kd_edge_python": "student, kd-edge (Python)",
          "student_kd_edge_cpp": "student, kd-edge (C++)"}


def png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def plane(problem):
    """The 2-D slice of the reference grid the field plots show: (mask over grid rows, x axis, y axis,
    title suffix). Problems with a third input (time) are shown at its last grid value."""
    axes = problem.grid_axes()
    points, _ = problem.reference_grid()
    mask = np.ones(len(points), bool)
    suffix = ""
    for k in range(2, len(axes)):
        mask &= np.isclose(points[:, k], axes[k][-1])
        suffix += f", {problem.inputs[k]} = {axes[k][-1]:g}"
    return mask, axes[0], axes[1], suffix


def fields(problem, teacher, student) -> bytes:
    """Per output: reference, teacher, student, |teacher - reference|, |student - reference|."""
    points, reference = problem.reference_grid()
    mask, ax0, ax1, suffix = plane(problem)
    shape = (len(ax0), len(ax1))
    predicted = {"teacher": predict(teacher, points[mask]), "student": predict(student, points[mask])}
    n_out = len(problem.outputs)
    fig, axes = plt.subplots(n_out, 5, figsize=(18, 3.4 * n_out), squeeze=False, layout="constrained")
    extent = [ax1[0], ax1[-1], ax0[0], ax0[-1]]
    for k, name in enumerate(problem.outputs):
        ref = reference[mask][:, k]
        panels = [("reference", ref), ("teacher", predicted["teacher"][:, k]), ("student", predicted["student"][:, k])]
        lo, hi = ref.min(), ref.max()
        for j, (title, values) in enumerate(panels):
            if name in problem.gauge_outputs and title != "reference":
                values = ref + without_gauge(problem, points[mask], values - ref)  # defined up to a constant
            im = axes[k, j].imshow(values.reshape(shape), origin="lower", aspect="auto", extent=extent,
                                   vmin=lo, vmax=hi, cmap="viridis")
            axes[k, j].set_title(f"{name}: {title}")
            fig.colorbar(im, ax=axes[k, j])
        for j, who in ((3, "teacher"), (4, "student")):
            err = predicted[who][:, k] - ref
            if name in problem.gauge_outputs:
                err = without_gauge(problem, points[mask], err)
            im = axes[k, j].imshow(np.abs(err).reshape(shape), origin="lower", aspect="auto", extent=extent,
                                   cmap="magma")
            axes[k, j].set_title(f"|{who} - reference|")
            fig.colorbar(im, ax=axes[k, j])
        for a in axes[k]:
            a.set_xlabel(problem.inputs[1])
        axes[k, 0].set_ylabel(problem.inputs[0])
    fig.suptitle(f"{problem.name}{suffix}")
    return png(fig)


def training_curves(models: dict) -> bytes:
    """Loss (and monitored relative L2, where recorded) against step for each trained model."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8), layout="constrained")
    for name, model in models.items():
        history = model.info.get("history") or []
        steps = [h["step"] for h in history]
        left.semilogy(steps, [h["loss"] for h in history], label=name)
        monitored = [(h["step"], h["rel_l2"]) for h in history if "rel_l2" in h]
        if monitored:
            right.semilogy(*zip(*monitored), marker=".", label=name)
    left.set(xlabel="step", ylabel="training loss", title="loss")
    right.set(xlabel="step", ylabel="relative L2 (subsample)", title="error during training")
    for a in (left, right):
        a.grid(alpha=0.3)
        a.legend()
    return png(fig)


def accuracy_vs_latency(points: list[dict], title: str) -> bytes:
    """points: {label, latency_us, rel_l2, problem (optional)}. Marker: the model and backend;
    colour: the problem (when points carry one)."""
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(9, 5), layout="constrained")
    markers = dict(zip(LABELS.values(), "osD^v"))
    problems = sorted({p["problem"] for p in points if "problem" in p})
    colours = {name: plt.cm.tab10(i % 10) for i, name in enumerate(problems)}
    for p in points:
        ax.scatter(p["latency_us"], p["rel_l2"], marker=markers.get(p["label"], "o"), s=55, alpha=0.85,
                   color=colours.get(p.get("problem"), "C0"), edgecolor="black", linewidth=0.4)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set(xlabel="latency on the full reference grid, median (us)", ylabel="relative L2 error", title=title)
    ax.grid(alpha=0.3, which="both")
    used = [label for label in LABELS.values() if any(p["label"] == label for p in points)]
    handles = [Line2D([], [], marker=markers[label], linestyle="", color="grey", label=label) for label in used]
    first = ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="model, backend")
    if problems:
        ax.add_artist(first)
        ax.legend(handles=[Line2D([], [], marker="o", linestyle="", color=colours[n], label=n) for n in problems],
                  fontsize=8, loc="lower left", bbox_to_anchor=(1.01, 0.0), title="problem")
    return png(fig)


def draw_frontier(ax, rows: list[dict], title: str):
    """One problem's size frontier on ax: relative L2 against kd-edge's C++ time on the whole grid,
    each student size labelled, the teacher as a star (rows: a frontier.json's "rows")."""
    import matplotlib.ticker

    students = [r for r in rows if r["model"] != "teacher"]
    ax.plot([r["grid_us"] for r in students], [r["rel_l2"] for r in students], "o-", label="students")
    for r in students:
        ax.annotate(r["model"], (r["grid_us"], r["rel_l2"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    teacher = [r for r in rows if r["model"] == "teacher"]
    if teacher:
        ax.plot([teacher[0]["grid_us"]], [teacher[0]["rel_l2"]], "*", markersize=12, label="teacher")
    ax.set(xscale="log", yscale="log", title=title, xlabel="kd-edge C++, whole grid (us)", ylabel="relative L2")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # minor labels overlap on short ranges
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.legend(fontsize=8)


def frontier(rows: list[dict], title: str) -> bytes:
    """The size frontier of one problem as a PNG (draw_frontier)."""
    fig, ax = plt.subplots(figsize=(6, 4.2), layout="constrained")
    draw_frontier(ax, rows, title)
    return png(fig)
