"""Command line front end: turns flags into library calls and prints the results.

    xpnet train                                  # moons, 2 -> 32 tanh -> 2 softmax, auto backend
    xpnet train --backend numpy --hidden 64,64 --epochs 500 --json
    xpnet tutorial list
    xpnet tutorial wildml-moons --hidden 5 --json
    xpnet bench --backend numpy --dtype float32,float64 --hidden 64,256 --compare torch

Progress goes to stderr, results to stdout; with ``--json`` stdout is exactly one line
holding one JSON object. Errors are one line on stderr starting ``xpnet: error:`` and exit
with status 2 (a diverged run exits with 1, an interrupted one with 130).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import __version__, datasets, tutorials
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
                                description="Train an MLP classifier by full-batch gradient descent on a "
                                            "built-in dataset and report loss and training accuracy.")
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
                       help="full-batch updates (default: 2000)")
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
    _add_bench(commands)
    return parser


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_train(args) -> int:
    X, y = datasets.load(args.dataset, n_samples=args.n_samples, noise=args.noise, seed=args.seed)
    if y.ndim == 2:  # the tutorial tables: a 0/1 column becomes class labels
        y = y[:, 0].astype("int64")
    classes = int(y.max()) + 1
    activation = args.activation.split(",") if "," in args.activation else args.activation
    model = MLP([X.shape[1], *args.hidden, max(classes, 2)], activation=activation, output="softmax",
                init=args.init, dtype=args.dtype, backend=args.backend, seed=args.seed)
    if not args.json:
        _progress(f"xpnet: training {model} on {args.dataset} ({X.shape[0]} samples); backend: {model.backend.reason}")

    def report(event):
        accuracy = model.accuracy(X, y)
        _progress(f"epoch {event.epoch:>{len(str(event.epochs))}}/{event.epochs}  loss {event.loss:.6f}  accuracy {accuracy:.4f}")

    result = model.fit(X, y, epochs=args.epochs, learning_rate=args.learning_rate, l2=args.l2,
                       reduction=args.reduction, log_every=args.log_every, callback=report)
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


# -- xpnet bench ---------------------------------------------------------------------------
def _count_list(text: str) -> list[int]:
    """Comma-separated counts; 1e6 style is accepted when it is a whole number."""
    values = []
    for item in (v.strip() for v in text.split(",")):
        if not item:
            continue
        try:
            value = float(item) if any(c in item for c in ".eE") else int(item)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers such as 1000,1e5, got {text!r}") from None
        if value != int(value) or value < 1:
            raise argparse.ArgumentTypeError(f"every value must be a whole number >= 1, got {item!r}")
        values.append(int(value))
    if not values:
        raise argparse.ArgumentTypeError(f"expected at least one whole number, got {text!r}")
    return values


def _name_list(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected one or more comma-separated names, got {text!r}")
    return names


def _dtype_list(text: str) -> list[str]:
    names = _name_list(text)
    for name in names:
        if name not in ("float32", "float64"):
            raise argparse.ArgumentTypeError(f"dtype {name!r} is not supported; choose float32 and/or float64")
    return names


def _add_bench(commands) -> None:
    bench = commands.add_parser(
        "bench", help="time full-batch training epochs against the machine's limits (and PyTorch)",
        description="Time one full-batch training epoch (forward, backward, update, synced) of the "
                    "tutorials' network (input -> hidden tanh -> softmax cross-entropy, L2 0.01, mean "
                    "gradient) for every n-samples x hidden case, on synthetic data. Also measures the "
                    "machine's ceilings (large matmul GFLOP/s, copy GB/s, tanh elements/s) in the same "
                    "run and reports each case against them. A progress line per case goes to stderr; "
                    "cases that would not fit in memory are skipped with the estimate.")
    bench.add_argument("--backend", type=_name_list, default=None, metavar="NAME[,NAME...]",
                       help=f"array backend(s), comma separated: numpy, cupy, auto, torch, array_api_strict... "
                            f"(default: ${ENV_VAR}, else auto)")
    bench.add_argument("--dtype", type=_dtype_list, default=["float32"], metavar="DTYPE[,DTYPE]",
                       help="float32 and/or float64, comma separated (default: float32)")
    bench.add_argument("--n-samples", type=_count_list, default=[1000, 10000, 100000], metavar="N[,N...]",
                       help="batch sizes (rows of the full batch), comma separated; 1e5 style is fine "
                            "(default: 1000,10000,100000)")
    bench.add_argument("--hidden", type=_count_list, default=[64, 256, 1024], metavar="W[,W...]",
                       help="hidden layer widths, comma separated: one case per width, one hidden layer each "
                            "(default: 64,256,1024)")
    bench.add_argument("--input-dim", type=_positive_int, default=2, metavar="D",
                       help="input features (default: 2, the tutorials'; 784 for an MNIST-sized net)")
    bench.add_argument("--classes", type=_positive_int, default=2, metavar="C",
                       help="softmax outputs, at least 2 (default: 2; 10 for an MNIST-sized net)")
    bench.add_argument("--epochs", type=_positive_int, default=1,
                       help="epochs per timed sample; seconds_per_epoch = sample time / epochs (default: 1)")
    bench.add_argument("--repeat", type=_positive_int, default=7,
                       help="timed samples per case, after one untimed warm-up sample; the median is "
                            "reported (default: 7)")
    bench.add_argument("--compare", choices=("torch",), default=None,
                       help="also time the same step written in PyTorch (nn.Linear + autograd + optim.SGD, "
                            "same data, weights, dtype and device), interleaved, and report the time ratio")
    bench.add_argument("--plot", default=None, metavar="FILE",
                       help="draw samples/s against hidden size per backend and n-samples into FILE "
                            "(.png, .svg, .pdf; needs matplotlib)")
    bench.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                       help="bound the CPU threads of the BLAS (and torch) to N (default: all cores)")
    bench.add_argument("--json", action="store_true",
                       help="print exactly one line on stdout: {machine, ceilings, results, skipped}")
    bench.set_defaults(handler=cmd_bench)


def _bench_progress(kind: str, item: dict) -> None:
    where = f"{item['backend']} {item['dtype']}"
    if kind == "ceilings":
        _progress(f"{where} ceilings: matmul {item['matmul_size']}^3 {item['matmul_gflops']:.1f} GFLOP/s, "
                  f"copy {item['copy_gbytes_per_second']:.1f} GB/s, {item['activation']} "
                  f"{item['activation_elements_per_second']:.3g} elements/s")
        return
    case = f"{where} n_samples={item['n_samples']} hidden={item['hidden']}"
    if kind == "skipped":
        _progress(f"{case}: skipped, {item['reason']}")
        return
    line = (f"{case}: {item['seconds_per_epoch'] * 1e3:.3f} ms/epoch, {item['samples_per_second']:.3g} samples/s, "
            f"{item['gflops']:.2f} GFLOP/s ({item['percent_of_matmul_peak']:.1f}% of matmul peak)")
    if "torch_seconds_per_epoch" in item:
        line += (f"; torch {item['torch_seconds_per_epoch'] * 1e3:.3f} ms/epoch "
                 f"(xpnet/torch time {item['xpnet_over_torch']:.2f})")
    _progress(line)


def cmd_bench(args) -> int:
    from . import bench

    if args.compare == "torch":  # load torch first so --threads bounds its pool too
        bench.get_backend("torch")
    with limit_threads(args.threads):
        report = bench.run(args.backend, args.dtype, args.n_samples, args.hidden, input_dim=args.input_dim,
                           classes=args.classes, epochs=args.epochs, repeat=args.repeat, compare=args.compare,
                           progress=_bench_progress)
    if args.plot:
        bench.plot(report, args.plot)
    if args.json:
        print(json.dumps(report))
        return 0
    head = f"{'backend':<8} {'dtype':<7} {'n_samples':>9} {'hidden':>6} {'ms/epoch':>10} {'samples/s':>10} " \
           f"{'GFLOP/s':>8} {'%peak':>6} {'GB/s':>6} {'/bw floor':>9}"
    torch = any("torch_seconds_per_epoch" in r for r in report["results"])
    print(head + (f" {'torch ms':>10} {'xp/torch':>8}" if torch else ""))
    for r in report["results"]:
        line = (f"{r['backend']:<8} {r['dtype']:<7} {r['n_samples']:>9} {r['hidden']:>6} "
                f"{r['seconds_per_epoch'] * 1e3:>10.3f} {r['samples_per_second']:>10.3g} {r['gflops']:>8.2f} "
                f"{r['percent_of_matmul_peak']:>6.1f} {r['gbytes_per_second']:>6.2f} {r['time_over_bandwidth_floor']:>9.2f}")
        if torch:
            line += f" {r['torch_seconds_per_epoch'] * 1e3:>10.3f} {r['xpnet_over_torch']:>8.2f}"
        print(line)
    for s in report["skipped"]:
        print(f"skipped  {s['backend']} {s['dtype']} n_samples={s['n_samples']} hidden={s['hidden']}: {s['reason']}")
    if args.plot:
        print(f"plot written to {args.plot}")
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
