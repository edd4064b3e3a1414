"""`xpnet bench`: its flags, running xpnet.bench, and printing its progress lines and table."""

from __future__ import annotations

import argparse
import json

from ..backend import ENV_VAR
from ..engine.threads import limit_threads
from ..errors import BackendUnavailableError
from .args import UsageError, _positive_int, _progress


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


def _byte_size(text: str) -> int:
    """A size in bytes: ``2e9``, ``512M``, ``2G`` or ``2GiB`` (K, M, G, T are powers of 1024)."""
    item = text.strip().upper().removesuffix("IB").removesuffix("B")
    scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(item[-1:], 1)
    number = item[:-1] if scale > 1 else item
    try:
        value = float(number) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size such as 2G, 512M or 2e9 (bytes), got {text!r}") from None
    if not value >= 1:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be at least 1 byte, got {text!r}")
    return int(value)


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
    bench.add_argument("--n-samples", type=_count_list, default=None, metavar="N[,N...]",
                       help="batch sizes (rows of the full batch), comma separated; 1e5 style is fine "
                            "(default: 1000,10000,100000; 100000 with --sweep hidden)")
    bench.add_argument("--hidden", type=_count_list, default=None, metavar="W[,W...]",
                       help="hidden layer widths, comma separated: one case per width, one hidden layer each "
                            "(default: 64,256,1024; 256 with --sweep rows)")
    bench.add_argument("--input-dim", type=_positive_int, default=2, metavar="D",
                       help="input features (default: 2, the tutorials'; 784 for an MNIST-sized net)")
    bench.add_argument("--classes", type=_positive_int, default=2, metavar="C",
                       help="softmax outputs, at least 2 (default: 2; 10 for an MNIST-sized net)")
    bench.add_argument("--epochs", type=_positive_int, default=1,
                       help="epochs per timed sample; seconds_per_epoch = sample time / epochs (default: 1)")
    bench.add_argument("--repeat", type=_positive_int, default=None,
                       help="timed samples per case, after one untimed warm-up sample; the median is "
                            "reported (default: 7; 3 with --sweep)")
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
    bench.add_argument("--source", choices=("memory", "file"), default="memory",
                       help="where the rows come from: memory, or a .npy file written for each case (features, "
                            "then the label) and mapped with np.load(mmap_mode='r'), read from the page cache every "
                            "epoch; a file row adds the GB/s it reads and the page cache's read bandwidth measured "
                            "beside it, the floor for streamed data (default: memory)")
    bench.add_argument("--data-dir", default=None, metavar="DIR",
                       help="where --source file writes its data files, removed after each case (default: the "
                            "system's temporary folder)")
    bench.add_argument("--sweep", choices=("rows", "hidden"), default=None,
                       help="time the cost curve instead of a grid: rows 1e3, 2e3, 5e3, ... up to the largest that "
                            "fits --budget, or hidden 16, 32, ..., 8192; --plot draws seconds per epoch and samples/s "
                            "against size with the tanh floor, the matmul peak (and the page-cache read rate) as "
                            "lines, and where the data or the weights outgrow each CPU cache")
    bench.add_argument("--budget", type=_byte_size, default=None, metavar="SIZE",
                       help="with --sweep: the most memory (and, with --source file, disk) the largest case may "
                            "take, e.g. 2G or 512M (default: 1G)")
    bench.add_argument("--memory", action="store_true",
                       help="also measure each case's peak resident memory over one more epoch (Linux)")
    bench.add_argument("--plot", default=None, metavar="FILE",
                       help="draw samples/s against hidden size per backend and n-samples into FILE (with --sweep: "
                            "the cost curve) (.png, .svg, .pdf; needs matplotlib)")
    bench.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                       help="bound the CPU threads of the BLAS (and torch) to N (default: all cores)")
    bench.add_argument("--json", action="store_true",
                       help="print exactly one line on stdout: {machine, blas, ceilings, results, skipped} "
                            "(and sweep with --sweep)")
    bench.set_defaults(handler=cmd_bench)
    commands = bench.add_subparsers(dest="bench_command", metavar="compare", parser_class=type(bench))
    compare = commands.add_parser(
        "compare", help="two saved pytest-benchmark runs side by side, in samples/s, with the ratio and the noise",
        description="Show two runs of the pytest-benchmark suite (pytest bench --benchmark-save=NAME, or "
                    "--benchmark-json=FILE) side by side: each benchmark's samples/s in both, B's over A's, each "
                    "run's noise (half the spread of its rounds over its median) and whether the difference is "
                    "within that noise (the two runs' ranges of rounds overlap).")
    compare.add_argument("run_a", metavar="RUN_A",
                         help="the first run: a JSON file, or a saved run's number (0001) or name (main) in --storage")
    compare.add_argument("run_b", metavar="RUN_B", help="the second run, named the same ways")
    compare.add_argument("--storage", default=".benchmarks", metavar="DIR",
                         help="where pytest-benchmark saved the runs (its --benchmark-storage; default: .benchmarks)")
    compare.add_argument("--json", action="store_true",
                         help="print exactly one line on stdout: {a_path, b_path, rows, only_a, only_b}")
    compare.set_defaults(handler=cmd_compare)


def _say_progress(kind: str, item: dict) -> None:
    """One progress line on stderr; after the BLAS line, the warning when an environment variable
    forces narrower kernels than the CPU has."""
    from ..bench import format_progress

    _progress(format_progress(kind, item))
    if kind == "blas" and item.get("warning"):
        _progress(f"xpnet: warning: {item['warning']}")


def sweep_repeat() -> int:
    from ..bench.sweep import DEFAULT_REPEAT

    return DEFAULT_REPEAT


def cmd_compare(args) -> int:
    from ..bench import compare

    storage = compare.storage_path(args.storage)
    a, b = compare.load_run(args.run_a, storage), compare.load_run(args.run_b, storage)
    result = compare.compare_runs(a, b)
    print(json.dumps(result) if args.json else compare.format_comparison(result, a, b))
    return 0


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
    if args.budget is not None and args.sweep is None:
        raise UsageError("--budget bounds a --sweep; give --sweep rows or --sweep hidden with it")
    repeat = args.repeat or (sweep_repeat() if args.sweep else 7)
    options = dict(epochs=args.epochs, repeat=repeat, compare=args.compare, memory=args.memory,
                   kernels=args.kernels, source=args.source, data_dir=args.data_dir, progress=_say_progress)
    with limit_threads(args.threads):
        if args.sweep:
            from ..bench import sweep

            report = sweep.run_sweep(args.sweep, args.backend, args.dtype, n_samples=args.n_samples,
                                     hidden=args.hidden, input_dim=args.input_dim, classes=args.classes,
                                     budget=args.budget or sweep.DEFAULT_BUDGET, **options)
        else:
            report = bench.run(args.backend, args.dtype, args.n_samples or [1000, 10000, 100000],
                               args.hidden or [64, 256, 1024], input_dim=args.input_dim, classes=args.classes,
                               **options)
    if args.plot and args.sweep:
        sweep.sweep_figure(report, args.plot)
    elif args.plot:
        from .. import plot

        plot.bench_figure(report, args.plot)
    if args.json:
        print(json.dumps(report))
        return 0
    print(bench.format_table(report))
    if args.plot:
        print(f"plot written to {args.plot}")
    return 0
