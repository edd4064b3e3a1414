"""The end of `xpnet train`: the summary on stdout (aligned lines or one JSON object), and on
stderr why training stopped early and, when a run ends useless, the likely cause.

A run that ends at the majority-class rate (a classifier predicting one class), near R^2 = 0
(a regressor predicting the mean) or diverged gets one line naming the likely cause:
features far from the unit range that were not standardized (the columns and their ranges),
else a learning rate too large for the data.
"""

from __future__ import annotations

import json
import signal

import numpy as np

from .args import _progress, say
from .scores import column_ranges, majority_share

UNSCALED = 10.0  # a feature reaching beyond +-UNSCALED, not standardized, is a likely cause of trouble
SHOWN_COLUMNS = 3  # columns named in that warning (the widest ones)
MAJORITY_MARGIN = 0.005  # a training accuracy within this of the largest class's share is "predicts one class"
MEAN_R2 = 0.01  # a training R^2 below this is "predicts about the mean"


def report(args, run, result, scores, saved, rescue, plotted, notes: dict, warning: str | None) -> None:
    """What rank 0 prints at the end: the results, then why training stopped early, if it did
    (``warning``: :func:`diagnosis`, which every process computes: it may gather)."""
    print_training(args, run, result, scores, saved, plotted, {**notes, **({"warning": warning} if warning else {})})
    epochs = run.done + result.epochs
    if result.interrupted:
        name = signal.Signals(signal_number(result)).name
        by = "" if name == "SIGINT" else f" by {name}"
        kept = f"; saved epoch {epochs} to {saved} (continue with --resume {saved})" if saved else ""
        _progress(f"xpnet: interrupted{by} after epoch {epochs}{kept}")
    elif result.diverged:
        _progress(f"xpnet: error: {result.message}" + (f"; likely cause: {warning}" if warning else ""))
    elif warning:
        _progress(f"xpnet: warning: {warning}")
    if rescue:
        _progress(f"xpnet: error: {rescue}")
    if plotted is False:
        _progress(f"xpnet: error: could not draw {args.plot} (see above)")


def signal_number(result) -> int:
    return int(result.signal or signal.SIGINT)


def diagnosis(args, run, result, training: dict) -> str | None:
    """One line on a run that ended useless (see the module docstring), else None. For a
    diverged run, the cause only when it is unscaled features (its message names the rate).
    Called on every process of an MPI job: the class counts and column ranges are reduced."""
    prepared, comm, task = run.prepared, run.comm, run.task
    if result.interrupted:
        return None
    symptom = None
    if not result.diverged and task == "classification":
        k, share = majority_share(comm, prepared.y, prepared.n_classes)
        if training["accuracy"] - share < MAJORITY_MARGIN and share < 1:
            name = prepared.labels.classes[k] if prepared.labels is not None else k
            symptom = (f"the training accuracy {training['accuracy']:.4f} is the share of the most common class "
                       f"({name!r}: {share:.4f}), so the model predicts (nearly) one class")
    elif not result.diverged and training["r2"] < MEAN_R2:
        symptom = f"the training R^2 is {training['r2']:.4f}, so the model predicts (nearly) the mean"
    if symptom is None and not result.diverged:
        return None
    cause = _unscaled(args, prepared, comm)
    if result.diverged:
        return cause
    rate = args.learning_rate
    cause = cause or (f"a learning rate too large for this data ({rate:g}) saturating the hidden units, or too few "
                      f"epochs (try --learning-rate {rate / 10:g}, or more --epochs), or features that do not "
                      "predict the target")
    return f"{symptom}; likely cause: {cause}"


