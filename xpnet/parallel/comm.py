"""Transport between the processes of a data-parallel run: MPI (mpi4py) or a size-1 no-op.

:class:`Communicator` moves numbers between processes (one buffer per training step, a few
small sums, broadcasts, the failure protocol); :class:`Shard` keeps the row bookkeeping of
one process (its rows' places in the global order, the batches it takes part in). Training
itself (:func:`xpnet.fit`) always has a communicator: without MPI it is size 1 and every
operation returns its arguments. See :mod:`xpnet.distributed` for how to run a job.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np

from .. import backend as _backend
from ..errors import XpnetError, XpnetValueError, XpnetWarning
from .buffers import buffer_dtype, decode, encode, pack, reduce_on_device, tail_size, unpack

# Environment variables that MPI launchers set in every process they start (MPICH/Hydra,
# Intel MPI and Slurm's PMI: PMI_SIZE; Open MPI: OMPI_COMM_WORLD_SIZE; PMIx: PMIX_SIZE...).
LAUNCHER_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE")
MPI_HINT = ("install it with `pip install mpi4py mpich` (in a clone of xpnet: `pip install '.[mpi]' mpich`; "
            "mpich is a self-contained MPI library)")

ABORT_GRACE = 0.5  # seconds between the error message and MPI_Abort
_ACTIVE = None  # the communicator launch() returned, so the CLI can abort it on errors


@dataclass
class ReduceStats:
    """Time spent in collective operations (for benchmarks: the all-reduce share of a step)."""

    calls: int = 0  # Allreduce calls: step buffers, and the few small sums (counts, losses, checks)
    seconds: float = 0.0  # wall time in those calls, staging to and from the host included
    values: int = 0  # numbers reduced in total


def shard_bounds(n_rows: int, rank: int, size: int, *, allow_empty: bool = False) -> tuple[int, int]:
    """Rows ``[start, stop)`` of process ``rank`` out of ``size``: contiguous, uneven allowed.

    The first ``n_rows % size`` processes get one row more than the others, so the blocks
    concatenated in rank order are exactly ``range(n_rows)``. Every block needs a row
    unless ``allow_empty`` (then the last ranks get none when ``n_rows < size``).

    >>> [shard_bounds(10_001, r, 3) for r in range(3)]
    [(0, 3334), (3334, 6668), (6668, 10001)]
    """
    if size < 1 or not 0 <= rank < size:
        raise XpnetValueError(f"rank={rank} must be in 0..size-1 with size={size} >= 1")
    if n_rows < size and not allow_empty:
        raise XpnetValueError(
            f"{n_rows} rows cannot be shared by {size} processes (each needs at least one row); "
            f"use more samples or fewer processes (at most {n_rows})"
        )
    base, extra = divmod(n_rows, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


class Shard:
    """This process's rows of the training data: how many rows all processes hold together, and
    where this process's sit in that global order (:mod:`xpnet.training.batches` cuts batches).

    ``positions`` (int64, increasing) are the global positions of its rows; None means all of
    ``0..n_total-1`` (one process).
    """

    def __init__(self, n_total: int, positions: np.ndarray | None = None):
        self.n_total, self.positions = n_total, positions

    def local(self, rows: np.ndarray) -> np.ndarray:
        """Indices into this process's rows of those global ``rows`` that it holds, in the order of ``rows``."""
        positions = self.positions
        if positions is None:  # one process holds every row
            return rows
        if not positions.size:
            return rows[:0]
        at = np.searchsorted(positions, rows)
        held = positions[np.minimum(at, positions.size - 1)] == rows
        return at[held]


