"""`xpnet convert`: a CSV table to an .npy file, streaming, for training on data bigger than memory."""

from __future__ import annotations

import argparse
import json

from ..io.convert import DTYPES, csv_to_npy
from ..memory import format_bytes
from .args import _config_flags, check_destination, say


def add_parser(commands) -> None:
    """Add the `convert` subcommand to ``commands`` (the parser's subparsers)."""
    convert = commands.add_parser(
        "convert", help="convert a .csv table to an .npy file (memory-mapped when trained on), streaming",
        description="Write the rows of a CSV table (read as `xpnet train --data` reads it) into an .npy file: the "
                    "features in the CSV's order, then the label column last, so that `xpnet train --data "
                    "FILE.npy` trains on the same data. A CSV is held in memory to train on it; an .npy is "
                    "memory-mapped and read a chunk at a time. The conversion parses a block of rows at a time "
                    "(bounded memory), and writes the file atomically. Labels must be numbers. See docs/data.md.")
    convert.add_argument("source", metavar="SOURCE.csv", help="the CSV table")
    convert.add_argument("dest", metavar="DEST.npy", help="the .npy file to write (replaced if it exists)")
    convert.add_argument("--target", default=None, metavar="COLUMN",
                         help="the label column: a header name or a column index counting from 0 (default: the "
                              "last column); it becomes the last column of the .npy")
    convert.add_argument("--header", action=argparse.BooleanOptionalAction, default=None,
                         help="whether the first row names the columns (default: detected; a first row of numbers "
                              "is data)")
    convert.add_argument("--dtype", choices=DTYPES, default="float64",
                         help="the .npy's numbers: float64 keeps every value (training on it equals training on the "
                              "CSV); float32 halves the file (default: float64)")
    convert.add_argument("--json", action="store_true", help="print one JSON line with what was written")
    _config_flags(convert)
    convert.set_defaults(handler=cmd_convert, threads=None)  # no BLAS work: nothing to limit


def cmd_convert(args) -> int:
    check_destination("DEST", args.dest)
    done = csv_to_npy(args.source, args.dest, args.target, header=args.header, dtype=args.dtype)
    if args.json:
        say(json.dumps(done))
    else:
        say(f"wrote {done['dest']}: {done['rows']:,} rows x {done['features']} features + the label column "
            f"{done['target']!r} (last), {done['dtype']}, {format_bytes(done['bytes'])}; train with "
            f"`xpnet train --data {done['dest']}`")
    return 0
