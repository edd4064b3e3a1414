"""`xpnet bench`: its flags, running xpnet.bench, and printing its progress lines and table."""

from __future__ import annotations

import argparse
import json

from ..backend import ENV_VAR
from ..engine.threads import limit_threads
from ..errors import BackendUnavailableError
from .args import _positive_int, _progress


def _count_list(text: str) -> list[int]:
    """Comma-separated counts; 1e6 style is accepted when it is a whole number."""
    values = []
    for item in (v.strip() for v in text.split(",")):
        if not item:
            continue
        try:
            value = float(item) if any(c in item for c in ".eE") else int(item)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers such as 1000,1e5, "
                                             f"got {text!r}") from None
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


def _compare_list(text: str) -> list[str]:
    from ..bench import COMPARE

    names = _name_list(text)
    for name in names:
        if name not in COMPARE:
            raise argparse.ArgumentTypeError(f"unknown baseline {name!r}; choose from {', '.join(COMPARE)}")
    return names


def add_parser(commands) -> None:
    """Add the `bench` subcommand to ``commands`` (the parser's subparsers)."""
    bench = commands.add_parser(
        "bench", help="time full-batch training epochs against the machine's limits (and PyTorch)",
        description="Time one full-batch training epoch (forward, backward, update, synced) of the "
                    "tutorials' network (input -> hidden tanh -> softmax cross-entropy, L2 0.01, mean "
                    "gradient) for every n-samples x hidden case, on synthetic data. Also measures the "
                    "machine's ceilings (large matmul GFLOP/s, copy GB/s, tanh elements/s) in the same "
                    "run, and each case's tanh floor (np.tanh over its N x H elements), and reports each case "
                    "against them. A progress line per case goes to stderr; "
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
    bench.add_argument("--compare", type=_compare_list, default=None, metavar="BASELINE[,BASELINE]",
                       help="also time peers doing the same step (same data, weights, dtype), interleaved with "
                            "xpnet's samples, and report the time ratios: torch (PyTorch eager: nn.Linear + autograd "
                            "+ optim.SGD), torch-compile (the same step through torch.compile, compiled before "
                            "timing), jax (jax.jit of the whole step; float64 turns on JAX's 64-bit mode), tutorial "
                            "(WildML's own NumPy step in float64); a peer not installed or failing to compile is "
                            "skipped with the reason; e.g. --compare torch,jax")
    bench.add_argument("--kernels", choices=("auto", "numpy", "jit"), default="auto",
                       help="xpnet's whole-pass kernels: auto (the numba ones when numba is installed, else the "
                            "NumPy ones), numpy (NumPy only), jit (numba only, the generic pass where none "
                            "applies; pip install numba, or '.[jit]' in a clone); a JIT kernel is compiled before "
                            "the timed epochs (compile_seconds) and each row says which ran (kernels) (default: auto)")
    bench.add_argument("--memory", action="store_true",
                       help="also measure each case's peak resident memory over one more epoch (Linux)")
    bench.add_argument("--plot", default=None, metavar="FILE",
                       help="draw samples/s against hidden size per backend and n-samples into FILE "
                            "(.png, .svg, .pdf; needs matplotlib)")
    bench.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                       help="bound the CPU threads of the BLAS (and torch) to N (default: all cores)")
    bench.add_argument("--json", action="store_true",
                       help="print exactly one line on stdout: {machine, ceilings, results, skipped}")
    bench.set_defaults(handler=cmd_bench)


def cmd_bench(args) -> int:
    from .. import bench

    if args.plot:  # the same checks as train/tutorial --plot, before minutes of measuring
        from .. import plot

        plot.check_path(args.plot)
    if args.compare and {"torch", "torch-compile"} & set(args.compare):
        try:  # loaded first so --threads bounds its pool too; a missing torch is reported per case
            bench.get_backend("torch")
        except BackendUnavailableError:
            pass
    with limit_threads(args.threads):
        report = bench.run(args.backend, args.dtype, args.n_samples, args.hidden, input_dim=args.input_dim,
                           classes=args.classes, epochs=args.epochs, repeat=args.repeat, compare=args.compare,
                           memory=args.memory, kernels=args.kernels,
                           progress=lambda kind, item: _progress(bench.format_progress(kind, item)))
    if args.plot:
        from .. import plot

        plot.bench_figure(report, args.plot)
    if args.json:
        print(json.dumps(report))
        return 0
    print(bench.format_table(report))
    if args.plot:
        print(f"plot written to {args.plot}")
    return 0
