"""`xpnet predict` and `xpnet evaluate`: use a model saved with `xpnet train --save`.

A classifier predicts labels (in the training data's own words) and is evaluated with its
accuracy, loss, per-class precision, recall, F1 and support, and confusion matrix; a
regressor (trained with ``--task regression``) predicts numbers in the targets' own units
and is evaluated with R^2, RMSE and MAE. Rows are predicted in chunks, so the activations
of a large file never live at once.
"""

from __future__ import annotations

import difflib
import json
import re

import numpy as np

from .. import metrics
from ..backend import to_numpy
from ..errors import XpnetValueError
from .args import _common, _progress, check_destination, say
from .scores import in_units
from .train_flags import header_flag

CHUNK_ROWS = 1 << 16  # rows predicted at once


def add_parser(commands) -> None:
    """Add the `predict` and `evaluate` subcommands to ``commands`` (the parser's subparsers)."""
    predict = commands.add_parser("predict", help="predict labels (or values) for a data file with a saved model",
                                  description="Load a model saved by `xpnet train --save` (on any backend) and print "
                                              "one prediction per line: a label, in the original label names, or a "
                                              "number in the target's own units for a regression model.")
    _model_flags(predict)
    predict.add_argument("--data", required=True, metavar="FILE",
                         help="rows to predict: .csv (the training columns are picked by name when it has a header; "
                              "a label column is ignored), .npy (n_samples, n_features) or .npz with X")
    _header_flag(predict)
    predict.add_argument("--proba", action="store_true",
                         help="also give the probability of each class (classifiers)")
    predict.add_argument("--output", default=None, metavar="FILE",
                         help="write a CSV (column prediction, then one per class with --proba) instead of stdout "
                              "(written atomically; the destination is checked first)")
    predict.set_defaults(handler=cmd_predict)

    evaluate = commands.add_parser("evaluate", help="scores of a saved model: accuracy, per-class precision, recall "
                                                    "and F1, confusion matrix (or R^2, RMSE, MAE)",
                                   description="Scores of a model saved by `xpnet train --save` on --data, else on "
                                               "the held-out split of the data it was trained on (its training data "
                                               "when nothing was held out): for a classifier accuracy, loss, "
                                               "per-class precision, recall, F1 and support and the confusion "
                                               "matrix (rows: true classes, columns: predicted); for a regressor "
                                               "R^2, RMSE and MAE in the target's units, and the loss.")
    _model_flags(evaluate)
    evaluate.add_argument("--data", default=None, metavar="FILE",
                          help="labelled data (.csv with the label in --target, .npy, .npz with X and y); "
                               "default: the saved run's own held-out data")
    evaluate.add_argument("--target", default=None, metavar="COLUMN",
                          help="the label column of --data (default: the training run's label column, else the last)")
    _header_flag(evaluate)
    evaluate.set_defaults(handler=cmd_evaluate)


def _header_flag(parser) -> None:
    """--header / --no-header, as `xpnet train` has it (default: the training run's choice, else detected)."""
    header_flag(parser, "whether the first row of a .csv names its columns (default: as for training, else "
                        "detected: a first row of numbers is data, the columns are then named 0, 1, ...)")


def _model_flags(parser) -> None:
    _common(parser)
    parser.add_argument("--model", required=True, metavar="FILE", help="a model written by `xpnet train --save FILE`")


def _features(ckpt, table, path):
    """The columns of ``table`` the model was trained on, standardized as in training.

    When the training data named its columns and the file has a header, every training
    column is found by name (in any order; other columns are ignored), and a missing one is
    an error naming it and the closest header name. Otherwise the columns are taken by
    position, and their number must be the model's.
    """
    names, header = ckpt.feature_names, table.feature_names
    n_in = ckpt.model.layer_sizes[0]
    if _named(names) and _named(header):
        missing = [name for name in names if name not in header]
        if missing:
            closest = _closest(missing[0], header)
            raise XpnetValueError(f"--data {path!r} has no column {missing[0]!r} (closest: {closest!r})"
                                  f"{f' nor {len(missing) - 1} more' if len(missing) > 1 else ''}; the model was "
                                  f"trained on the columns {', '.join(names)}: give a file whose header names "
                                  "them (any order; other columns are ignored), or one without a header holding "
                                  "them in that order")
        X = table.X[:, [header.index(name) for name in names]]
    elif table.X.shape[1] == n_in:
        X = table.X
    else:
        raise XpnetValueError(f"--data {path!r} has {table.X.shape[1]} feature columns "
                              f"({', '.join(header)}); the model expects {n_in}"
                              + (f": {', '.join(names)}" if names else ""))
    return ckpt.scaler.transform(X) if ckpt.scaler is not None else X


