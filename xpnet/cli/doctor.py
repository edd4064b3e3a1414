"""`xpnet doctor`: the environment for a bug report, and `--gpu-check`, the proof that the GPU path works.

    xpnet doctor                    # versions, BLAS, CPU features, backends, GPUs
    xpnet doctor --json             # the same, one JSON object (backends keyed by name)
    xpnet doctor --gpu-check        # train on the GPU against NumPy: agreement, speed, a verdict
    xpnet doctor --gpu-check --require-gpu --json    # in CI on a GPU machine: non-zero unless it ran and passed

Exit status: 0 when the check passed or was skipped (no CUDA device), 1 when a check failed
or, with --require-gpu, when no CUDA device could be checked.
"""

from __future__ import annotations

import json

from .. import doctor
from ..doctor.gpu_check import to_json
from .args import _config_flags, _progress, say


def add_parser(commands) -> None:
    """Add the `doctor` subcommand to ``commands`` (the parser's subparsers)."""
    parser = commands.add_parser(
        "doctor", help="report the environment (versions, BLAS, CPU, backends, GPUs); --gpu-check proves the GPU path",
        description="Print what a bug report needs: versions, NumPy's BLAS and its core type, CPU features and "
                    "threads, each backend's verdict, GPUs. --gpu-check trains on the GPU against NumPy and "
                    "prints a table and a verdict (under 8 minutes).")
    parser.add_argument("--json", action="store_true", help="print exactly one line on stdout: a JSON object")
    parser.add_argument("--gpu-check", action="store_true",
                        help="train on the GPU against NumPy float64 (float32 and float64, chunked and minibatch "
                             "paths, a checkpoint, the scikit-learn estimators, two MPI ranks, speed by size)")
    parser.add_argument("--require-gpu", action="store_true",
                        help="with --gpu-check: exit 1 when no CUDA device could be checked (default: exit 0, "
                             "status skipped)")
    parser.add_argument("--backend", default="cupy", metavar="NAME",
                        help="with --gpu-check: the backend to check (default cupy, the current GPU; cupy:1...)")
    _config_flags(parser)
    parser.set_defaults(handler=cmd_doctor, threads=None)


def cmd_doctor(args) -> int:
    if not args.gpu_check:
        info = doctor.environment()
        say(json.dumps(info, default=str) if args.json else doctor.format_environment(info))
        return 0
    if not args.json:
        _progress(f"xpnet: checking {args.backend} against NumPy (a few minutes on a GPU)...")
    report = doctor.gpu_check(args.backend)
    say(to_json(report) if args.json else doctor.format_gpu_check(report))
    if report["status"] == "failed" or (report["status"] == "skipped" and args.require_gpu):
        return 1
    return 0
