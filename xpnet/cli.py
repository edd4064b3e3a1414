"""Command line front end: turns flags into library calls and prints the results.

    xpnet train                                  # moons, 2 -> 32 tanh -> 2 softmax, auto backend
    xpnet train --backend numpy --hidden 64,64 --epochs 500 --json
    xpnet tutorial list
    xpnet tutorial wildml-moons --hidden 5 --json

Progress goes to stderr, results to stdout; with ``--json`` stdout is exactly one line
holding one JSON object. Errors are one line on stderr starting ``xpnet: error:`` and exit
with status 2 (a diverged run exits with 1, an interrupted one with 130).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import __version__, datasets, optim, tutorials
from .backend import ENV_VAR, limit_threads
from .errors import XpnetError, XpnetValueError
from .mlp import MLP


class UsageError(Exception):
    """A command-line usage problem (reported like argparse's, as one line)."""


class Parser(argparse.ArgumentParser):
    """argparse, but errors are one ``xpnet: error:`` line instead of usage + message."""

    def error(self, message):
        raise UsageError(message)


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers such as 64,64, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"layer widths must be whole numbers >= 1, got {text!r}")
    return values


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default=None, metavar="NAME",
                        help=f"array backend: numpy, cupy, auto, torch, array_api_strict, or any importable "
                             f"array-API module; a device may follow a colon (array_api_strict:no_float64). "
                             f"Default: ${ENV_VAR}, else auto (CuPy when a CUDA GPU works, else NumPy)")
    parser.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                        help="bound the CPU threads of xpnet and its BLAS to N (default: all cores); "
                             "results do not depend on it")
    parser.add_argument("--json", action="store_true",
                        help="print exactly one line on stdout: a JSON object with full-precision floats")


def build_parser() -> Parser:
    parser = Parser(prog="xpnet", description="Neural networks from the classic NumPy tutorials, on any array backend.")
    parser.add_argument("--version", action="version", version=f"xpnet {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    train = commands.add_parser("train", help="train an MLP classifier on a built-in dataset",
                                description="Train an MLP classifier by gradient descent (full batch, or "
                                            "minibatches with --batch-size) on a built-in dataset and report "
                                            "loss and training accuracy.")
    _common(train)
    train.add_argument("--dataset", default="moons", choices=datasets.NAMES,
                       help="built-in dataset (default: moons)")
    train.add_argument("--n-samples", type=_positive_int, default=1000, metavar="N",
                       help="samples to generate (default: 1000; the 4-row tables ignore it)")
    train.add_argument("--noise", type=float, default=None,
                       help="noise of the generated data (default: the dataset's own, 0.2 for moons)")
    train.add_argument("--hidden", type=_int_list, default=[32], metavar="W[,W...]",
                       help="hidden layer widths, comma separated, e.g. 64,64 (default: 32)")
    train.add_argument("--activation", default="tanh", metavar="NAME",
                       help="hidden activation: tanh, sigmoid or relu; one, or one per layer comma separated (default: tanh)")
    train.add_argument("--epochs", type=_positive_int, default=2000,
                       help="passes over the data; full-batch updates without --batch-size (default: 2000)")
    train.add_argument("--learning-rate", type=float, default=0.5, metavar="RATE",
                       help="gradient step size, Trask's alpha / WildML's epsilon (default: 0.5)")
    train.add_argument("--l2", type=float, default=0.0,
                       help="L2 strength on the weights, WildML's reg_lambda (default: 0)")
    train.add_argument("--reduction", choices=("mean", "sum"), default="mean",
                       help="average the gradient over samples, or sum it as the tutorials do (default: mean)")
    train.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                       help="floating point precision (default: float32)")
    train.add_argument("--init", default="auto",
                       help="weight init: auto, xavier, he, wildml, trask, cavar (default: auto)")
    train.add_argument("--seed", type=int, default=0, help="seed for data and weights (default: 0)")
    train.add_argument("--log-every", type=_positive_int, default=None, metavar="N",
                       help="log loss and accuracy every N epochs (default: about 20 points)")
    train.add_argument("--classes", type=_positive_int, default=None, metavar="K",
                       help="number of classes for --dataset spirals or blobs (default: 3)")
    _training_options(train)
    train.set_defaults(handler=cmd_train)

    tutorial = commands.add_parser("tutorial", help="run one of the tutorials exactly, through the library",
                                   description="Run a tutorial program through xpnet (float64, the tutorial's own "
                                               "seed) and print what the tutorial prints. `xpnet tutorial list` "
                                               "names them.")
    _common(tutorial)
    tutorial.add_argument("name", metavar="NAME", help="a tutorial name, or `list`")
    tutorial.add_argument("--hidden", type=_positive_int, default=None,
                          help="hidden layer size (trask-alpha: 4, the text also shows 32; wildml-moons: 3)")
    tutorial.add_argument("--iterations", type=_positive_int, default=None,
                          help="passes to run instead of the tutorial's own count")
    tutorial.add_argument("--activation", default=None, metavar="NAME",
                          help="hidden activation where the tutorial allows it (wildml-activations: relu or "
                               "sigmoid, default relu)")
    tutorial.set_defaults(handler=cmd_tutorial)
    return parser


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return value