def _unscaled(args, prepared, comm) -> str | None:
    """The features, not standardized, that reach beyond +-UNSCALED (the widest ones with their
    ranges) and how to standardize them; None when the features were standardized or are small."""
    if prepared.scaler is not None:
        return None
    low, high = column_ranges(comm, prepared.X)
    reach = np.maximum(np.abs(low), np.abs(high))
    wide = [int(j) for j in np.argsort(-reach, kind="stable") if reach[j] > UNSCALED]
    if not wide:
        return None
    names = prepared.feature_names or [f"x{j}" for j in range(len(low))]
    shown = ", ".join(f"{names[j]} ({low[j]:.4g} to {high[j]:.4g})" for j in wide[:SHOWN_COLUMNS])
    more = f" and {len(wide) - SHOWN_COLUMNS} more" if len(wide) > SHOWN_COLUMNS else ""
    fix = "drop --no-standardize" if args.data else "add --standardize"
    return f"features far from the unit range were not standardized: {shown}{more}; {fix}"


def print_training(args, run, result, scores, saved, plotted, notes: dict) -> None:
    """The results of `xpnet train` on stdout: a few aligned lines, or one JSON object."""
    model, prepared, task, done = run.model, run.prepared, run.task, run.done
    training = scores["training"]
    summary = {**result.to_dict(), "task": task, "task_reason": prepared.task_reason,
               "dataset": args.data or args.dataset, "n_samples": int(prepared.n_samples),
               "layer_sizes": list(model.layer_sizes), "learning_rate": args.learning_rate, "l2": args.l2,
               "epochs_total": done + result.epochs, "standardized": prepared.scaler is not None}
    summary.update({key: value for key, value in training.items() if key != "loss"})
    for split in ("validation", "test"):
        summary.update({f"{split}_{key}": value for key, value in scores.get(split, {}).items()})
    summary.update(notes)
    if getattr(args, "warnings_shown", None):  # xpnet's warnings, each also one line on stderr
        summary["warnings"] = list(args.warnings_shown)
    if run.comm is not None:
        summary["processes"] = run.comm.size
    if saved:
        summary["saved"] = saved
    if args.plot and plotted:
        summary["plot"] = args.plot
    if args.json:
        say(json.dumps(summary))
        return
    say(f"backend   {model.backend.describe()}  ({model.backend.reason})")
    say(f"model     {list(model.layer_sizes)} {','.join(a.name for a in model.spec.hidden)} -> {model.spec.output}, "
        f"{model.dtype_name} ({task})")
    if "kernels_reason" in notes:
        say(f"kernels   {notes['kernels_reason']}")
    if "blas" in notes:
        say(f"blas      {blas_line(notes['blas'])}")
    say(f"epochs    {done + result.epochs}" + (f" ({result.epochs} in this run)" if done else "")
        + f"   time {result.seconds:.3f} s")
    if result.data_residency == "streamed":
        say(f"data      streamed from {args.data} a chunk at a time (not held in memory)")
    say(f"loss      {result.final_loss:.6f} (training objective)")
    for name, values in scores.items():
        _say_scores(task, name, values)
    if getattr(args, "early_stopping", False):
        why = "stopped early" if result.stopped_early else "stopped by a signal" if result.interrupted \
            else "ran all epochs"
        say(f"early     best epoch {result.best_epoch} (weights restored), {why}")
    if saved:
        say(f"saved     {saved}")
    if args.plot and plotted:
        say(f"plot      {args.plot}")


def blas_line(info: dict) -> str:
    """The summary's ``blas`` line from the JSON form of :class:`xpnet.engine.blas.BlasInfo`."""
    from ..engine.blas import BlasInfo

    return BlasInfo(**info).describe()


def _say_scores(task: str, name: str, values: dict) -> None:
    n = values.get("samples")
    where = f"{name}, {n} samples" if n else name
    if task == "classification":
        say(f"accuracy  {values['accuracy']:.4f} ({where})")
    else:
        say(f"r2        {values['r2']:.4f} ({where})")
        say(f"rmse      {values['rmse']:.6g} ({where}, in the target's units)")
    if n:
        say(f"loss      {values['loss']:.6f} ({name}, mean data loss)")
