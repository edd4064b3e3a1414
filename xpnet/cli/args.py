"""What every subcommand shares: the argparse parser class, argument types, common flags,
config files, output on stdout and stderr, and the checks of output files."""

from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import re
import sys

from ..backend import ENV_VAR
from ..core.init import SEEDS
from ..errors import XpnetError, XpnetValueError


class UsageError(Exception):
    """A command-line usage problem (reported like argparse's, as one line)."""


class OutputError(XpnetError):
    """stdout cannot be written (a full device, a closed file): reported as one line, exit 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but errors are one ``xpnet: error:`` line instead of usage + message, and a
    mistyped flag, subcommand or choice gets a "did you mean" suggestion."""

    def parse_known_args(self, args=None, namespace=None):
        self.argv = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message):
        raise UsageError(message + _suggestion(self, message))


def command_parser(parser: argparse.ArgumentParser, argv) -> argparse.ArgumentParser:
    """The parser of the subcommand named in ``argv`` (``parser`` itself when there is none)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for token in argv:
                if token in action.choices:
                    return action.choices[token]
    return parser


def long_options(parser: argparse.ArgumentParser) -> dict:
    """``{"--learning-rate": action, ...}``: the long flags of ``parser``."""
    return {name: action for name, action in parser._option_string_actions.items() if name.startswith("--")}


def _suggestion(parser: Parser, message: str) -> str:
    """``"; did you mean --learning-rate?"`` for an unrecognized flag or an invalid choice, else ``""``."""
    argv = getattr(parser, "argv", [])
    if message.startswith("unrecognized arguments:"):
        options = long_options(command_parser(parser, argv))
        for token in message.split(":", 1)[1].split():
            if token.startswith("--"):
                guess = close_match(token.split("=")[0], options)
                if guess:
                    return f"; did you mean {guess}?"
        return ""
    choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)$", message)
    if choice:
        guess = close_match(choice.group(1), re.findall(r"'([^']*)'", choice.group(2)))
        return f"; did you mean {guess!r}?" if guess else ""
    return ""


def close_match(word: str, candidates) -> str | None:
    """The candidate closest to ``word`` (``_`` read as ``-``), or None when none is close."""
    candidates = list(candidates)
    normal = word.replace("_", "-")
    if normal in candidates:
        return normal
    found = difflib.get_close_matches(normal, candidates, n=1, cutoff=0.6)
    return found[0] if found else None


# -- argument types -------------------------------------------------------------------------

def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers such as 64,64, "
                                         f"got {text!r}") from None
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


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value not in SEEDS:
        raise argparse.ArgumentTypeError(f"seeds are whole numbers from 0 to 2**32-1 = {2**32 - 1}, got {text!r}")
    return value


def _float(minimum: float, inclusive: bool, below: float | None = None):
    """An argparse type: a finite float above ``minimum`` (or equal to it when ``inclusive``),
    and under ``below`` when given."""
    bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
    bound += "" if below is None else f" and < {below:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive) \
                or (below is not None and value >= below):
            raise argparse.ArgumentTypeError(f"must be a finite number {bound}, got {text!r}")
        return value

    return parse


_positive_float, _non_negative_float, _fraction = _float(0.0, False), _float(0.0, True), _float(0.0, True, 1.0)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default=None, metavar="NAME",
                        help=f"array backend: numpy, cupy, auto, torch, array_api_strict, or any importable "
                             f"array-API module; a device may follow a colon (array_api_strict:no_float64). "
                             f"Default: ${ENV_VAR}, else auto (CuPy when a CUDA GPU works, else NumPy)")
    parser.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                        help="bound the CPU threads of xpnet, its BLAS and torch to N (default: all cores); "
                             "results do not depend on it")
    parser.add_argument("--json", action="store_true",
                        help="print exactly one line on stdout: a JSON object with full-precision floats")
    _config_flags(parser)


def _config_flags(parser: argparse.ArgumentParser) -> None:
    """--config, --print-config and --debug: every subcommand has them."""
    parser.add_argument("--config", default=None, metavar="FILE.toml",
                        help="read flags from a TOML file: keys are the long flag names (learning-rate or "
                             "learning_rate), values TOML numbers, strings, booleans or arrays (hidden = [64, 64]); "
                             "flags on the command line win")
    parser.add_argument("--print-config", action="store_true",
                        help="print the effective settings (defaults, --config, flags) as TOML that --config "
                             "reads back, and exit")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an unexpected error (to report a bug)")


# -- config files ---------------------------------------------------------------------------

NOT_IN_CONFIG = {"help", "version", "config", "print_config", "debug"}  # flags a config file cannot set


def read_toml(path) -> dict:
    """The table in TOML file ``path`` (tomllib, or tomli before Python 3.11)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise XpnetError("--config needs the tomli package on Python 3.10: pip install tomli") from None
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise XpnetValueError(f"--config {os.fspath(path)!r}: cannot read it ({exc.strerror or exc})") from None
    except (ValueError, UnicodeDecodeError) as exc:  # tomllib.TOMLDecodeError is a ValueError
        raise XpnetValueError(f"--config {os.fspath(path)!r} is not valid TOML: {exc}") from None
    except RecursionError:  # arrays or tables nested thousands deep exhaust the parser's stack
        raise XpnetValueError(f"--config {os.fspath(path)!r} is not valid TOML for xpnet: its arrays or tables are "
                              "nested too deeply; a config holds flat keys such as learning-rate = 0.1") from None


