"""Pictures: decision boundaries, training curves, confusion matrices and predicted-against-true
plots, written to PNG / SVG / PDF by file name.

    xpnet train --plot moons.png
    xpnet train --data docs/flowers.csv --target species --validation-fraction 0.2 --plot flowers.png
    xpnet tutorial wildml-moons --plot wildml.png
    xpnet tutorial wildml-hidden-sweep --plot sweep.png
    xpnet tutorial trask-alpha --plot alpha.png

From Python, :func:`training_figure` returns a :class:`matplotlib.figure.Figure` (show it in a
notebook, or :func:`save` it). Everything is drawn on ``Figure`` objects, never through pyplot,
so drawing changes no global state: a notebook keeps its own matplotlib backend, and no
display is needed. matplotlib is optional (``pip install matplotlib``, or ``pip install
'.[plot]'`` from a clone of xpnet), imported only here and only when a picture is asked for.
"""

from __future__ import annotations

import os
from functools import partial

import numpy as np

from .backend import to_numpy
from .errors import XpnetError, XpnetValueError

FORMATS = (".png", ".svg", ".pdf")
DPI = 100
PANEL = (5.0, 4.0)  # inches per panel of a training figure
GRID_STEP = 0.02  # spacing of the decision-boundary grid (WildML used 0.01; 0.02 looks the same, draws 4x faster)
MAX_GRID = 400  # points per axis at most, so wide data stays quick
INSTALL_HINT = "install it with pip install matplotlib (or, in a clone of xpnet, pip install '.[plot]')"


def check_path(path) -> str:
    """Validate the output name (format, directory, matplotlib installed) before any training starts."""
    path = os.fspath(path)
    _figure_class()
    if os.path.splitext(path)[1].lower() not in FORMATS:
        raise XpnetValueError(f"--plot {path!r}: give a file name ending in {', '.join(FORMATS)}")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise XpnetValueError(f"--plot {path!r}: the directory {directory!r} does not exist")
    return path


def _figure_class():
    try:
        import matplotlib  # noqa: F401 - first: a cached matplotlib.figure would hide a missing matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        raise XpnetError(f"plotting needs matplotlib, which is not installed; {INSTALL_HINT}") from None
    return Figure


def new_figure(width: float, height: float):
    """A :class:`matplotlib.figure.Figure` of ``width`` x ``height`` inches, laid out to fit its labels."""
    return _figure_class()(figsize=(width, height), dpi=DPI, layout="constrained")


def save(fig, path) -> None:
    """Write ``fig`` to ``path``; the file type follows the extension (.png, .svg, .pdf). A path
    matplotlib cannot write (a missing directory, an unknown extension) is one clear error."""
    try:
        fig.savefig(os.fspath(path), dpi=DPI)
    except (OSError, ValueError) as exc:
        raise XpnetValueError(f"cannot write the plot to {os.fspath(path)!r}: {exc}") from None


def class_colours(n: int) -> list:
    """``n`` distinct colours, solid and dark enough to read on white and on their own pale fill:
    matplotlib's qualitative tab10, and beyond 10 classes evenly spaced hues at 75% saturation
    and value (tab20's pale halves and bright colour maps' yellows would vanish on white)."""
    from matplotlib import colormaps
    from matplotlib.colors import hsv_to_rgb

    if n <= 10:
        return [colormaps["tab10"](k) for k in range(n)]
    return [(*hsv_to_rgb((k / n, 0.75, 0.75)), 1.0) for k in range(n)]


def _names(class_names, n: int) -> list[str]:
    return [str(c) for c in class_names] if class_names is not None else [f"class {k}" for k in range(n)]


def _axis_names(feature_names) -> tuple[str, str]:
    if feature_names is not None and len(feature_names) >= 2:
        return str(feature_names[0]), str(feature_names[1])
    return "feature 1", "feature 2"


