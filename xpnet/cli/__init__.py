"""Command line front end: turns flags into library calls and prints the results.

    xpnet train                                  # moons, 2 -> 32 tanh -> 2 softmax, auto backend
    xpnet train --backend numpy --hidden 64,64 --epochs 500 --json
    xpnet train --config run.toml --print-config # the effective settings, as TOML
    xpnet tutorial list
    xpnet tutorial wildml-moons --hidden 5 --json
    xpnet bench --backend numpy --dtype float32,float64 --hidden 64,256 --compare torch

Progress goes to stderr, results to stdout; with ``--json`` stdout is exactly one line
holding one JSON object. Errors are one line on stderr starting ``xpnet: error:`` and exit
with status 2 (a diverged run exits with 1, a failed save with 1, an interrupted one with
128 + the signal's number: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP). An unexpected
error is one line too; ``--debug`` shows its traceback. See docs/cli.md.

One module per subcommand, each adding its parser with ``add_parser(commands)``:
:mod:`~xpnet.cli.train` (with :mod:`~xpnet.cli.prepare`, its data), :mod:`~xpnet.cli.tutorial`,
:mod:`~xpnet.cli.model` (predict and evaluate), :mod:`~xpnet.cli.bench`; :mod:`~xpnet.cli.args`
holds what they share. This module assembles them and turns errors into exit statuses.
"""

from __future__ import annotations

import os
import sys
import traceback

from .. import __version__, distributed
from ..backend import ENV_VAR, get_backend
from ..engine.threads import limit_threads
from ..errors import XpnetError
from . import bench, convert, model, train, tutorial
from .args import (
    OutputError,
    Parser,
    UsageError,
    command_parser,
    config_arguments,
    config_text,
    flush_stdout,
    given_flags,
    say,
)

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
    convert.add_parser(commands)
    return parser


def main(argv=None) -> int:
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``) and return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv[:argv.index("--")] if "--" in argv else "--debug" in argv
    try:
        code = _run(argv)
        flush_stdout()
        return code
    except (UsageError, XpnetError) as exc:
        return _fail(_one_line(exc), debug, isinstance(exc, OutputError))
    except BrokenPipeError:  # e.g. `xpnet train --json | head -c 100`: the reader has what it wanted
        _quiet_stdout()
        return 0
    except KeyboardInterrupt:
        print("xpnet: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the last resort: a bug or an error xpnet does not know yet
        return _fail(f"unexpected {type(exc).__name__}: {_one_line(exc)} (--debug shows the traceback; "
                     "please report it)", debug)


def _run(argv: list) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    sub = command_parser(parser, argv)
    if getattr(args, "config", None):  # the file's flags go first, so the command line's win
        at = argv.index(args.command) + 1
        argv = argv[:at] + config_arguments(sub, args.config) + argv[at:]
        args = parser.parse_args(argv)
    if getattr(args, "print_config", False):
        say(config_text(sub, args))
        return 0
    args.given = given_flags(build_parser, argv)  # what the user set, whatever the value (for --resume)
    comm = distributed.launch() if getattr(args, "distributed", False) else None
    threads = args.threads if comm is None or args.threads else comm.threads_per_rank()
    if threads:
        _load_backend_library(args)
    with limit_threads(threads):
        return args.handler(args)


def _load_backend_library(args) -> None:
    """Import torch (through xpnet.backend) before the thread limit is applied, so that the
    limit reaches its thread pool too: limit_threads only sets the libraries already loaded."""
    names = getattr(args, "backend", None) or os.environ.get(ENV_VAR) or ""
    for name in names if isinstance(names, (list, tuple)) else str(names).split(","):  # bench takes several
        if name.split(":")[0].strip() == "torch":
            get_backend(name.strip())


def _fail(message: str, debug: bool, stdout_failed: bool = False) -> int:
    """Report one error line (after the traceback with --debug); end every rank of an MPI job."""
    if debug:
        traceback.print_exc()
    comm = distributed.active()
    where = comm.where() if comm else ""
    print(f"xpnet: error: {where}{message}", file=sys.stderr, flush=True)
    if stdout_failed:
        _quiet_stdout()
    if comm is not None:
        comm.abort(2)  # the other processes would wait forever in their next collective
    return 2


def _quiet_stdout() -> None:
    """Point stdout at /dev/null: what it still buffers cannot be written (a full device, a
    closed pipe), and Python would otherwise complain again when it flushes at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout closed or replaced (tests capture it)
        pass


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
