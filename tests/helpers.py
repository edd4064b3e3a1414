"""Helpers shared by tests in several folders: small problems, reference passes, data files."""

from __future__ import annotations

import numpy as np

import xpnet
from xpnet.core import ops
from xpnet.core.network import gradients as plain
from xpnet.engine import fullbatch, plan


def problem(backend, dtype, sizes, n, output="softmax", activation="tanh", bias=True, seed=0, scale=1.0, **model):
    rng = np.random.default_rng(seed)
    net = xpnet.MLP(sizes, activation=activation, output=output, bias=bias, backend=backend, dtype=dtype, seed=seed,
                    **model)
    y = rng.integers(0, sizes[-1], size=n) if output == "softmax" else rng.random((n, sizes[-1]))
    X = net.as_inputs(rng.normal(scale=scale, size=(n, sizes[0])))
    return net, X, net.as_targets(y, n)


def plain_pass(model, X, T, reduction):
    """The unchunked reference: the generic forward + backward on all rows, and the summed data loss."""
    return plain(ops.Ops(model.xp), model.spec, model.W, model.b, X, T, X.shape[0] if reduction == "mean" else None,
                 True)


def assert_close(got, want, rtol, atol=0.0):
    assert (got.db is None) == (want.db is None)
    for a, b in zip(got.flat(), want.flat()):
        np.testing.assert_allclose(xpnet.to_numpy(a), xpnet.to_numpy(b), rtol=rtol, atol=atol)
    np.testing.assert_allclose(float(got.data_loss), float(want.data_loss), rtol=rtol)


def write_table(path, X, labels):
    """``X`` (N, F) and ``labels`` (N,) in the file format that ``path``'s suffix names.

    Suffixes: .csv (header f0..f{F-1},label), .npy (labels as the last column, numbers
    only), -fortran.npy (the same in Fortran order), .npz (np.savez: stored members) and
    -compressed.npz (np.savez_compressed: deflated members).
    """
    name = str(path)
    if name.endswith(".csv"):
        with open(path, "w") as handle:
            handle.write(",".join(f"f{i}" for i in range(X.shape[1])) + ",label\n")
            for row, label in zip(X, labels):
                handle.write(",".join(repr(float(v)) for v in row) + f",{label}\n")
    elif name.endswith(".npy"):
        table = np.column_stack([X, labels])
        np.save(path, np.asfortranarray(table) if name.endswith("-fortran.npy") else table)
    else:
        (np.savez_compressed if name.endswith("-compressed.npz") else np.savez)(path, X=X, y=labels)


def pass_gradients(ops, spec, W, b, X, T, reduction, *, with_loss=False, rows=None, kernel="auto", bn=None,
                   masks=None):
    """The plan's pass for ``(X, T)`` (``reduction`` "mean" or "sum"); ``rows`` forces the chunk
    size of a chunked pass (to test chunking on small data)."""
    n = X.shape[0]
    scale = n if reduction == "mean" else None
    chosen = plan.choose(ops, spec, "float32" if "32" in str(X.dtype) else "float64", n, kernel)
    if rows is None or chosen.name == "plain" or bn is not None or masks is not None:
        return chosen(W, b, X, T, scale, with_loss, bn=bn, masks=masks)
    return fullbatch.chunked(ops, spec, chosen.kernel, W, b, X, T, scale, with_loss, rows=rows)


def pass_name(ops, model, n, kernel="auto"):
    """What the plan runs for ``model`` on ``n`` rows."""
    return plan.choose(ops, model.spec, model.dtype_name, n, kernel).name


def select(spec, library, dtype, n, choice="auto"):
    """The kernel the plan would take for this case (None: the generic or plain pass)."""
    return next((k for k in plan.KERNELS if choice in ("auto", k.family) and k.supports(spec, library, dtype, n)),
                None)


def mpi_run(processes: int, args, timeout: float = 300):
    """Run ``mpiexec -n processes ARGS`` (skipping the test when mpi4py or mpiexec is missing)."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import pytest

    try:
        import mpi4py  # noqa: F401
    except ImportError:
        pytest.skip("mpi4py is not installed: pip install mpi4py mpich")
    found = Path(sys.executable).with_name("mpiexec")  # the mpich wheel installs it beside python
    mpiexec = str(found) if found.exists() else shutil.which("mpiexec")
    if not mpiexec:
        pytest.skip("no mpiexec on PATH: pip install mpich (or load the site's MPI)")
    env = {k: v for k, v in os.environ.items() if k != "XPNET_BACKEND"}
    try:
        return subprocess.run([mpiexec, "-n", str(processes), *map(str, args)], capture_output=True, text=True,
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the MPI job hung for {timeout} s: {exc.stderr!r}"[:2000])