def decision_boundary(ax, predict, X, y, title: str = "", class_names=None, feature_names=None) -> None:
    """Draw ``predict`` (host (M, 2) -> labels (M,)) over the box around ``X`` (N, 2), then the points.

    WildML's picture: the predicted class filled in pale colours on a grid, the data on top
    as solid points of the same colours with a white rim, one legend entry per class
    (``class_names``), the axes named after ``feature_names`` (default "feature 1", "feature 2").
    """
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y).astype(np.int64)
    low, high = X.min(axis=0) - 0.5, X.max(axis=0) + 0.5
    steps = [min(MAX_GRID, int(np.ceil((hi - lo) / GRID_STEP)) + 1) for lo, hi in zip(low, high)]
    xx, yy = np.meshgrid(np.linspace(low[0], high[0], steps[0]), np.linspace(low[1], high[1], steps[1]))
    Z = np.asarray(predict(np.c_[xx.ravel(), yy.ravel()])).astype(np.int64).reshape(xx.shape)
    n = max(len(class_names) if class_names is not None else 0, int(max(Z.max(), y.max())) + 1)
    colours, names = class_colours(n), _names(class_names, n)
    ax.contourf(xx, yy, Z, levels=np.arange(n + 1) - 0.5, colors=colours, alpha=0.25)
    for k in range(n):
        points = X[y == k]
        if len(points):
            ax.scatter(points[:, 0], points[:, 1], color=colours[k], s=14, edgecolors="white", linewidths=0.4,
                       label=names[k])
    ax.set_xlim(low[0], high[0])
    ax.set_ylim(low[1], high[1])
    xlabel, ylabel = _axis_names(feature_names)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(title="class", fontsize="small", loc="best", framealpha=0.9)
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


def curves_panel(ax, name: str, series: dict, log: bool = False) -> None:
    """One panel of training curves: ``series`` maps a label ("training", "validation") to
    ``(epochs, values)``; ``name`` labels the y axis and the title."""
    positive = True
    for label, (epochs, values) in series.items():
        if len(values):
            ax.plot(epochs, values, marker="." if len(values) < 50 else None, label=label)
            positive = positive and bool(np.all(np.asarray(values, dtype=np.float64) > 0))
    if log and positive:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(name)
    ax.set_title(name)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")


def confusion_panel(ax, matrix, class_names=None, title: str = "confusion matrix") -> None:
    """Counts of true (rows) against predicted (columns) classes, named on both axes."""
    matrix = np.asarray(matrix)
    n = matrix.shape[0]
    names = _names(class_names, n)
    ax.imshow(matrix, cmap="Blues")
    largest = matrix.max() if matrix.size else 0
    if n <= 20:  # the counts stay legible
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize="small",
                        color="white" if matrix[i, j] > largest / 2 else "black")
    ax.set_xticks(range(n), names, rotation=45 if max(map(len, names)) > 3 else 0, ha="right")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)


def regression_panel(ax, y_true, y_pred, target_names=None, title: str = "predicted against true") -> None:
    """Predicted against true values (in the targets' units), one colour per output, and the
    diagonal where predictions are exact."""
    y_true, y_pred = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    if y_true.ndim == 1:
        y_true, y_pred = y_true[:, None], y_pred[:, None]
    colours = class_colours(y_true.shape[1])
    for k in range(y_true.shape[1]):
        name = str(target_names[k]) if target_names is not None and k < len(target_names) else \
            ("samples" if y_true.shape[1] == 1 else f"output {k + 1}")
        ax.scatter(y_true[:, k], y_pred[:, k], s=10, alpha=0.7, color=colours[k], label=name)
    low, high = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
    ax.plot([low, high], [low, high], linestyle="--", color="0.3", label="exact prediction")
    target = str(target_names[0]) if target_names is not None and len(target_names) == 1 else "target"
    ax.set_xlabel(f"true {target}")
    ax.set_ylabel(f"predicted {target}")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")


