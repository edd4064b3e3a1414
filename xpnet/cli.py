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
import functools
import json
import math
import sys

from . import __version__, datasets, distributed, tutorials
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


def _float(minimum: float, inclusive: bool):
    """An argparse type: a finite float above ``minimum`` (or equal to it when ``inclusive``)."""
    bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
            raise argparse.ArgumentTypeError(f"must be a finite number {bound}, got {text!r}")
        return value

    return parse


_positive_float, _non_negative_float = _float(0.0, False), _float(0.0, True)


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
                                description="Train an MLP classifier by full-batch gradient descent on a "
                                            "built-in dataset and report loss and training accuracy.")
    _common(train)
    train.add_argument("--dataset", default="moons", choices=datasets.NAMES,
                       help="built-in dataset (default: moons)")
    train.add_argument("--n-samples", type=_positive_int, default=1000, metavar="N",
                       help="samples to generate (default: 1000; the 4-row tables ignore it)")
    train.add_argument("--noise", type=_non_negative_float, default=None,
                       help="noise of the generated data (default: the dataset's own, 0.2 for moons)")
    train.add_argument("--hidden", type=_int_list, default=[32], metavar="W[,W...]",
                       help="hidden layer widths, comma separated, e.g. 64,64 (default: 32)")
    train.add_argument("--activation", default="tanh", metavar="NAME",
                       help="hidden activation: tanh, sigmoid or relu; one, or one per layer comma separated (default: tanh)")
    train.add_argument("--epochs", type=_positive_int, default=2000,
                       help="full-batch updates (default: 2000)")
    train.add_argument("--learning-rate", type=_positive_float, default=0.5, metavar="RATE",
                       help="gradient step size, Trask's alpha / WildML's epsilon (default: 0.5)")
    train.add_argument("--l2", type=_non_negative_float, default=0.0,
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
    train.add_argument("--distributed", action="store_true",
                       help="data-parallel training over the processes of an MPI job, launched as `mpiexec -n P "
                            "python -m mpi4py -m xpnet train ... --distributed`: each process keeps its own "
                            "contiguous rows, one Allreduce per step sums the gradients, results equal one "
                            "process's and only rank 0 prints. Each process uses its share of the cores unless "
                            "--threads is given. Without mpiexec it runs as one process. Needs "
                            "`pip install 'xpnet[mpi]'` and an MPI (e.g. `pip install mpich`)")
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
    tutorial.set_defaults(handler=cmd_tutorial)
    return parser


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_train(args) -> int:
    comm = distributed.active() if getattr(args, "distributed", False) else None  # launched in main()
    X, y = datasets.load(args.dataset, n_samples=args.n_samples, noise=args.noise, seed=args.seed)
    if y.ndim == 2:  # the tutorial tables: a 0/1 column becomes class labels
        y = y[:, 0].astype("int64")
    classes = int(y.max()) + 1
    n_samples = int(X.shape[0])
    if comm is not None:  # every rank generated the whole dataset; each keeps its own rows
        X, y = comm.rows(X), comm.rows(y)
    quiet = comm is not None and not comm.is_root  # only rank 0 prints
    activation = args.activation.split(",") if "," in args.activation else args.activation
    model = MLP([X.shape[1], *args.hidden, max(classes, 2)], activation=activation, output="softmax",
                init=args.init, dtype=args.dtype, seed=args.seed,
                backend=args.backend if comm is None else comm.backend_name(args.backend))
    if not args.json and not quiet:
        _progress(f"xpnet: training {model} on {args.dataset} ({n_samples} samples); backend: {model.backend.reason}"
                  + (f"; {comm.size} processes" if comm is not None else ""))
    accuracy_of = model.accuracy if comm is None else functools.partial(comm.accuracy, model)

    def report(event):
        accuracy = accuracy_of(X, y)
        if not quiet:
            _progress(f"epoch {event.epoch:>{len(str(event.epochs))}}/{event.epochs}  loss {event.loss:.6f}  accuracy {accuracy:.4f}")

    fit = model.fit if comm is None else functools.partial(distributed.fit, model, comm=comm)
    result = fit(X, y, epochs=args.epochs, learning_rate=args.learning_rate, l2=args.l2,
                 reduction=args.reduction, log_every=args.log_every, callback=report)
    accuracy = accuracy_of(X, y)
    summary = {**result.to_dict(), "accuracy": accuracy, "dataset": args.dataset, "n_samples": n_samples,
               "layer_sizes": list(model.layer_sizes), "learning_rate": args.learning_rate, "l2": args.l2}
    if comm is not None:
        summary["processes"] = comm.size
        if quiet:
            return 1 if result.diverged else 0
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"backend   {model.backend.describe()}  ({model.backend.reason})")
        print(f"model     {list(model.layer_sizes)} {args.activation} -> softmax, {args.dtype}")
        print(f"epochs    {result.epochs}   time {result.seconds:.3f} s")
        print(f"loss      {result.final_loss:.6f}")
        print(f"accuracy  {accuracy:.4f} (training)")
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
    result = tutorials.run(args.name, backend=args.backend, hidden=args.hidden, iterations=args.iterations)
    print(json.dumps(result.data) if args.json else "\n".join(result.lines))
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 0
        comm = distributed.launch() if getattr(args, "distributed", False) else None
        with limit_threads(args.threads if comm is None or args.threads else comm.threads_per_rank()):
            return args.handler(args)
    except (UsageError, XpnetError) as exc:
        comm = distributed.active()
        print(f"xpnet: error: {comm.where() if comm else ''}{_one_line(exc)}", file=sys.stderr, flush=True)
        if comm is not None:
            comm.abort(2)  # the other processes would wait forever in their next Allreduce
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
