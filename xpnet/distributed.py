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

What is exchanged, per step (:meth:`Communicator.reduce_step`): ONE contiguous buffer of
the gradients' dtype (float32 runs send float32; the counts in it stay exact, see
:mod:`xpnet.parallel.buffers`), reduced in place with the buffer-based ``Allreduce`` (never the pickle-based
``allreduce``), holding every parameter's gradient sum, then the local sample count, the
local summed data loss and the local Ctrl-C flag. In full-batch training the loss slot
carries the loss of the weights the step starts from at logging points (the same pass
computes both), and training checks it for divergence before applying the update; at
other steps it is 0. Minibatch training sends the same buffer per update, and at
logging points one more forward pass over this process's rows gives the loss, summed
in a 1-number buffer (the global row count is known since set-up); early stopping sums
the validation loss and the validation row count in a 2-number buffer every epoch.
Set-up: the global row count (an ``Allreduce``), the offsets
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

On GPUs each process uses its own (:meth:`Communicator.backend_name`) and the buffer is reduced
on the device by NCCL (:func:`xpnet.backend.device_allreducer`); processes sharing a GPU, or
an NCCL that fails to set up, stage it through the host with a one-line warning. This GPU path
is checked on CPU stand-ins, not yet on a GPU (``xpnet doctor --gpu-check`` is the proof there).
"""

from __future__ import annotations

from .io.npy import load_npy_rows
from .parallel.comm import (
    ABORT_GRACE,
    LAUNCHER_SIZE_VARS,
    MPI_HINT,
    Communicator,
    ReduceStats,
    Shard,
    active,
    launch,
    shard_bounds,
)
from .training.loop import fit as train_fit

__all__ = ["ABORT_GRACE", "LAUNCHER_SIZE_VARS", "MPI_HINT", "Communicator", "ReduceStats", "Shard", "active", "fit",
           "launch", "load_npy_rows", "shard_bounds"]


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
    comm = launch() if comm is None else comm
    comm.broadcast_parameters(model)
    result = train_fit(model, X, y, comm=comm, **options)
    comm.check_identical(model)
    return result