def _training_options(train: argparse.ArgumentParser) -> None:
    """Flags for minibatches, momentum, schedules, clipping, dropout, batch norm, early stopping."""
    group = train.add_argument_group("optimization (see xpnet.optim; defaults: plain full-batch descent)")
    group.add_argument("--batch-size", type=_positive_int, default=None, metavar="B",
                       help="samples per update, reshuffled every epoch from --seed (default: all, full batch)")
    group.add_argument("--momentum", type=_fraction, default=0.0, metavar="MU",
                       help="momentum in [0, 1): v = MU*v + g, step -RATE*v (default: 0, off)")
    group.add_argument("--nesterov", action="store_true", help="Nesterov momentum (needs --momentum > 0)")
    group.add_argument("--schedule", default="constant", choices=optim.SCHEDULES,
                       help="learning-rate schedule over epochs t: constant; annealing RATE/(1+DECAY*t); "
                            "step RATE*GAMMA**floor(t/STEP); cosine from RATE down to 0 (default: constant)")
    group.add_argument("--lr-decay", type=float, default=optim.Schedule.decay, metavar="DECAY",
                       help=f"annealing: DECAY in RATE/(1+DECAY*t) (default: {optim.Schedule.decay})")
    group.add_argument("--lr-step", type=_positive_int, default=optim.Schedule.step, metavar="STEP",
                       help=f"step: epochs between drops (default: {optim.Schedule.step})")
    group.add_argument("--lr-gamma", type=float, default=optim.Schedule.gamma, metavar="GAMMA",
                       help=f"step: factor at each drop (default: {optim.Schedule.gamma})")
    group.add_argument("--clip-value", type=float, default=None, metavar="C",
                       help="clip every gradient entry to [-C, C], Trask's delta trimming (default: off)")
    group.add_argument("--clip-norm", type=float, default=None, metavar="N",
                       help="rescale all gradients together to global L2 norm <= N (default: off)")
    group = train.add_argument_group("regularization")
    group.add_argument("--dropout", type=_fraction, default=0.0, metavar="P",
                       help="inverted dropout rate on hidden layers, training only (default: 0, off)")
    group.add_argument("--batch-norm", action="store_true",
                       help="batch normalization before each hidden activation (running statistics at inference)")
    group.add_argument("--early-stopping", action="store_true",
                       help="hold out --validation-fraction of the data; stop when its loss has not improved "
                            "for --patience epochs and restore the best weights")
    group.add_argument("--validation-fraction", type=float, default=0.1, metavar="F",
                       help="fraction held out for --early-stopping (default: 0.1)")
    group.add_argument("--patience", type=_positive_int, default=10, metavar="EPOCHS",
                       help="epochs without validation improvement before stopping (default: 10)")


