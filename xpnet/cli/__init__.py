"""Command line front end: turns flags into library calls and prints the results.

    xpnet train                                  # moons, 2 -> 32 tanh -> 2 softmax, auto backend
    xpnet train --backend numpy --hidden 64,64 --epochs 500 --json
    xpnet tutorial list
    xpnet tutorial wildml-moons --hidden 5 --json
    xpnet bench --backend numpy --dtype float32,float64 --hidden 64,256 --compare torch

Progress goes to stderr, results to stdout; with ``--json`` stdout is exactly one line
holding one JSON object. Errors are one line on stderr starting ``xpnet: error:`` and exit
with status 2 (a diverged run exits with 1, an interrupted one with 130).

One module per subcommand, each adding its parser with ``add_parser(commands)``:
:mod:`~xpnet.cli.train` (with :mod:`~xpnet.cli.prepare`, its data), :mod:`~xpnet.cli.tutorial`,
:mod:`~xpnet.cli.model` (predict and evaluate), :mod:`~xpnet.cli.bench`; :mod:`~xpnet.cli.args`
holds what they share. This module assembles them and turns errors into exit statuses.
"""

from __future__ import annotations

import sys

from .. import __version__, distributed
from ..backend import limit_threads
from ..errors import XpnetError
from . import bench, model, train, tutorial
from .args import Parser, UsageError

__all__ = ["build_parser", "main"]


def build_parser() -> Parser:
    """The `xpnet` argument parser, with every subcommand."""
    parser = Parser(prog="xpnet", description="Neural networks from the classic NumPy tutorials, on any array backend.")
    parser.add_argument("--version", action="version", version=f"xpnet {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    train.add_parser(commands)
    tutorial.add_parser(commands)
    model.add_parser(commands)
    bench.add_parser(commands)
    return parser


def main(argv=None) -> int:
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``) and return the exit status."""
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