class Communicator:
    """The processes training one model together; a size-1 no-op without MPI.

    Parameters
    ----------
    mpi_comm : mpi4py.MPI.Comm, optional
        The MPI communicator (``None``: a single process, no MPI needed).

    Attributes
    ----------
    rank, size : int
        This process's index and the number of processes.
    local_rank, local_size : int
        The same on this machine (used to pick a GPU and to share the CPU cores).
    stats : ReduceStats
        Time and volume of the reductions so far.
    """

    def __init__(self, mpi_comm=None):
        self._comm = mpi_comm
        self.rank = mpi_comm.Get_rank() if mpi_comm is not None else 0
        self.size = mpi_comm.Get_size() if mpi_comm is not None else 1
        self.local_rank, self.local_size, self._cores = 0, 1, _own_cores()
        if self.size > 1:
            self._init_node()
        self.stats = ReduceStats()
        self._device_reduce = {}
        # set by setup(): this process's rows, the interrupt flag to send and whether any process has sent one
        self.shard: Shard | None = None
        self._interrupt, self._stop = None, False

    def _init_node(self):
        from mpi4py import MPI

        node = self._comm.Split_type(MPI.COMM_TYPE_SHARED)
        try:
            self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
            # set-up only, a few small lists: the pickle-based allgather is fine here
            cpu_sets = [set(s) for s in node.allgather(sorted(self._cores))]
        finally:
            node.Free()
        self._sharing = sum(1 for s in cpu_sets if s & self._cores)

    def __repr__(self) -> str:
        return f"Communicator(rank={self.rank}, size={self.size})"

    @property
    def is_root(self) -> bool:
        """True on rank 0, the process that prints and writes files."""
        return self.rank == 0

    def where(self) -> str:
        """``"rank 1 of 3: "`` in a parallel job, else ``""`` (a prefix for messages)."""
        return f"rank {self.rank} of {self.size}: " if self.size > 1 else ""

    # -- data ------------------------------------------------------------------------------
    def bounds(self, n_rows: int, *, allow_empty: bool = False) -> tuple[int, int]:
        """This process's rows ``[start, stop)`` of ``n_rows`` (see :func:`shard_bounds`)."""
        return shard_bounds(n_rows, self.rank, self.size, allow_empty=allow_empty)

    def rows(self, a):
        """This process's contiguous block of the rows of ``a`` (all of them when size is 1)."""
        if self.size == 1:
            return a
        start, stop = self.bounds(a.shape[0])
        return a[start:stop]

    # -- resources -------------------------------------------------------------------------
    def threads_per_rank(self) -> int:
        """BLAS threads for this process: the cores it owns, never more than its share.

        Processes bound to disjoint cores (``mpiexec -bind-to core``) own all of their
        cores; processes on the same machine that see the same cores split them evenly.
        """
        if self.size == 1:
            return len(self._cores)
        return max(1, len(self._cores) // max(1, self._sharing))

    def backend_name(self, name: str | None) -> str | None:
        """The backend for this process: CuPy on GPU ``local_rank % device count``, which becomes
        this process's current device (see :func:`xpnet.backend.backend_for_rank`)."""
        if self.size == 1:
            return name
        return _backend.backend_for_rank(name, self.local_rank, os.environ.get(_backend.ENV_VAR))

    # -- collectives used by training ------------------------------------------------------
    def setup(self, model, n_local: int, local_split: bool, rows=None, interrupt=None) -> Shard:
        """Check what data-parallel training supports; return this process's :class:`Shard`.

        Parameters
        ----------
        model : MLP
        n_local : int
            This process's rows (0 is allowed when other processes hold rows).
        local_split : bool
            Early stopping would split this process's rows alone (refused).
        rows : array of int (n_local,), optional
            The positions of this process's rows in the global row order, increasing (e.g.
            ``Prepared.rows``: after a validation split they need not be contiguous).
            Default: contiguous blocks in rank order, this one starting after the rows of
            the lower ranks (an exclusive scan of the counts), e.g. :meth:`rows` blocks.
            Minibatches are drawn over the global order, so training does not depend on
            how the rows are spread.
        interrupt : object with a ``seen`` attribute, optional
            This process's Ctrl-C flag; it rides in every step buffer (:meth:`reduce_step`).
        """
        self._interrupt, self._stop = interrupt, False
        if self.size == 1:
            self.shard = Shard(n_local)
            return self.shard
        n_total = int(self.sum_floats([n_local])[0])
        unsupported = [name for name, used in (("dropout", model.spec.dropout), ("batch_norm", model.bn is not None),
                                               ("early_stopping without validation_data", local_split)) if used]
        if unsupported:
            raise XpnetValueError(f"{', '.join(unsupported)} is not supported in data-parallel training yet; "
                                  "train without it, or in one process")
        positions = self._contiguous_rows(n_local) if rows is None else self._checked_rows(rows, n_local, n_total)
        self.shard = Shard(n_total, positions)
        return self.shard

    def _contiguous_rows(self, n_local: int) -> np.ndarray:
        from mpi4py import MPI

        counts = np.array([n_local], dtype=np.int64)
        offset = np.zeros(1, dtype=np.int64)
        self._comm.Exscan(counts, offset, op=MPI.SUM)  # undefined on rank 0: it keeps the zero
        start = int(offset[0]) if self.rank else 0
        return np.arange(start, start + n_local)

    def _checked_rows(self, rows, n_local: int, n: int) -> np.ndarray:
        """``rows`` as int64 positions, checked: increasing, in range, and (by the sum of all
        processes' positions) covering every global row once."""
        rows = np.asarray(rows)
        if rows.shape != (n_local,) or (n_local and rows.dtype.kind not in "iu"):
            raise XpnetValueError(f"rows has shape {rows.shape} and dtype {rows.dtype}; expected ({n_local},) "
                                  "whole numbers, the global positions of this process's rows")
        rows = rows.astype(np.int64)
        if n_local and (rows[0] < 0 or rows[-1] >= n or np.any(np.diff(rows) <= 0)):
            raise XpnetValueError(f"rows must be increasing positions in 0..{n - 1}; sort X, y and rows by rows")
        total = np.array([int(np.sum(rows))], dtype=np.int64)
        self._allreduce(total)
        if int(total[0]) != n * (n - 1) // 2:
            raise XpnetValueError(f"the processes' rows do not cover the {n} global rows once each (some are "
                                  "given twice or not at all); give every process its own positions")
        return rows

    @property
    def interrupted(self) -> bool:
        """Stop for a Ctrl-C? One process: its own flag. Several: whether any process had seen
        one when it packed its last step buffer, so that every process stops after the same epoch."""
        if self.size == 1:
            return bool(self._interrupt is not None and self._interrupt.seen)
        return self._stop

    def allreduce_gradients(self, backend, dW, db, n_local: int):
        """The gradient sums ``dW``, ``db`` (lists of backend arrays; ``db`` may be None) of every
        process added up, in the one step buffer of :meth:`reduce_step`."""
        if self.size == 1:
            return dW, db
        reduced = self.reduce_step(backend, list(dW) + (list(db) if db is not None else []), n_local)[0]
        n = len(dW)
        return reduced[:n], (reduced[n:] if db is not None else None)

    def reduce_step(self, backend, grads: list, n_local: int, loss=None) -> tuple:
        """One training step's exchange, all of it in ONE buffer and one ``Allreduce``.

        The buffer holds every array of ``grads`` (this process's gradient sums over its
        ``n_local`` rows of the batch, in any fixed order) in their own dtype, then ``n_local``,
        the summed data loss ``loss`` of those rows (0 when None; a float or a 0-d array of
        ``backend``) and this process's interrupt flag (1 after a Ctrl-C), encoded so that
        their sums stay exact (:func:`_encode`). Returns ``(grads, n, loss)``: the arrays and
        the counts summed over every process (``loss`` None when it was None); afterwards
        :attr:`interrupted` says whether any process was interrupted. With one process it
        returns its arguments.
        """
        if self.size == 1:
            return list(grads), n_local, loss
        flag = 1 if self._interrupt is not None and self._interrupt.seen else 0
        reduced, (n, total_loss, flags) = self._reduce(backend, list(grads), n_local, loss, flag)
        self._stop = self._stop or flags > 0
        return reduced, n, (None if loss is None else total_loss)

    def sum_floats(self, values) -> list[float]:
        """Element-wise sum over the ranks of a few numbers (one float64 ``Allreduce``)."""
        if self.size == 1:
            return [float(v) for v in values]
        buffer = np.asarray(values, dtype=np.float64)
        self._allreduce(buffer)
        return buffer.tolist()

    def allgather(self, value) -> list:
        """Every rank's ``value`` (a small object: a label set...), in rank order.

        Set-up only: this is mpi4py's pickle-based ``allgather``, never used for numbers
        that training exchanges every step.
        """
        return [value] if self.size == 1 else self._comm.allgather(value)

    def from_root(self, value: float) -> float:
        """Rank 0's ``value`` on every rank (one ``Bcast``), for a choice all ranks must share."""
        if self.size == 1:
            return value
        buffer = np.array([value], dtype=np.float64)
        self._comm.Bcast(buffer, root=0)
        return float(buffer[0])

    def sample(self, X, y, limit: int):
        """Every k-th row of the global order of ``X, y`` (k = ceil(N / limit)), on rank 0.

        What ``X[::k], y[::k]`` gives one process holding all rows (the rows are
        gathered with their positions and sorted), for pictures; None on the other ranks.
        With one process: ``X, y``, all of them. Needs :meth:`setup` first.
        """
        if self.size == 1:
            return X, y
        assert self.shard is not None and self.shard.positions is not None, "sample() needs setup() first"
        positions = self.shard.positions
        pick = positions % max(1, -(-self.shard.n_total // limit)) == 0
        parts = self._comm.gather((positions[pick], X[pick], y[pick]), root=0)
        if not self.is_root:
            return None
        order = np.argsort(np.concatenate([part[0] for part in parts]))
        return tuple(np.concatenate([part[i] for part in parts])[order] for i in (1, 2))

    def barrier(self) -> None:
        """Wait until every rank gets here (benchmarks use it to time communication alone)."""
        if self.size > 1:
            self._comm.Barrier()

    # -- weights ---------------------------------------------------------------------------
    def broadcast_parameters(self, model) -> None:
        """Give every rank rank 0's weights (one ``Bcast`` of a contiguous buffer)."""
        if self.size == 1:
            return
        params = model.parameters()
        buffer = pack(params)
        self._comm.Bcast(buffer, root=0)
        model.set_parameters(unpack(model.backend, buffer, params))

    def check_identical(self, model) -> None:
        """Raise :class:`XpnetError` on every rank unless all ranks hold bitwise-equal weights."""
        if self.size == 1:
            return
        mine = pack(model.parameters())
        root = mine.copy()
        self._comm.Bcast(root, root=0)
        differs = np.array([0.0 if mine.tobytes() == root.tobytes() else 1.0])
        self._allreduce(differs)
        if differs[0]:
            raise XpnetError(
                f"the weights of {int(differs[0])} of {self.size} ranks differ from rank 0's after "
                "training; this is a bug in xpnet or a rank computed on different data, please report it"
            )

    # -- failure ---------------------------------------------------------------------------
    def abort(self, code: int = 1) -> None:
        """End every process of the job with exit status ``code`` (no-op for size 1)."""
        if self.size > 1:
            sys.stdout.flush()
            sys.stderr.flush()
            time.sleep(ABORT_GRACE)  # else the launcher may tear down before forwarding our last lines
            self._comm.Abort(code)

    @contextlib.contextmanager
    def abort_on_error(self, code: int = 2):
        """Abort the whole job when the block raises an :class:`XpnetError` on this rank.

        The other ranks would otherwise wait forever in their next collective. The error
        message is written to stderr (prefixed with the rank) before aborting.
        """
        try:
            yield self
        except XpnetError as exc:
            if self.size == 1:
                raise
            print(f"xpnet: error: {self.where()}{' '.join(str(exc).split())}", file=sys.stderr, flush=True)
            self.abort(code)
            raise  # pragma: no cover - Abort does not return

    # -- internals -------------------------------------------------------------------------
    def _reduce(self, backend, arrays, n_local: int, loss, flag: int) -> tuple:
        """All-reduce ``arrays`` (backend arrays) and the encoded numbers as one buffer of the
        arrays' dtype; returns the summed arrays and the decoded ``(n, loss, flags)``."""
        dtype = buffer_dtype(arrays)
        reducer = self._device_reducer(backend)
        start = time.perf_counter()
        with backend.activate():
            if reducer is not None:
                out, tail = reduce_on_device(backend, reducer, arrays, n_local, loss, flag, dtype)
            else:
                host_loss = 0.0 if loss is None else float(loss)
                buffer = pack(arrays, encode(n_local, host_loss, flag, dtype), dtype)
                self._allreduce(buffer, timed=False)
                out, tail = unpack(backend, buffer, arrays), buffer[buffer.size - tail_size(dtype):]
            backend.sync()
        self.stats.seconds += time.perf_counter() - start
        self.stats.calls += 1
        self.stats.values += sum(math.prod(a.shape) for a in arrays) + tail_size(dtype)
        return out, decode(tail, dtype)

    def _allreduce(self, buffer: np.ndarray, timed: bool = True) -> None:
        """Sum ``buffer`` (float64, or int64 for exact counts) over the ranks, in place."""
        from mpi4py import MPI

        start = time.perf_counter()
        self._comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        if timed:
            self.stats.seconds += time.perf_counter() - start
            self.stats.calls += 1
            self.stats.values += buffer.size

    def _device_reducer(self, backend):
        """NCCL (or a CUDA-aware MPI) for CuPy arrays, set up once; None: stage through the host."""
        if backend.name != "cupy":
            return None
        key = backend.qualified_name()
        if key not in self._device_reduce:
            with backend.activate():
                reducer, note = _backend.device_allreducer(backend, self._comm)
            if note and self.is_root:
                warnings.warn(note, XpnetWarning, stacklevel=2)  # the CLI shows it as one line
            self._device_reduce[key] = reducer
        return self._device_reduce[key]


def _own_cores() -> set:
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return set(range(os.cpu_count() or 1))


def launch(*, require: bool = False) -> Communicator:
    """The communicator of this process: MPI's world when launched by ``mpiexec``, else size 1.

    MPI is used when mpi4py is already initialised (``python -m mpi4py`` does that) or a
    launcher's environment variables are present; otherwise mpi4py is not even imported.

    Parameters
    ----------
    require : bool
        Raise instead of returning a size-1 communicator when MPI is not available.

    Raises
    ------
    XpnetError
        When ``mpiexec`` started several processes but mpi4py cannot be imported (each would
        otherwise train alone on all the data), or when ``require`` and MPI is missing.
    """
    global _ACTIVE
    launched = "mpi4py.MPI" in sys.modules or _launcher_size() > 1
    comm = None
    if launched or require:
        try:
            from mpi4py import MPI
        except ImportError as exc:
            n = _launcher_size()
            who = f"this process was started by an MPI launcher ({n} processes) but mpi4py" if n > 1 else "mpi4py"
            raise XpnetError(f"{who} cannot be imported ({exc}); {MPI_HINT}") from None
        else:
            comm = MPI.COMM_WORLD
    _ACTIVE = Communicator(comm)
    return _ACTIVE


def _launcher_size() -> int:
    for name in LAUNCHER_SIZE_VARS:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


def active() -> Communicator | None:
    """The communicator :func:`launch` returned last in this process, if any."""
    return _ACTIVE