def training_figure(curves: dict, *, predict=None, X=None, y=None, class_names=None, feature_names=None,
                    confusion=None, regression=None, target_names=None):
    """The picture of a training run, one panel each, side by side, on a new ``Figure``.

    Parameters
    ----------
    curves : dict
        ``{"loss": {"training": (epochs, values), "validation": (epochs, values)},
        "accuracy": {...}}``: one panel per key (the loss on a log scale).
    predict, X, y : optional
        A classifier (host (M, F) -> labels) and its data: with 2 features the decision
        boundary comes first, with ``class_names`` in the legend and ``feature_names`` on the axes.
    confusion : array (C, C), or (array, title), optional
        Otherwise a confusion matrix comes first (rows true, columns predicted).
    regression : (y_true, y_pred), optional
        A regressor's values in the targets' units: predicted against true comes first.

    Returns
    -------
    matplotlib.figure.Figure
    """
    panels = []
    if regression is not None:
        panels.append(partial(regression_panel, y_true=regression[0], y_pred=regression[1], target_names=target_names))
    elif predict is not None and X is not None and np.asarray(X).shape[1] == 2:
        panels.append(partial(decision_boundary, predict=predict, X=X, y=y, title="decision boundary",
                              class_names=class_names, feature_names=feature_names))
    elif confusion is not None:
        matrix, title = confusion if isinstance(confusion, tuple) else (confusion, "confusion matrix")
        panels.append(partial(confusion_panel, matrix=matrix, class_names=class_names, title=title))
    panels += [partial(curves_panel, name=name, series=series, log=name == "loss") for name, series in curves.items()]
    fig = new_figure(PANEL[0] * len(panels), PANEL[1])
    for ax, draw in zip(np.atleast_1d(fig.subplots(1, len(panels))), panels):
        draw(ax)
    return fig


def wildml_moons_figure(path, result) -> None:
    """The WildML tutorial's picture: its decision boundary, and the loss it printed."""
    model, (X, y) = result.models[result.data["hidden"]], result.inputs
    fig = new_figure(10, 4)
    axes = fig.subplots(1, 2)
    decision_boundary(axes[0], model_predictor(model), X, y, f"Hidden Layer size {result.data['hidden']}")
    losses = result.data["losses"]
    loss_curve(axes[1], [1000 * k for k in range(len(losses))], losses, "loss (every 1000 passes)")
    save(fig, path)


def hidden_sweep_figure(path, result) -> None:
    """WildML's grid: one decision boundary per hidden layer size."""
    runs = result.data["runs"]
    X, y = result.inputs
    rows = (len(runs) + 1) // 2
    fig = new_figure(10, 4 * rows)
    axes = fig.subplots(rows, 2, squeeze=False)
    for ax, run in zip(axes.ravel(), runs):
        decision_boundary(ax, model_predictor(result.models[run["hidden"]]), X, y,
                          f"Hidden Layer size {run['hidden']} (accuracy {run['accuracy']:.3f})")
    for ax in axes.ravel()[len(runs):]:
        ax.axis("off")
    save(fig, path)


def trask_alpha_figure(path, result) -> None:
    """Trask part 2: mean absolute error against iterations, one line per alpha, log scale."""
    fig = new_figure(8, 5)
    ax = fig.subplots()
    for run in result.data["runs"]:
        errors = run["errors"]
        ax.plot([10_000 * k for k in range(len(errors))], errors, marker="o", label=f"alpha {run['alpha']:g}")
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("mean |error|")
    ax.set_title(f"Trask part 2: XOR, hidden {result.data['hidden']}, error per alpha")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    save(fig, path)


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
    rows = report["results"]
    if not rows:
        raise XpnetValueError("nothing to plot: every case was skipped")
    # the peers of `xpnet bench --compare`: (JSON key, line style, label)
    peers = (("torch", "--", "PyTorch eager"), ("torch_compile", (0, (5, 1, 1, 1)), "torch.compile"),
             ("jax", "-.", "jax.jit"), ("tutorial", ":", "tutorial code (float64)"))
    fig = new_figure(7, 4.5)
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
    save(fig, path)