def _fit_options(args) -> dict:
    """The keyword arguments of xpnet.fit for the training flags (checked, so errors come before any work)."""
    optim.check_options(momentum=args.momentum, nesterov=args.nesterov, clip_value=args.clip_value,
                        clip_norm=args.clip_norm)
    return dict(batch_size=args.batch_size, momentum=args.momentum, nesterov=args.nesterov,
                schedule=optim.Schedule(args.schedule, decay=args.lr_decay, step=args.lr_step, gamma=args.lr_gamma),
                clip_value=args.clip_value, clip_norm=args.clip_norm, early_stopping=args.early_stopping,
                validation_fraction=args.validation_fraction, patience=args.patience)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_train(args) -> int:
    fit_options = _fit_options(args)
    options = {}
    if args.classes is not None:
        if args.dataset not in ("spirals", "blobs"):
            raise XpnetValueError(f"--classes applies to --dataset spirals or blobs, not {args.dataset}; drop it")
        options["classes"] = args.classes
    X, y = datasets.load(args.dataset, n_samples=args.n_samples, noise=args.noise, seed=args.seed, **options)
    if y.ndim == 2:  # the tutorial tables: a 0/1 column becomes class labels
        y = y[:, 0].astype("int64")
    classes = int(y.max()) + 1
    activation = args.activation.split(",") if "," in args.activation else args.activation
    model = MLP([X.shape[1], *args.hidden, max(classes, 2)], activation=activation, output="softmax",
                init=args.init, dtype=args.dtype, backend=args.backend, seed=args.seed, dropout=args.dropout,
                batch_norm=args.batch_norm)
    if not args.json:
        _progress(f"xpnet: training {model} on {args.dataset} ({X.shape[0]} samples); backend: {model.backend.reason}")

    def report(event):
        accuracy = model.accuracy(X, y)
        _progress(f"epoch {event.epoch:>{len(str(event.epochs))}}/{event.epochs}  loss {event.loss:.6f}  accuracy {accuracy:.4f}")

    result = model.fit(X, y, epochs=args.epochs, learning_rate=args.learning_rate, l2=args.l2,
                       reduction=args.reduction, log_every=args.log_every, callback=report, **fit_options)
    accuracy = model.accuracy(X, y)
    summary = {**result.to_dict(), "accuracy": accuracy, "dataset": args.dataset, "n_samples": int(X.shape[0]),
               "layer_sizes": list(model.layer_sizes), "learning_rate": args.learning_rate, "l2": args.l2}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"backend   {model.backend.describe()}  ({model.backend.reason})")
        print(f"model     {list(model.layer_sizes)} {args.activation} -> softmax, {args.dtype}")
        print(f"epochs    {result.epochs}   time {result.seconds:.3f} s")
        print(f"loss      {result.final_loss:.6f}")
        print(f"accuracy  {accuracy:.4f} (training)")
        if args.early_stopping:
            print(f"early     best epoch {result.best_epoch} (weights restored), "
                  f"{'stopped early' if result.stopped_early else 'ran all epochs'}")
    if result.diverged:
        print(f"xpnet: error: {result.message}", file=sys.stderr)
        return 1
    return 0


def cmd_tutorial(args) -> int:
    if args.name == "list":
        if args.json:
            print(json.dumps({name: t.summary for name, t in tutorials.TUTORIALS.items()}))
        else:
            width = max(map(len, tutorials.TUTORIALS))
            for name, t in tutorials.TUTORIALS.items():
                print(f"{name:<{width}}  {t.summary}")
        return 0
    result = tutorials.run(args.name, backend=args.backend, hidden=args.hidden, iterations=args.iterations,
                           activation=args.activation)
    print(json.dumps(result.data) if args.json else "\n".join(result.lines))
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 0
        with limit_threads(args.threads):
            return args.handler(args)
    except (UsageError, XpnetError) as exc:
        print(f"xpnet: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `xpnet train --json | head -c 100`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("xpnet: interrupted", file=sys.stderr)
        return 130


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
