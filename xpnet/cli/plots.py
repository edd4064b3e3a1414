"""The picture of an `xpnet train` run (--plot): the decision boundary, the confusion matrix
or predicted against true values, then the training and validation curves.

Every validation loss the run measured is drawn: with --early-stopping the one of every
epoch (what the stopping rule watched), otherwise those of the logged epochs.
"""

from __future__ import annotations

import numpy as np

from .. import metrics
from ..backend import to_numpy
from ..errors import XpnetError
from .args import _progress
from .processes import agree
from .saving import merged_history
from .scores import in_units

PLOT_POINTS = 10_000  # with --distributed, --plot draws every k-th training row, at most this many


def draw(args, run, progress, result) -> bool:
    """Draw the run (rank 0, from a sample of every process's rows); True when drawn, False
    when it failed (on every rank: rank 0's outcome is broadcast)."""
    from .. import plot

    comm, model, prepared, task, scaling = run.comm, run.model, run.prepared, run.task, run.scaling
    points = (prepared.X, prepared.y) if comm is None else comm.sample(prepared.X, prepared.y, PLOT_POINTS)
    confusion = None
    if task == "classification" and prepared.X.shape[1] != 2:
        name, X, y = ("test", prepared.X_test, prepared.y_test) if prepared.n_test else \
            ("validation", prepared.X_val, prepared.y_val) if prepared.n_val else ("training", prepared.X, prepared.y)
        confusion = (_confusion(comm, model, X, y, prepared.n_classes), f"confusion matrix ({name} rows)")
    ok = True
    if points is not None:
        try:
            fig = plot.training_figure(curves(run.history, progress, task, result),
                                       **_first_panel(model, points, task, scaling, prepared, confusion))
            plot.save(fig, args.plot)
        except (OSError, ValueError, XpnetError) as exc:
            _progress(f"xpnet: error: could not draw {args.plot}: {' '.join(str(exc).split())}")
            ok = False
    return agree(comm, ok)


def _first_panel(model, points, task, scaling, prepared, confusion) -> dict:
    X, y = points
    if task == "regression":
        true, pred = in_units(y, scaling), in_units(to_numpy(model.predict(X)), scaling)
        return {"regression": (true, pred), "target_names": [prepared.target] if prepared.target else None}
    names = prepared.labels.classes if prepared.labels is not None else None
    from ..plot import model_predictor

    return {"predict": model_predictor(model), "X": X, "y": y, "class_names": names,
            "feature_names": prepared.feature_names, "confusion": confusion}


def _confusion(comm, model, X, y, n_classes: int) -> np.ndarray:
    """The confusion matrix of every process's rows (summed in one small reduction)."""
    local = metrics.confusion_matrix(y, to_numpy(model.predict(X)), n_classes) if X.shape[0] else \
        np.zeros((n_classes, n_classes), dtype=np.int64)
    if comm is None:
        return local
    return np.rint(comm.sum_floats(local.ravel())).astype(np.int64).reshape(n_classes, n_classes)


def curves(history, progress, task: str, result=None) -> dict:
    """The panels of training curves: the loss (all logged epochs, the saved run's too), the
    validation loss (every epoch's with early stopping, ``result.validation_history``; else
    where this run measured it) and the accuracy or R^2 where this run measured them."""
    last = progress.done + (progress.epochs[-1] if progress.epochs else 0)
    merged = merged_history(history, progress, progress.done, last)
    panels = {"loss": {"training": (merged["epochs"], merged["losses"])}}
    metric = "accuracy" if task == "classification" else "r2"
    points = progress.points
    epochs = [epoch for epoch, _ in points]
    every_epoch = list(getattr(result, "validation_history", None) or [])
    if every_epoch:  # early stopping measured the validation loss after each epoch (0: before the first)
        panels["loss"]["validation"] = (list(range(progress.done, progress.done + len(every_epoch))), every_epoch)
    elif any("val_loss" in stats for _, stats in points):
        panels["loss"]["validation"] = (epochs, [stats["val_loss"] for _, stats in points])
    panel = {"training": (epochs, [stats[metric] for _, stats in points])}
    if any("val_" + metric in stats for _, stats in points):
        panel["validation"] = (epochs, [stats["val_" + metric] for _, stats in points])
    panels["accuracy" if metric == "accuracy" else "R^2"] = panel
    return panels
