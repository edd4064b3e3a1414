"""Data-parallel full-batch training across processes with MPI (mpi4py).

Full-batch gradients are sums over samples, so P processes can each hold some of the
rows, compute the gradient SUMS of their rows, add them up with one ``Allreduce`` per
step, divide by the global sample count and apply the same update. Every process then
holds the same weights, and the result equals single-process training on all rows up to
the order of floating-point additions (measured in float64: losses within 4e-16 relative
of one process after 2000 steps of ``xpnet train`` with 3 processes).

    mpiexec -n 4 python -m mpi4py -m xpnet train --n-samples 1000000 --distributed
    mpiexec -n 4 python -m mpi4py -m xpnet train --data big.npy --standardize --distributed

or from Python (launched the same way)::

    from xpnet import MLP, datasets, distributed
    comm = distributed.launch()                  # size 1 without mpiexec or without mpi4py
    X, y = datasets.load("moons", n_samples=10_001, seed=0)
    X, y = comm.rows(X), comm.rows(y)            # this process's contiguous block of rows
    model = MLP([2, 32, 2], backend="numpy", dtype="float64")
    with comm.abort_on_error():                  # a failing rank ends the whole job
        result = distributed.fit(model, X, y, comm=comm, epochs=100)

Which rows a process holds: by default contiguous blocks in rank order, of any sizes
(each block starts after the rows of the lower ranks: an exclusive scan of the counts);
or any rows, with ``global_rows=`` giving their positions in the global order (what
``xpnet train --data FILE --distributed`` passes after its validation split, see
:func:`xpnet.data.prepare`). A process may hold no rows at all.

What is exchanged, per step (:meth:`Communicator.reduce_step`): ONE contiguous float64
buffer, reduced in place with the buffer-based ``Allreduce`` (never the pickle-based
``allreduce``), holding every parameter's gradient sum, then the local sample count, the
local summed data loss and the local Ctrl-C flag. In full-batch training the loss slot
carries the loss of the weights the step starts from at logging points (the same pass
computes both), and training checks it for divergence before applying the update; at
other steps it is 0. Minibatch training sends the same buffer per update, and at
logging points one more forward pass over this process's rows gives the loss, summed
in a 2-number buffer (data loss, sample count); early stopping sums the validation loss
the same way every epoch. Set-up: the global row count (an ``Allreduce``), the offsets
(an ``Exscan``), rank 0's initial weights (one ``Bcast``); at the end every rank checks
that its weights are bitwise rank 0's.

Ctrl-C: every step buffer carries the flag, so all processes learn of an interrupt in
the same step and stop after the same epoch (:attr:`Communicator.interrupted`); a second
Ctrl-C interrupts at once (under ``python -m mpi4py`` that aborts the job).

Without MPI (mpi4py not installed, or the program not launched by ``mpiexec``)
:func:`launch` returns a size-1 communicator whose every operation is a no-op, so the
same program runs as one process and trains exactly like :func:`xpnet.fit`.

Minibatches: every process draws the same global batches as one process would
(:meth:`Communicator.batches`) and keeps the rows of each that it holds, so minibatch
training with momentum, schedules and clipping also matches one process. Dropout and batch
normalisation are refused for now (their masks and statistics would have to span processes).

GPU buffers are staged through the host by default; :func:`xpnet.backend.device_allreducer`
reduces on the device instead when CuPy's NCCL is available (untested here: no GPU).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

from . import backend as _backend
from .data import read_npy_rows
from .errors import XpnetError, XpnetValueError

# Environment variables that MPI launchers set in every process they start (MPICH/Hydra,
# Intel MPI and Slurm's PMI: PMI_SIZE; Open MPI: OMPI_COMM_WORLD_SIZE; PMIx: PMIX_SIZE...).
LAUNCHER_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE")
MPI_HINT = "install it with `pip install 'xpnet[mpi]'` (and an MPI library, e.g. `pip install mpich`)"

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


def load_npy_rows(path, rank: int = 0, size: int = 1) -> np.ndarray:
    """Read only this process's block of rows of the ``.npy`` file at ``path``.

    Only rows ``shard_bounds(n_rows, rank, size)`` are read (by offset, after the header:
    :func:`xpnet.data.read_npy_rows`), so no process ever holds the whole file. Returns
    an array of shape ``(stop - start, *row_shape)``.
    """
    return read_npy_rows(path, lambda n_rows: shard_bounds(n_rows, rank, size))


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
        # set by setup(): global rows, the positions of this process's rows among them,
        # the interrupt flag to send and whether any process has sent one
        self.n_total, self._rows, self._interrupt, self._stop = None, None, None, False

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

    def load_npy_rows(self, path) -> np.ndarray:
        """This process's rows of a ``.npy`` file, read without loading the rest (see :func:`load_npy_rows`)."""
        return load_npy_rows(path, self.rank, self.size)

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
        """The backend for this process: CuPy on GPU ``local_rank % device count``."""
        return _backend.backend_for_rank(name, self.local_rank) if self.size > 1 else name

    # -- collectives used by training ------------------------------------------------------
    def local_reduction(self, reduction: str) -> str:
        """The reduction the local backward pass must use: sums when the ranks combine them."""
        return reduction if self.size == 1 else "sum"

    def setup(self, model, n_local: int, local_split: bool, rows=None, interrupt=None) -> int:
        """Check what data-parallel training supports; return the global row count.

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
        self.n_total = int(self.sum_floats([n_local])[0]) if self.size > 1 else n_local
        if self.size == 1:
            return self.n_total
        unsupported = [name for name, used in (("dropout", model.spec.dropout), ("batch_norm", model.bn is not None),
                                               ("early_stopping without validation_data", local_split)) if used]
        if unsupported:
            raise XpnetValueError(f"{', '.join(unsupported)} is not supported in data-parallel training yet; "
                                  "train without it, or in one process")
        self._rows = self._contiguous_rows(n_local) if rows is None else self._checked_rows(rows, n_local)
        return self.n_total

    def _contiguous_rows(self, n_local: int) -> np.ndarray:
        from mpi4py import MPI

        counts = np.array([n_local], dtype=np.int64)
        offset = np.zeros(1, dtype=np.int64)
        self._comm.Exscan(counts, offset, op=MPI.SUM)  # undefined on rank 0: it keeps the zero
        start = int(offset[0]) if self.rank else 0
        return np.arange(start, start + n_local)

    def _checked_rows(self, rows, n_local: int) -> np.ndarray:
        """``rows`` as int64 positions, checked: increasing, in range, and (by the sum of all
        processes' positions) covering every global row once."""
        rows = np.asarray(rows)
        n = self.n_total
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

    def batches(self, backend, batch_size: int | None, shuffle: bool, rng) -> list:
        """This epoch's batches as (this process's local rows, global batch size) pairs.

        The global batches are exactly the ones one process would draw from ``rng`` on all
        ``n_total`` rows; each process keeps the rows of each batch that it holds (``None``:
        all its rows, full batch). Needs :meth:`setup` first.
        """
        n = self.n_total
        if batch_size is None or batch_size >= n:
            return [(None, n)]
        order = rng.permutation(n) if shuffle else np.arange(n)
        out = []
        for i in range(0, n, batch_size):
            rows = order[i:min(i + batch_size, n)]
            out.append((backend.asarray(rows if self.size == 1 else self._local(rows)), len(rows)))
        return out

    def _local(self, rows: np.ndarray) -> np.ndarray:
        """Indices into this process's rows of those global ``rows`` that it holds, in the order of ``rows``."""
        if not self._rows.size:
            return rows[:0]
        at = np.searchsorted(self._rows, rows)
        held = self._rows[np.minimum(at, self._rows.size - 1)] == rows
        return at[held]

    def allreduce_gradients(self, backend, dW, db, reduction: str, n_local: int):
        """Sum the local gradient sums of all ranks in one buffer; divide by the global N for "mean".

        ``dW`` and ``db`` are lists of backend arrays (``db`` may be None) computed on
        ``n_local`` rows with ``reduction=self.local_reduction(reduction)``; returns the
        gradients of the global batch (see :meth:`reduce_step`, whose buffer this is).
        """
        if self.size == 1:
            return dW, db
        reduced = self.reduce_step(backend, list(dW) + (list(db) if db is not None else []), reduction, n_local)[0]
        n = len(dW)
        return reduced[:n], (reduced[n:] if db is not None else None)

    def reduce_step(self, backend, grads: list, reduction: str, n_local: int, loss=None) -> tuple:
        """One training step's exchange, all of it in ONE float64 buffer and one ``Allreduce``.

        The buffer holds every array of ``grads`` (gradient sums of ``n_local`` rows, in any
        fixed order, computed with ``reduction=self.local_reduction(reduction)``), then
        ``n_local``, the summed data loss ``loss`` of those rows (0 when None) and this
        process's interrupt flag (1 after a Ctrl-C). Returns ``(grads, loss)``: the summed
        arrays, divided by the summed count when ``reduction == "mean"``, and the summed
        loss (None when ``loss`` is None); afterwards :attr:`interrupted` says whether any
        process was interrupted. With one process it returns its arguments.
        """
        if self.size == 1:
            return list(grads), loss
        flag = 1.0 if self._interrupt is not None and self._interrupt.seen else 0.0
        extra = [float(n_local), 0.0 if loss is None else float(loss), flag]
        *reduced, n, total_loss, flags = self._reduce(backend, list(grads), extra)
        self._stop = self._stop or flags > 0
        return ([g / n for g in reduced] if reduction == "mean" else reduced), (None if loss is None else total_loss)

    def objective(self, model, Z, Y, T, l2: float, reduction: str):
        """The training objective over every rank's rows (see :meth:`MLP._objective`)."""
        if self.size == 1:
            return model._objective(Z, Y, T, l2, reduction)
        from .losses import objective
        from .mlp import l2_penalty

        xp = model.xp
        local = float(model.spec.loss.total(xp, Z, Y, T, model.spec.stable))
        data, n = self.sum_floats([local, Y.shape[0]])
        penalty = l2_penalty(xp, model.W, l2) if l2 else 0.0
        return objective(xp, data, penalty, int(n), reduction)

    def accuracy(self, model, X, y) -> float:
        """Fraction of all ranks' rows that ``model`` classifies correctly."""
        if self.size == 1:
            return model.accuracy(X, y)
        hits = round(model.accuracy(X, y) * X.shape[0]) if X.shape[0] else 0
        total_hits, n = self.sum_floats([hits, X.shape[0]])
        return total_hits / n

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
        pick = self._rows % max(1, -(-self.n_total // limit)) == 0
        parts = self._comm.gather((self._rows[pick], X[pick], y[pick]), root=0)
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
        buffer = _pack(params)
        self._comm.Bcast(buffer, root=0)
        model.set_parameters(_unpack(model.backend, buffer, params))

    def check_identical(self, model) -> None:
        """Raise :class:`XpnetError` on every rank unless all ranks hold bitwise-equal weights."""
        if self.size == 1:
            return
        mine = _pack(model.parameters())
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
    def _reduce(self, backend, arrays, extra) -> list:
        """All-reduce ``arrays`` (backend arrays) and ``extra`` (floats) as one buffer."""
        reducer = self._device_reducer(backend)
        start = time.perf_counter()
        if reducer is not None:
            out = reducer(arrays, extra)
        else:
            buffer = _pack(arrays, extra)
            self._allreduce(buffer, timed=False)
            out = _unpack(backend, buffer, arrays) + buffer[len(buffer) - len(extra):].tolist()
        backend.sync()
        self.stats.seconds += time.perf_counter() - start
        self.stats.calls += 1
        self.stats.values += sum(math.prod(a.shape) for a in arrays) + len(extra)
        return out

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
        if backend.name != "cupy":
            return None
        if backend.name not in self._device_reduce:
            self._device_reduce[backend.name] = _backend.device_allreducer(backend, self._comm)
        return self._device_reduce[backend.name]


def _own_cores() -> set:
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return set(range(os.cpu_count() or 1))


def _pack(arrays, extra=()) -> np.ndarray:
    """One contiguous float64 host buffer: every array flattened, then the ``extra`` numbers."""
    sizes = [math.prod(a.shape) for a in arrays]
    buffer = np.empty(sum(sizes) + len(extra), dtype=np.float64)
    offset = 0
    for a, size in zip(arrays, sizes):
        buffer[offset:offset + size] = np.reshape(_backend.to_numpy(a), (-1,))
        offset += size
    buffer[offset:] = extra
    return buffer


def _unpack(backend, buffer: np.ndarray, like) -> list:
    """Arrays shaped and typed like ``like``, on ``backend``'s device, read from ``buffer``."""
    out, offset = [], 0
    for a in like:
        size = math.prod(a.shape)
        host = np.reshape(buffer[offset:offset + size], tuple(a.shape))
        out.append(backend.asarray(host, dtype=a.dtype))
        offset += size
    return out


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


def fit(model, X, y, *, comm: Communicator | None = None, **options):
    """Train ``model`` data-parallel: :func:`xpnet.fit` on this rank's rows ``X, y``.

    Broadcasts rank 0's initial weights, trains with one gradient ``Allreduce`` per step
    and checks that all ranks end with bitwise-identical weights. Every rank must call it
    with the same options. ``comm`` defaults to :func:`launch`.

    Parameters
    ----------
    model : MLP
    X : array (n_local, n_inputs)
        This process's rows (e.g. ``comm.rows(X)``; any number, even none).
    y : array (n_local,) or (n_local, n_outputs)
    comm : Communicator, optional
    **options
        As for :func:`xpnet.fit` (``epochs``, ``learning_rate``, ``l2``, ``reduction``...),
        including ``global_rows``: the positions of this process's rows in the global
        order when they are not the contiguous default (see :meth:`Communicator.setup`),
        and ``validation_data``: this process's rows of the held-out set.

    Returns
    -------
    FitResult
        The same on every rank; losses are over all ranks' rows.
    """
    from .train import fit as train_fit

    comm = launch() if comm is None else comm
    comm.broadcast_parameters(model)
    result = train_fit(model, X, y, comm=comm, **options)
    comm.check_identical(model)
    return result
