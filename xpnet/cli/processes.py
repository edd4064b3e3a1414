"""What the processes of an MPI job (`xpnet train --distributed`) agree on: the same settings
at start, and rank 0's outcome (a save, a plot) at the end, so every process exits alike."""

from __future__ import annotations

import json
import os

from ..errors import XpnetValueError

# What may differ between the processes of one MPI job (each picks its device and cores).
RANK_LOCAL = {"handler", "given", "backend", "threads", "debug", "effective"}


def agree(comm, ok: bool) -> bool:
    """Rank 0's ``ok`` on every rank (one broadcast), so all ranks exit with the same status."""
    return ok if comm is None else bool(comm.from_root(1.0 if ok else 0.0))


def jsonable(value) -> bool:
    """Whether ``value`` can be written as JSON (settings are gathered and saved as JSON)."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def check_same_settings(comm, args) -> None:
    """Stop every process with a clear error unless all were given the same flags and data
    (one gather of the settings: a few hundred bytes per process)."""
    mine = {key: value for key, value in vars(args).items() if key not in RANK_LOCAL and jsonable(value)}
    if args.data:
        mine["data file size"] = os.path.getsize(args.data) if os.path.isfile(args.data) else None
    everyone = comm.allgather(mine)
    first = everyone[0]
    keys = sorted({key for other in everyone for key in set(other) | set(first) if other.get(key) != first.get(key)})
    if keys:
        ranks = [rank for rank, other in enumerate(everyone) if other != first]
        names = ", ".join(key if " " in key else "--" + key.replace("_", "-") for key in keys)
        raise XpnetValueError(f"the processes were started with different settings ({names} differ between rank 0 "
                              f"and rank {', '.join(map(str, ranks))}); start every process with the same flags "
                              "and data")
