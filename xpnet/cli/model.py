"""`xpnet predict` and `xpnet evaluate`: use a model saved with `xpnet train --save`."""

from __future__ import annotations

import json

from ..errors import XpnetValueError
from .args import _common, _progress


def add_parser(commands) -> None:
    """Add the `predict` and `evaluate` subcommands to ``commands`` (the parser's subparsers)."""
    predict = commands.add_parser("predict", help="predict labels for a data file with a saved model",
                                  description="Load a model saved by `xpnet train --save` (on any backend) and print "
                                              "one predicted label per line, in the original label names.")
    _model_flags(predict)
    predict.add_argument("--data", required=True, metavar="FILE",
                         help="rows to predict: .csv with a header (the training columns are picked by name; "
                              "a label column is ignored), .npy (n_samples, n_features) or .npz with X")
    predict.add_argument("--proba", action="store_true", help="also give the probability of each class")
    predict.add_argument("--output", default=None, metavar="FILE",
                         help="write a CSV (column prediction, then one per class with --proba) instead of stdout")
    predict.set_defaults(handler=cmd_predict)

    evaluate = commands.add_parser("evaluate", help="accuracy and loss of a saved model",
                                   description="Accuracy and loss of a model saved by `xpnet train --save`: on "
                                               "--data, else on the held-out split of the data it was trained on "
                                               "(its training data when nothing was held out).")
    _model_flags(evaluate)
    evaluate.add_argument("--data", default=None, metavar="FILE",
                          help="labelled data (.csv with the label in --target, .npy, .npz with X and y); "
                               "default: the saved run's own held-out data")
    evaluate.add_argument("--target", default=None, metavar="COLUMN",
                          help="the label column of --data (default: the training run's label column, else the last)")
    evaluate.set_defaults(handler=cmd_evaluate)


def _model_flags(parser) -> None:
    _common(parser)
    parser.add_argument("--model", required=True, metavar="FILE", help="a model written by `xpnet train --save FILE`")


def _features(ckpt, table, path):
    """The columns of ``table`` the model was trained on (by name when the file names them)."""
    names = ckpt.feature_names
    n_in = ckpt.model.layer_sizes[0]
    if names and all(name in table.feature_names for name in names):
        X = table.X[:, [table.feature_names.index(name) for name in names]]
    elif table.X.shape[1] == n_in:
        X = table.X
    else:
        raise XpnetValueError(f"--data {path!r} has {table.X.shape[1]} feature columns "
                              f"({', '.join(table.feature_names)}); the model expects {n_in}"
                              + (f": {', '.join(names)}" if names else ""))
    return ckpt.scaler.transform(X) if ckpt.scaler is not None else X


def cmd_predict(args) -> int:
    from .. import checkpoint, data
    from ..backend import to_numpy

    ckpt = checkpoint.load(args.model, backend=args.backend)
    table = data.load_file(args.data, ckpt.config.get("target"), has_target=False)
    X = _features(ckpt, table, args.data)
    indices = to_numpy(ckpt.model.predict(X))
    labels = ckpt.labels.decode(indices) if ckpt.labels is not None else indices
    values = [v.item() for v in labels]
    proba = to_numpy(ckpt.model.predict_proba(X)).tolist() if args.proba else None
    classes = ckpt.labels.classes if ckpt.labels is not None else list(range(ckpt.model.layer_sizes[-1]))
    if args.output:
        _write_predictions(args.output, values, proba, classes)
    if args.json:
        print(json.dumps({"predictions": values, "classes": classes, **({"probabilities": proba} if proba else {}),
                          **({"output": args.output} if args.output else {})}))
    elif args.output:
        _progress(f"xpnet: wrote {len(values)} predictions to {args.output}")
    else:
        for k, value in enumerate(values):
            print(value if proba is None else ",".join([str(value)] + [f"{p:.6g}" for p in proba[k]]))
    return 0


def _write_predictions(path, values, proba, classes) -> None:
    import csv
    import io

    from ..checkpoint import atomic_write

    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["prediction"] + ([f"p_{c}" for c in classes] if proba else []))
    for k, value in enumerate(values):
        writer.writerow([value] + (list(proba[k]) if proba else []))
    atomic_write(path, lambda handle: handle.write(text.getvalue().encode("utf-8")))


def cmd_evaluate(args) -> int:
    from .. import checkpoint, data
    from .prepare import prepare

    ckpt = checkpoint.load(args.model, backend=args.backend)
    if args.data:
        table = data.load_file(args.data, args.target or ckpt.config.get("target"))
        X = _features(ckpt, table, args.data)
        y = ckpt.labels.encode(table.y) if ckpt.labels is not None else table.y
        split, source = "given", args.data
    else:
        prepared = prepare(ckpt.config)
        held = prepared.X_held.shape[0] > 0
        X, y = (prepared.X_held, prepared.y_held) if held else (prepared.X, prepared.y)
        split, source = ("test" if ckpt.config.get("dataset") == "digits" and not ckpt.config.get("data")
                         else "validation") if held else "training", prepared.source
    model = ckpt.model
    summary = {"model": args.model, "data": source, "split": split, "n_samples": int(X.shape[0]),
               "accuracy": model.accuracy(X, y), "loss": model.loss(X, y), "epochs": ckpt.epochs_done}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"data      {source} ({split}, {X.shape[0]} samples)")
        print(f"accuracy  {summary['accuracy']:.4f}")
        print(f"loss      {summary['loss']:.6f}")
    return 0

