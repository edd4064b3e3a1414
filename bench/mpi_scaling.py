"""Time per full-batch step of data-parallel training for P = 1, 2, ... MPI processes.

    python bench/mpi_scaling.py                         # P = 1, 2 at N = 2,000,000
    python bench/mpi_scaling.py --processes 1,2,4 --n-samples 8000000 --hidden 128 --json

For each P it launches ``mpiexec -n P python -m mpi4py bench/mpi_scaling.py --worker ...``;
every process trains on its own contiguous rows with as many BLAS threads as cores it
owns (so the P processes never oversubscribe the machine), and rank 0 reports the mean
over ranks of the time per step and of the part of it spent in the gradient all-reduce
(packing, host staging and ``MPI.Allreduce``, waiting for slower ranks included).

On a machine with C cores this shows how the step time divides as P grows up to C and
what the all-reduce costs. On a 2-core machine P = 2 gives no more compute than P = 1
(which already uses both cores through BLAS threads): there it measures the OVERHEAD of
going data-parallel, not a speed-up. Needs ``pip install mpi4py mpich``. Standalone
script (not a pytest-benchmark suite) because each measurement is a separate MPI job.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path


def worker(args) -> None:
    import xpnet
    from xpnet import distributed

    comm = distributed.launch()
    threads = args.threads or comm.threads_per_rank()
    with xpnet.limit_threads(threads), comm.abort_on_error():
        X, y = xpnet.datasets.load("moons", n_samples=args.n_samples, noise=0.2, seed=0)
        X, y = comm.rows(X), comm.rows(y)
        model = xpnet.MLP([2, *args.hidden, 2], backend="numpy", dtype=args.dtype, seed=0)
        options = dict(learning_rate=0.5, log_every=10**9)  # log only the first and last step
        distributed.fit(model, X, y, comm=comm, epochs=args.warmup, **options)
        comm.stats = distributed.ReduceStats()
        result = distributed.fit(model, X, y, comm=comm, epochs=args.epochs, **options)
        step, reduce_time = comm.sum_floats([result.seconds / args.epochs, comm.stats.seconds])
        wire = _allreduce_alone(comm, model, X.shape[0], args.repeats)
    if comm.is_root:
        step, reduce_time = step / comm.size, reduce_time / comm.size / args.epochs
        print(json.dumps({
            "processes": comm.size, "threads_per_process": threads, "n_samples": args.n_samples,
            "hidden": args.hidden, "dtype": args.dtype, "epochs": args.epochs,
            "seconds_per_step": step, "allreduce_seconds_per_step": reduce_time,
            "allreduce_share": reduce_time / step if step else 0.0,
            "allreduce_alone_seconds": wire, "gradient_values": sum(math.prod(p.shape) for p in model.parameters()) + 1,
            "samples_per_second": args.n_samples / step if step else 0.0,
            "final_loss": result.final_loss,
        }))


def _allreduce_alone(comm, model, n_local: int, repeats: int) -> float:
    """Mean time of one gradient all-reduce when all ranks enter it together (no waiting)."""
    from xpnet import distributed

    if comm.size == 1:
        return 0.0
    total = 0.0
    for _ in range(repeats):
        comm.barrier()
        comm.stats = distributed.ReduceStats()
        comm.allreduce_gradients(model.backend, model.W, model.b, "sum", n_local)
        total += comm.stats.seconds
    return comm.sum_floats([total / repeats])[0] / comm.size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", default="1,2", help="comma-separated process counts (default: 1,2)")
    parser.add_argument("--n-samples", type=int, default=2_000_000, help="global rows (default: 2,000,000)")
    parser.add_argument("--hidden", default="64", help="hidden widths, comma separated (default: 64)")
    parser.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    parser.add_argument("--epochs", type=int, default=10, help="timed steps (default: 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default: 2)")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS threads per process (default: the cores each process owns)")
    parser.add_argument("--repeats", type=int, default=50, help="all-reduces timed alone (default: 50)")
    parser.add_argument("--json", action="store_true", help="one JSON object per P instead of a table")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.hidden = [int(h) for h in str(args.hidden).split(",")]
    if args.worker:
        worker(args)
        return 0
    mpiexec = Path(sys.executable).with_name("mpiexec")
    mpiexec = str(mpiexec) if mpiexec.exists() else shutil.which("mpiexec")
    if not mpiexec:
        print("mpi_scaling: no mpiexec found; pip install mpi4py mpich", file=sys.stderr)
        return 2
    rows = []
    for p in [int(v) for v in args.processes.split(",")]:
        command = [mpiexec, "-n", str(p), sys.executable, "-m", "mpi4py", __file__, "--worker",
                   "--n-samples", str(args.n_samples), "--hidden", ",".join(map(str, args.hidden)),
                   "--dtype", args.dtype, "--epochs", str(args.epochs), "--warmup", str(args.warmup),
                   "--repeats", str(args.repeats)] + (["--threads", str(args.threads)] if args.threads else [])
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode:
            print(f"mpi_scaling: P={p} failed:\n{proc.stderr}", file=sys.stderr)
            return 1
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(proc.stdout.strip() if args.json else _row(rows[-1], rows[0]), flush=True)
    return 0


def _row(r: dict, first: dict) -> str:
    header = "" if r is not first else (
        f"N={r['n_samples']:,} hidden={r['hidden']} {r['dtype']}, mean of {r['epochs']} steps\n"
        f"{'P':>3} {'threads/P':>9} {'ms/step':>9} {'allreduce ms':>12} {'share':>6} {'alone ms':>9} "
        f"{'samples/s':>12} {'vs P=' + str(first['processes']):>7}\n"
    )
    speedup = first["seconds_per_step"] / r["seconds_per_step"]
    return header + (
        f"{r['processes']:>3} {r['threads_per_process']:>9} {1e3 * r['seconds_per_step']:>9.2f} "
        f"{1e3 * r['allreduce_seconds_per_step']:>12.3f} {100 * r['allreduce_share']:>5.1f}% "
        f"{1e3 * r['allreduce_alone_seconds']:>9.3f} "
        f"{r['samples_per_second']:>12,.0f} {speedup:>6.2f}x"
    )


if __name__ == "__main__":
    sys.exit(main())
