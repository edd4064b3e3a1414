"""Pictures: decision boundaries and loss curves, written to PNG / SVG / PDF by file name.

    xpnet train --plot moons.png
    xpnet tutorial wildml-moons --plot wildml.png
    xpnet tutorial wildml-hidden-sweep --plot sweep.png
    xpnet tutorial trask-alpha --plot alpha.png

matplotlib is an optional extra (``pip install 'xpnet[plot]'``), imported only here and only
when a picture is asked for, with the non-interactive Agg backend (no display needed).
"""

from __future__ import annotations

import os

import numpy as np

from .backend import to_numpy
from .errors import XpnetError, XpnetValueError

FORMATS = (".png", ".svg", ".pdf")
DPI = 100
GRID_STEP = 0.02  # spacing of the decision-boundary grid (WildML used 0.01; 0.02 looks the same, draws 4x faster)
MAX_GRID = 400  # points per axis at most, so wide data stays quick


def check_path(path) -> str:
    """Validate the output name (format, directory, matplotlib installed) before any training starts."""
    path = os.fspath(path)
    _pyplot()
    if os.path.splitext(path)[1].lower() not in FORMATS:
        raise XpnetValueError(f"--plot {path!r}: give a file name ending in {', '.join(FORMATS)}")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise XpnetValueError(f"--plot {path!r}: the directory {directory!r} does not exist")
    return path


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise XpnetError("plotting needs matplotlib, which is not installed; "
                         "install the plot extra: pip install 'xpnet[plot]'") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> None:
    plt = _pyplot()
    try:
        fig.savefig(path, dpi=DPI)
    finally:
        plt.close(fig)


def decision_boundary(ax, predict, X, y, title: str = "") -> None:
    """Draw ``predict`` (host (M, 2) -> labels (M,)) over the box around ``X`` (N, 2), then the points.

    WildML's picture: filled contours of the predicted class on a grid, the data on top.
    """
    X = np.asarray(X, dtype=np.float64)
    low, high = X.min(axis=0) - 0.5, X.max(axis=0) + 0.5
    steps = [min(MAX_GRID, int(np.ceil((hi - lo) / GRID_STEP)) + 1) for lo, hi in zip(low, high)]
    xx, yy = np.meshgrid(np.linspace(low[0], high[0], steps[0]), np.linspace(low[1], high[1], steps[1]))
    Z = np.asarray(predict(np.c_[xx.ravel(), yy.ravel()])).reshape(xx.shape)
    ax.contourf(xx, yy, Z, cmap="Spectral", alpha=0.8)
    ax.scatter(X[:, 0], X[:, 1], c=y, cmap="Spectral", s=12, edgecolors="k", linewidths=0.3)
    ax.set_xlim(low[0], high[0])
    ax.set_ylim(low[1], high[1])
    if title:
        ax.set_title(title)


def model_predictor(model):
    """Host-in, host-out class prediction of an :class:`~xpnet.MLP`, for :func:`decision_boundary`."""
    return lambda points: to_numpy(model.predict(points))


def loss_curve(ax, epochs, losses, title: str = "training loss", log: bool = True) -> None:
    ax.plot(epochs, losses, marker="." if len(losses) < 50 else None)
    if log and np.all(np.asarray(losses) > 0):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)


def training_figure(path, model, X, y, epochs, losses, title: str = "") -> None:
    """Decision boundary over ``X`` (when 2-D) and the loss curve, side by side, saved to ``path``."""
    plt = _pyplot()
    two_d = X.shape[1] == 2
    fig, axes = plt.subplots(1, 2 if two_d else 1, figsize=(10 if two_d else 5, 4), squeeze=False)
    if two_d:
        decision_boundary(axes[0, 0], model_predictor(model), X, y, title or "decision boundary")
    loss_curve(axes[0, -1], epochs, losses)
    fig.tight_layout()
    _save(fig, path)


def wildml_moons_figure(path, result) -> None:
    """The WildML tutorial's picture: its decision boundary, and the loss it printed."""
    plt = _pyplot()
    model, (X, y) = result.models[result.data["hidden"]], result.inputs
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    decision_boundary(axes[0], model_predictor(model), X, y, f"Hidden Layer size {result.data['hidden']}")
    losses = result.data["losses"]
    loss_curve(axes[1], [1000 * k for k in range(len(losses))], losses, "loss (every 1000 passes)")
    fig.tight_layout()
    _save(fig, path)


