"""`xpnet bench`: its flags, running xpnet.bench, and printing its progress lines and table."""

from __future__ import annotations

import argparse
import json

from ..backend import ENV_VAR, limit_threads
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
    bench.add_argument("--compare", type=_compare_list, default=None, metavar="BASELINE[,BASELINE]",
                       help="also time baselines, interleaved with xpnet's samples, and report the time ratios: "
                            "torch (the same step in PyTorch eager: nn.Linear + autograd + optim.SGD, same data, "
                            "weights, dtype and device), tutorial (WildML's own NumPy step in float64, the whole "
                            "batch at once); e.g. --compare torch,tutorial")
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
    for name in BASELINE_NAMES:
        if f"{name}_seconds_per_epoch" in item:
            line += (f"; {name} {item[f'{name}_seconds_per_epoch'] * 1e3:.3f} ms/epoch "
                     f"({1 / item[f'xpnet_over_{name}']:.1f}x faster)")
        elif f"{name}_skipped" in item:
            line += f"; {name} not run: {item[f'{name}_skipped']}"
    _progress(line)


BASELINE_NAMES = ("torch", "tutorial")  # the order of the bench table's baseline columns


def cmd_bench(args) -> int:
    from .. import bench

    if args.plot:  # the same checks as train/tutorial --plot, before minutes of measuring
        from .. import plot

        plot.check_path(args.plot)
    if args.compare and "torch" in args.compare:  # load torch first so --threads bounds its pool too
        bench.get_backend("torch")
    with limit_threads(args.threads):
        report = bench.run(args.backend, args.dtype, args.n_samples, args.hidden, input_dim=args.input_dim,
                           classes=args.classes, epochs=args.epochs, repeat=args.repeat, compare=args.compare,
                           memory=args.memory, progress=_bench_progress)
    if args.plot:
        bench.plot(report, args.plot)
    if args.json:
        print(json.dumps(report))
        return 0
    _print_bench_table(report)
    if args.plot:
        print(f"plot written to {args.plot}")
    return 0


def _print_bench_table(report: dict) -> None:
    rows = report["results"]
    names = [n for n in BASELINE_NAMES if any(f"{n}_seconds_per_epoch" in r or f"{n}_skipped" in r for r in rows)]
    memory = any("peak_rss_bytes" in r for r in rows)
    head = f"{'backend':<8} {'dtype':<7} {'n_samples':>9} {'hidden':>6} {'ms/epoch':>10} {'samples/s':>10} " \
           f"{'GFLOP/s':>8} {'%peak':>6} {'GB/s':>6} {'/bw floor':>9}"
    head += "".join(f" {name + ' ms':>11} {'x faster':>8}" for name in names)
    print(head + (f" {'peak RSS MiB':>12}" if memory else ""))
    for r in rows:
        line = (f"{r['backend']:<8} {r['dtype']:<7} {r['n_samples']:>9} {r['hidden']:>6} "
                f"{r['seconds_per_epoch'] * 1e3:>10.3f} {r['samples_per_second']:>10.3g} {r['gflops']:>8.2f} "
                f"{r['percent_of_matmul_peak']:>6.1f} {r['gbytes_per_second']:>6.2f} "
                f"{r['time_over_bandwidth_floor']:>9.2f}")
        for name in names:
            if f"{name}_seconds_per_epoch" in r:
                line += f" {r[f'{name}_seconds_per_epoch'] * 1e3:>11.3f} {1 / r[f'xpnet_over_{name}']:>8.1f}"
            else:
                line += f" {'not run':>11} {'':>8}"
        if memory:
            line += f" {r['peak_rss_bytes'] / 2**20:>12.0f}" if "peak_rss_bytes" in r else f" {'-':>12}"
        print(line)
    for r in rows:
        for name in names:
            if f"{name}_skipped" in r:
                print(f"{name} not run beside n_samples={r['n_samples']} hidden={r['hidden']}: {r[f'{name}_skipped']}")
    for s in report["skipped"]:
        print(f"skipped  {s['backend']} {s['dtype']} n_samples={s['n_samples']} hidden={s['hidden']}: {s['reason']}")