def config_arguments(parser: argparse.ArgumentParser, path) -> list[str]:
    """The flags that the TOML file ``path`` sets, as command-line tokens (``--learning-rate=0.5``).

    They go before the command line's own flags, which therefore win (argparse keeps the
    last value of a flag); every value is then checked as if it had been typed. A relative
    path (the value of a ``FILE`` flag such as ``data``) is read from the config file's
    directory, wherever xpnet runs.
    """
    options = {name: action for name, action in long_options(parser).items() if action.dest not in NOT_IN_CONFIG}
    tokens = []
    for key, value in read_toml(path).items():
        flag = "--" + key.replace("_", "-")
        if flag not in options:
            guess = close_match(flag, options)
            hint = f" (did you mean {guess[2:]}?)" if guess else ""
            raise UsageError(f"--config {os.fspath(path)!r}: unknown key {key!r}{hint}; keys are the long flag names "
                             f"of `{parser.prog}` without the dashes, e.g. learning-rate")
        action = options[flag]
        if action.metavar == "FILE" and isinstance(value, str):  # a path: from the config file's directory
            value = os.path.join(os.path.dirname(os.path.abspath(path)), os.path.expanduser(value))
        tokens += _config_tokens(path, key, flag, action, value)
    return tokens


def _config_tokens(path, key: str, flag: str, action, value) -> list[str]:
    where = f"--config {os.fspath(path)!r}: {key}"
    if action.nargs == 0:  # a switch such as --json, or --header / --no-header
        if not isinstance(value, bool):
            raise UsageError(f"{where} = {value!r}: {flag} is a switch; give true or false")
        if isinstance(action, argparse.BooleanOptionalAction) and not value:
            return [flag.replace("--no-", "--", 1) if flag.startswith("--no-") else "--no-" + flag[2:]]
        return [flag] if value else []
    if isinstance(value, list):
        if not value or any(isinstance(v, (list, dict, bool)) for v in value):
            raise UsageError(f"{where}: give a non-empty array of numbers or strings, e.g. [64, 64]")
        return [f"{flag}=" + ",".join(_config_scalar(where, v) for v in value)]
    return [f"{flag}={_config_scalar(where, value)}"]


def _config_scalar(where: str, value) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise UsageError(f"{where} = {value!r}: give a number or a string")
    return value if isinstance(value, str) else repr(value)


def config_text(parser: argparse.ArgumentParser, args, omit=()) -> str:
    """``args`` as TOML that :func:`config_arguments` reads back (unset flags as comments;
    the destinations in ``omit``, settings that do not apply to this run, left out)."""
    lines = [f"# {parser.prog}: the effective settings; use with --config FILE"]
    for flag, action in long_options(parser).items():
        if action.dest in NOT_IN_CONFIG or action.dest in omit or not hasattr(args, action.dest) \
                or flag != action.option_strings[0]:
            continue  # --no-header is --header's other spelling, --lr --learning-rate's
        value = getattr(args, action.dest)
        key = flag[2:]
        if value is None and action.default is not None:  # an option switched off (--divergence-factor none)
            lines.append(f'{key} = "none"')
        else:
            lines.append(f"# {key} is not set (its default applies)" if value is None else f"{key} = {_toml(value)}")
    return "\n".join(lines)


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else "inf" if value > 0 else "-inf")
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))  # a TOML basic string: JSON's escapes are TOML's


def given_flags(make_parser, argv) -> set:
    """The destinations of the flags ``argv`` gives explicitly (whatever their values), read
    from the command line itself: ``argv`` parsed once more with every default suppressed."""
    parser = make_parser()
    stack = [parser]
    while stack:
        current = stack.pop()
        current._defaults.clear()
        for action in current._actions:
            action.default = argparse.SUPPRESS
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())
    return set(vars(parser.parse_args(argv))) - {"command"}


# -- output ---------------------------------------------------------------------------------

def say(text: str = "") -> None:
    """One line of results on stdout; a stdout that cannot be written is an :class:`OutputError`."""
    try:
        print(text)
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise stdout_error(exc) from None


def flush_stdout() -> None:
    """Write out what stdout still buffers (an :class:`OutputError` if it cannot be written)."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise stdout_error(exc) from None


def stdout_error(exc: OSError) -> OutputError:
    return OutputError(f"cannot write the results to stdout ({exc.strerror or exc}); "
                       "redirect stdout to a file on a device with free space")


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- output files ---------------------------------------------------------------------------

def check_destination(flag: str, path) -> str:
    """Refuse ``path`` as an output file before any work (:func:`xpnet.checkpoint.check_destination`:
    a directory, device, FIFO or socket, a dangling link, a missing or unwritable directory),
    the message naming ``flag``. Returns the file that will really be written."""
    from ..io.atomic import check_destination as check

    try:
        return check(path)
    except XpnetValueError as exc:
        raise XpnetValueError(f"{flag}: {exc}") from None