def hidden_sweep_figure(path, result) -> None:
    """WildML's grid: one decision boundary per hidden layer size."""
    plt = _pyplot()
    runs = result.data["runs"]
    X, y = result.inputs
    rows = (len(runs) + 1) // 2
    fig, axes = plt.subplots(rows, 2, figsize=(10, 4 * rows), squeeze=False)
    for ax, run in zip(axes.ravel(), runs):
        decision_boundary(ax, model_predictor(result.models[run["hidden"]]), X, y,
                          f"Hidden Layer size {run['hidden']} (accuracy {run['accuracy']:.3f})")
    for ax in axes.ravel()[len(runs):]:
        ax.axis("off")
    fig.tight_layout()
    _save(fig, path)


def trask_alpha_figure(path, result) -> None:
    """Trask part 2: mean absolute error against iterations, one line per alpha, log scale."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for run in result.data["runs"]:
        errors = run["errors"]
        ax.plot([10_000 * k for k in range(len(errors))], errors, marker="o", label=f"alpha {run['alpha']:g}")
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("mean |error|")
    ax.set_title(f"Trask part 2: XOR, hidden {result.data['hidden']}, error per alpha")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    _save(fig, path)


TUTORIAL_FIGURES = {
    "wildml-moons": wildml_moons_figure,
    "wildml-hidden-sweep": hidden_sweep_figure,
    "trask-alpha": trask_alpha_figure,
}


def tutorial_figure(path, result) -> None:
    """Draw the picture of tutorial ``result.name`` (see :data:`TUTORIAL_FIGURES`)."""
    if result.name not in TUTORIAL_FIGURES:
        raise XpnetValueError(f"tutorial {result.name!r} has no picture; --plot works with "
                              f"{', '.join(TUTORIAL_FIGURES)}")
    TUTORIAL_FIGURES[result.name](path, result)


def bench_figure(report: dict, path) -> None:
    """Draw :func:`xpnet.bench.run`'s ``report`` into ``path``: samples/s against hidden size, one
    line per backend, dtype and n_samples, and the peers of ``--compare`` in the same colour.

    Drawn on a matplotlib ``Figure`` (pyplot and its global backend are never touched); the
    file type follows the extension (.png, .svg, .pdf).
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise XpnetError("plotting needs matplotlib, which is not installed; "
                         "install the plot extra: pip install 'xpnet[plot]'") from None
    rows = report["results"]
    if not rows:
        raise XpnetValueError("nothing to plot: every case was skipped")
    # the peers of `xpnet bench --compare`: (JSON key, line style, label)
    peers = (("torch", "--", "PyTorch eager"), ("torch_compile", (0, (5, 1, 1, 1)), "torch.compile"),
             ("jax", "-.", "jax.jit"), ("tutorial", ":", "tutorial code (float64)"))
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    series: dict = {}
    for row in rows:
        series.setdefault((row["backend"], row["dtype"], row["n_samples"]), []).append(row)
    for (name, dtype, n), group in sorted(series.items()):
        group.sort(key=lambda r: r["hidden"])
        xs = [r["hidden"] for r in group]
        line, = ax.plot(xs, [r["samples_per_second"] for r in group], marker="o", label=f"xpnet {name} {dtype} N={n:g}")
        for key, style, label in peers:
            if all(f"{key}_samples_per_second" in r for r in group):
                ax.plot(xs, [r[f"{key}_samples_per_second"] for r in group], marker="x", linestyle=style,
                        color=line.get_color(), label=f"{label} beside {name} {dtype} N={n:g}")
    widths = sorted({r["hidden"] for r in rows})
    ax.set_xscale("log", base=2)
    ax.set_xticks(widths, [str(w) for w in widths])
    ax.minorticks_off()
    ax.set_yscale("log")
    ax.set_xlabel("hidden units")
    ax.set_ylabel("training samples per second (full-batch epochs)")
    ax.set_title(f"xpnet training throughput, {rows[0]['input_dim']} inputs, {rows[0]['classes']} classes")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    try:
        fig.savefig(path)
    except (OSError, ValueError) as exc:
        raise XpnetValueError(f"cannot write the plot to {path!r}: {exc}") from None