def _named(names) -> bool:
    """Whether columns have real names: not the ones xpnet gives unnamed columns (0, 1, ... of a
    CSV without a header; x0, x1, ... of an array)."""
    return bool(names) and not all(re.fullmatch(r"x?\d+", str(name)) for name in names)


def _closest(name: str, candidates) -> str:
    """The candidate most like ``name`` (ignoring case)."""
    return max(candidates, key=lambda c: difflib.SequenceMatcher(None, name.lower(), str(c).lower()).ratio())


def _task(ckpt) -> str:
    """What the checkpoint's model does (checkpoints from before regression are classifiers)."""
    return ckpt.config.get("task") or ("regression" if ckpt.model.spec.output == "identity" else "classification")


def _scaling(config):
    """The ``(mean, scale)`` of a regression run's target standardization, from its saved config."""
    saved = config.get("target_scaling")
    if not saved:
        return None
    return np.asarray(saved["mean"], dtype=np.float64), np.asarray(saved["scale"], dtype=np.float64)


def _chunked(method, X) -> np.ndarray:
    """``method(X)`` as a host array, a chunk of rows at a time (bounded memory)."""
    parts = [to_numpy(method(X[start:start + CHUNK_ROWS])) for start in range(0, X.shape[0], CHUNK_ROWS)]
    return np.concatenate(parts) if parts else np.zeros((0,))


def _header(args, ckpt):
    """--header / --no-header, else the training run's choice (None: detect)."""
    return args.header if args.header is not None else ckpt.config.get("header")


def cmd_predict(args) -> int:
    from ..io import checkpoint, tables

    if args.output:
        check_destination("--output", args.output)
    ckpt = checkpoint.load(args.model, backend=args.backend)
    task = _task(ckpt)
    if args.proba and task != "classification":
        raise XpnetValueError("--proba gives class probabilities; this model is a regressor (it predicts numbers)")
    table = tables.load_file(args.data, ckpt.config.get("target"), has_target=False, header=_header(args, ckpt))
    X = _features(ckpt, table, args.data)
    if task == "regression":
        return _print_values(args, in_units(_chunked(ckpt.model.predict, X), _scaling(ckpt.config)), ckpt)
    indices = _chunked(ckpt.model.predict, X)
    labels = ckpt.labels.decode(indices) if ckpt.labels is not None else indices
    values = [v.item() for v in labels]
    proba = _chunked(ckpt.model.predict_proba, X).tolist() if args.proba else None
    classes = ckpt.labels.classes if ckpt.labels is not None else list(range(ckpt.model.layer_sizes[-1]))
    if args.output:
        header = ["prediction"] + ([f"p_{c}" for c in classes] if proba else [])
        _write_csv(args.output, header, [[value] + (list(proba[k]) if proba else []) for k, value in enumerate(values)])
    if args.json:
        say(json.dumps({"predictions": values, "classes": classes, **({"probabilities": proba} if proba else {}),
                        **({"output": args.output} if args.output else {})}))
    elif args.output:
        _progress(f"xpnet: wrote {len(values)} predictions to {args.output}")
    else:
        for k, value in enumerate(values):
            say(str(value) if proba is None else ",".join([str(value)] + [f"{p:.6g}" for p in proba[k]]))
    return 0


def _print_values(args, values: np.ndarray, ckpt) -> int:
    """A regressor's predictions (N, K) in the target's units: one row per line, K numbers."""
    rows = values.tolist()
    plain = [row[0] for row in rows] if values.shape[1] == 1 else rows
    if args.output:
        target = ckpt.config.get("target")
        header = ["prediction"] if values.shape[1] == 1 else [f"prediction_{k}" for k in range(values.shape[1])]
        _write_csv(args.output, header if not target or values.shape[1] > 1 else [f"predicted_{target}"], rows)
    if args.json:
        say(json.dumps({"task": "regression", "predictions": plain,
                        **({"output": args.output} if args.output else {})}))
    elif args.output:
        _progress(f"xpnet: wrote {len(rows)} predictions to {args.output}")
    else:
        for row in rows:
            say(",".join(f"{v:.10g}" for v in row))
    return 0


def _write_csv(path, header, rows) -> None:
    import csv
    import io

    from ..io.atomic import atomic_write

    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write(path, lambda handle: handle.write(text.getvalue().encode("utf-8")))


def cmd_evaluate(args) -> int:
    from ..data import labels
    from ..io import checkpoint, tables
    from .prepare import prepare
    from .settings import data_settings

    ckpt = checkpoint.load(args.model, backend=args.backend)
    task, scaling = _task(ckpt), _scaling(ckpt.config)
    if args.data:
        table = tables.load_file(args.data, args.target or ckpt.config.get("target"), header=_header(args, ckpt))
        X = _features(ckpt, table, args.data)
        if table.y is None:
            raise XpnetValueError(f"--data {args.data!r} has no target column to evaluate against")
        if task == "regression":
            y = _standardized(labels.regression_targets(table.y, f"--data {args.data!r}"), scaling)
        else:
            y = ckpt.labels.encode(table.y) if ckpt.labels is not None else table.y
        split, source = "given", args.data
    else:  # the run's own rows: its test rows (only ever reported), else its validation rows, else its training rows
        prepared = prepare(data_settings(ckpt))
        split, X, y = next((name, X, y) for name, X, y in (("test", prepared.X_test, prepared.y_test),
                                                            ("validation", prepared.X_val, prepared.y_val),
                                                            ("training", prepared.X, prepared.y)) if X.shape[0])
        source = prepared.source
    summary = {"model": args.model, "data": source, "split": split, "n_samples": int(X.shape[0]), "task": task,
               "epochs": ckpt.epochs_done, "loss": _mean_loss(ckpt.model, X, y)}
    if task == "regression":
        summary.update(_regression_report(ckpt.model, X, y, scaling))
    else:
        classes = ckpt.labels.classes if ckpt.labels is not None else list(range(ckpt.model.layer_sizes[-1]))
        summary.update(_classification_report(ckpt.model, X, y, classes))
    if args.json:
        say(json.dumps(summary))
    else:
        _print_evaluation(summary)
    return 0


def _standardized(y: np.ndarray, scaling) -> np.ndarray:
    """Targets in the model's standardized units (what its loss is computed on)."""
    y = y.reshape(y.shape[0], -1)
    return y if scaling is None else (y - scaling[0]) / scaling[1]


def _mean_loss(model, X, y) -> float:
    """The mean data loss (no L2), a chunk of rows at a time."""
    total = 0.0
    for start in range(0, X.shape[0], CHUNK_ROWS):
        rows = slice(start, start + CHUNK_ROWS)
        total += model.loss(X[rows], y[rows]) * X[rows].shape[0]
    return total / X.shape[0]


def _classification_report(model, X, y, classes) -> dict:
    y = np.asarray(y).astype(np.int64)
    predicted = _chunked(model.predict, X).astype(np.int64)
    scores = metrics.precision_recall_f1(y, predicted, len(classes))
    per_class = {str(name): {"precision": float(scores["precision"][k]), "recall": float(scores["recall"][k]),
                             "f1": float(scores["f1"][k]), "support": int(scores["support"][k])}
                 for k, name in enumerate(classes)}
    return {"accuracy": metrics.accuracy(y, predicted), "classes": list(classes), "per_class": per_class,
            "confusion_matrix": metrics.confusion_matrix(y, predicted, len(classes)).tolist()}


def _regression_report(model, X, y, scaling) -> dict:
    true, predicted = in_units(y, scaling), in_units(_chunked(model.predict, X), scaling)
    return {"r2": metrics.r2(true, predicted), "rmse": metrics.rmse(true, predicted),
            "mae": metrics.mae(true, predicted)}


def _print_evaluation(summary: dict) -> None:
    say(f"data      {summary['data']} ({summary['split']}, {summary['n_samples']} samples)")
    if summary["task"] == "regression":
        say(f"r2        {summary['r2']:.4f}")
        say(f"rmse      {summary['rmse']:.6g} (in the target's units)")
        say(f"mae       {summary['mae']:.6g} (in the target's units)")
        say(f"loss      {summary['loss']:.6f} (mean data loss, standardized targets)")
        return
    say(f"accuracy  {summary['accuracy']:.4f}")
    say(f"loss      {summary['loss']:.6f}")
    names = [str(c) for c in summary["classes"]]
    width = max(8, *map(len, names))
    say("")
    say(f"{'class':<{width}}  precision  recall  f1      support")
    for name in names:
        s = summary["per_class"][name]
        say(f"{name:<{width}}  {s['precision']:<9.4f}  {s['recall']:<6.4f}  {s['f1']:<6.4f}  {s['support']}")
    say("")
    say("confusion matrix (rows: true class, columns: predicted class)")
    cell = max(5, *map(len, names), *(len(str(v)) for row in summary["confusion_matrix"] for v in row))
    say(" " * width + "  " + "  ".join(f"{name:>{cell}}" for name in names))
    for name, row in zip(names, summary["confusion_matrix"]):
        say(f"{name:<{width}}  " + "  ".join(f"{v:>{cell}}" for v in row))
