"""The report ``xpnet bench`` prints: every case measured (:func:`run`, :func:`measure_case`),
and its text (:func:`format_table`, :func:`format_progress`: pure functions, the CLI prints them).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
from dataclasses import asdict

from ..backend import Backend, get_backend
from ..engine.plan import CHOICES as KERNEL_CHOICES
from ..errors import XpnetValueError, check_choice
from .cost import units
from .disk import CaseFile, PageCacheProbe, disk_room, file_bytes, map_case_npy, page_cache_entries
from .machine import machine_info
from .peers import start_peer
from .probes import TanhFloor
from .runners import COMPARE, Case, EpochRunner, compare_key, compare_names, estimate_memory, too_big
from .timing import measure_ceilings, peak_memory, time_interleaved

SOURCES = ("memory", "file")  # where a case's rows come from (``--source``)


def measure_case(case: Case, *, backend: Backend | None = None, ceilings: dict | None = None,
                 compare=None, repeat: int = 7, epochs: int = 1, warmup: int = 1,
                 clock=time.perf_counter, memory: bool = False, tanh_floor: bool = True,
                 kernels: str = "auto", source: str = "memory", data_dir: str | None = None,
                 progress=None) -> dict:
    """Time one case, the peers in ``compare`` and its tanh floor; return one result row.

    ``kernels`` chooses xpnet's whole-pass kernels (:mod:`xpnet.engine.kernels`); the row says which
    ran (``kernels``). A JIT kernel is compiled (or loaded from numba's cache) before any
    epoch, timed apart as ``compile_seconds``; ``progress("compiling", row so far)`` is called
    first when it will compile.

    ``source="file"`` writes the case's rows to a ``.npy`` file in a temporary folder under
    ``data_dir`` and trains on its mapping (:mod:`xpnet.bench.disk`; the file is removed
    afterwards); the row adds ``file_bytes``, ``read_gbytes_per_second`` and the page cache's
    read bandwidth measured beside it (``page_cache_gbytes_per_second``,
    ``page_cache_floor_seconds``, ``x_over_page_cache_floor``).

    ``seconds_per_epoch`` is the median over ``repeat`` samples of (time of ``epochs``
    synced epochs) / ``epochs``, after ``warmup`` samples; the peers' samples and the tanh
    floor's (:class:`~xpnet.bench.TanhFloor`, ``tanh_floor=False`` leaves it out) are
    interleaved with xpnet's, and the floor is the best of its samples. A peer that is not
    installed, fails to start (compile) or would not fit in memory beside the case is left
    out with the reason in ``<name>_skipped`` (the floor: ``tanh_floor_skipped``). With
    ``memory``, one more epoch measures the peak resident memory
    (:func:`~xpnet.bench.peak_memory`), after the peers and the floor are released.
    """
    check_choice("source", source, SOURCES)
    names = compare_names(compare)
    backend = get_backend(case.backend) if backend is None else backend
    with contextlib.ExitStack() as stack:
        data = probe = None
        if source == "file":
            case_file = stack.enter_context(CaseFile(case, data_dir))
            data, probe = map_case_npy(case_file.path, case), PageCacheProbe(case_file.path)
        runner = EpochRunner(case, backend, kernels=kernels, data=data)
        row = {**asdict(case), "backend": backend.name, "device": backend.device_name(),
               "layer_sizes": list(case.layer_sizes), "source": source, "epochs": epochs, "repeat": repeat,
               "warmup": warmup, "estimated_memory_bytes": estimate_memory(case, backend=backend),
               "kernels": runner.pass_name, "kernel_choice": kernels}
        if progress is not None and runner.needs_compile():
            progress("compiling", row)
        row["compile_seconds"], row["compiled"] = runner.warm_up()
        row.update(_timed(runner, names, tanh_floor, probe, repeat=repeat, epochs=epochs, warmup=warmup,
                          clock=clock))
        row.update(units(case, row["seconds_per_epoch"], ceilings))
        if memory:
            row.update(peak_memory(lambda: runner.run(1), backend) or {})
    return row


def _timed(runner: EpochRunner, names: tuple, tanh_floor: bool, probe, **timing) -> dict:
    """The interleaved samples of the step, its peers, its tanh floor and the page-cache probe
    of a file source, as row entries (the peers and the floor's array are released when this
    returns)."""
    case, backend, out = runner.case, runner.backend, {}
    peers = []
    for name in names:
        peer, reason = start_peer(name, runner)
        if reason:
            out[f"{compare_key(name)}_skipped"] = reason
        else:
            peers.append((name, peer))
    floor = None
    if tanh_floor:
        reason = too_big(case, backend, extra_bytes=TanhFloor.bytes_needed(case))
        if reason:
            out["tanh_floor_skipped"] = reason
        else:
            floor = TanhFloor(backend, case.dtype, case.n_samples, case.hidden)
    probes = [p for p in (floor, probe) if p is not None]
    times = time_interleaved([runner] + [p for _, p in peers] + probes, **timing)
    median = statistics.median(times[0])
    out.update({"seconds_per_epoch": median, "seconds_min": min(times[0]), "seconds_max": max(times[0])})
    for (name, peer), samples in zip(peers, times[1:]):
        out.update(_peer_entries(compare_key(name), peer, samples, median, case.n_samples))
    probe_times = dict(zip(map(id, probes), times[1 + len(peers):]))
    if floor is not None:
        best = floor.floor_seconds(min(probe_times[id(floor)]))
        out.update({"tanh_floor_seconds": best, "x_over_tanh_floor": median / best,
                    "tanh_floor_elements": floor.rows * floor.width,
                    "tanh_floor_measured_elements": floor.measured_rows * floor.width})
    if probe is not None:
        out.update(page_cache_entries(probe, probe_times[id(probe)], median, file_bytes(case)))
    return out


def _peer_entries(key: str, peer, samples: list, xpnet_seconds: float, n_samples: int) -> dict:
    seconds = statistics.median(samples)
    out = {f"{key}_seconds_per_epoch": seconds, f"{key}_seconds_min": min(samples),
           f"{key}_samples_per_second": n_samples / seconds, f"xpnet_over_{key}": xpnet_seconds / seconds,
           f"{key}_device": peer.device}
    if hasattr(peer, "first_call_seconds"):
        out[f"{key}_first_call_seconds"] = peer.first_call_seconds
    return out


def run(backends=None, dtypes=("float32",), n_samples=(1000, 10000, 100000), hidden=(64, 256, 1024), *,
        input_dim: int = 2, classes: int = 2, activation: str = "tanh", epochs: int = 1, repeat: int = 7,
        warmup: int = 1, compare=None, ceiling_sizes: dict | None = None, memory: bool = False,
        tanh_floor: bool = True, kernels: str = "auto", source: str = "memory", data_dir: str | None = None,
        progress=None) -> dict:
    """Benchmark every backend x dtype x n_samples x hidden case; the report ``xpnet bench`` prints.

    Parameters
    ----------
    backends : sequence of str or Backend, optional
        Default: ``[None]``, i.e. ``$XPNET_BACKEND`` or ``auto``.
    dtypes : sequence of {"float32", "float64"}
    n_samples, hidden : sequences of int
        One case per (n_samples, hidden) pair.
    input_dim, classes : int
        2 and 2 are the tutorials' shape; 784 and 10 an MNIST-sized one.
    epochs, repeat, warmup : int
        Epochs per timed sample, timed samples (the median is reported), untimed samples first.
    compare : str or sequence of {"torch", "tutorial", "jax", "torch-compile"}, optional
        Also time these peers, interleaved, and report the time ratios
        (:data:`~xpnet.bench.BASELINES`); ``"torch,jax"`` is fine. A peer that is not
        installed or fails to start is skipped with the reason (``<name>_skipped``).
    ceiling_sizes : dict, optional
        Keyword sizes for :func:`~xpnet.bench.measure_ceilings` (default:
        :func:`~xpnet.bench.default_ceiling_sizes`).
    memory : bool
        Also measure each case's peak resident memory over one more epoch.
    tanh_floor : bool
        Also time each case's tanh floor (:class:`~xpnet.bench.TanhFloor`), interleaved.
    kernels : {"auto", "numpy", "jit"}
        xpnet's whole-pass kernels (:mod:`xpnet.engine.kernels`): any that supports the case, the
        NumPy ones, or the numba ones (the generic pass where none does). A JIT kernel is
        compiled before the timed epochs (``compile_seconds``).
    source : {"memory", "file"}
        Where the rows come from: memory, or a ``.npy`` file written under ``data_dir`` (default:
        the system's temporary folder) and mapped (:func:`measure_case`); a case whose file
        would not fit on that disk is skipped with the reason.
    progress : callable, optional
        Called with ``(kind, payload)``: ``("blas", dict)`` (once, before anything is timed),
        ``("ceilings", dict)``, ``("compiling", row so far)``
        (before a JIT kernel compiles), ``("result", row)`` or ``("skipped", dict)`` as each is
        done (:func:`format_progress` words them).

    Returns
    -------
    dict
        ``{"machine": ..., "blas": ..., "ceilings": [...], "results": [...], "skipped": [...]}``;
        ``blas`` is :func:`~xpnet.bench.machine.numpy_blas_info` (which kernels NumPy's BLAS
        runs, and the environment variable that chose them); each result row holds the case,
        ``seconds_per_epoch`` and :func:`~xpnet.bench.units`.
    """
    names = compare_names(compare)
    check_choice("kernels", kernels, KERNEL_CHOICES)
    check_choice("source", source, SOURCES)
    folder = tempfile.gettempdir() if data_dir is None else str(data_dir)
    if source == "file" and not os.path.isdir(folder):
        raise XpnetValueError(f"data_dir {folder!r} is not a folder; give an existing folder for the data files")
    for name, values in (("n_samples", n_samples), ("hidden", hidden)):
        if not values:
            raise XpnetValueError(f"{name} is empty; give at least one value")
    resolved = [get_backend(b) for b in (backends or [None])]
    plan = []  # (backend, dtype, cases): every case is checked before anything is measured
    for backend in resolved:
        for dtype in dtypes:
            backend.dtype(dtype)  # clear error when the device lacks the dtype
            cases = [Case(backend.name, dtype, int(n), int(h), int(input_dim), int(classes), activation)
                     for n in n_samples for h in hidden]
            for case in cases:
                case.check()
            plan.append((backend, dtype, cases))
    machine = machine_info(resolved)
    report: dict = {"machine": machine, "blas": machine["numpy_blas"], "ceilings": [], "results": [], "skipped": []}
    notify = progress or (lambda kind, payload: None)
    if report["blas"] is not None:
        notify("blas", report["blas"])
    for backend, dtype, cases in plan:
        ceilings = measure_ceilings(backend, dtype, activation=activation, **(ceiling_sizes or {}))
        report["ceilings"].append(ceilings)
        notify("ceilings", ceilings)
        for case in cases:
            reason = too_big(case, backend) or (disk_room(case, folder) if source == "file" else None)
            if reason:
                skipped = {**asdict(case), "backend": backend.name, "reason": reason,
                           "estimated_memory_bytes": estimate_memory(case, backend=backend)}
                report["skipped"].append(skipped)
                notify("skipped", skipped)
                continue
            row = measure_case(case, backend=backend, ceilings=ceilings, compare=names, repeat=repeat,
                               epochs=epochs, warmup=warmup, memory=memory, tanh_floor=tanh_floor, kernels=kernels,
                               source=source, data_dir=folder, progress=notify)
            report["results"].append(row)
            notify("result", row)
    return report


# -- text -------------------------------------------------------------------------------------
def format_progress(kind: str, item: dict) -> str:
    """One progress line for ``run(progress=...)``'s ``(kind, item)``, e.g. ``"numpy float32
    n_samples=1000 hidden=64: 1.234 ms/epoch, ..."`` (no newline)."""
    if kind == "blas":
        return f"BLAS: {item['describe']}"
    where = f"{item['backend']} {item['dtype']}"
    if kind == "ceilings":
        return (f"{where} ceilings: matmul {item['matmul_size']}^3 {item['matmul_gflops']:.1f} GFLOP/s, "
                f"copy {item['copy_gbytes_per_second']:.1f} GB/s, {item['activation']} "
                f"{item['activation_elements_per_second']:.3g} elements/s")
    case = f"{where} n_samples={item['n_samples']} hidden={item['hidden']}"
    if kind == "skipped":
        return f"{case}: skipped, {item['reason']}"
    if kind == "compiling":
        return f"{case}: compiling the JIT kernels (first run only)..."
    ran = f" [{item['kernels']}]" if "kernels" in item else ""
    line = (f"{case}{ran}: {item['seconds_per_epoch'] * 1e3:.3f} ms/epoch, {item['samples_per_second']:.3g} "
            f"samples/s, {item['gflops']:.2f} GFLOP/s")
    if item.get("compiled"):
        line += f" (compiled in {item['compile_seconds']:.1f} s first)"
    if "percent_of_matmul_peak" in item:
        line += f" ({item['percent_of_matmul_peak']:.1f}% of matmul peak)"
    if "tanh_floor_seconds" in item:
        line += f"; tanh floor {item['tanh_floor_seconds'] * 1e3:.3f} ms (epoch = {item['x_over_tanh_floor']:.3g}x)"
    elif "tanh_floor_skipped" in item:
        line += f"; tanh floor not run: {item['tanh_floor_skipped']}"
    if "page_cache_gbytes_per_second" in item:
        line += (f"; from the file {item['read_gbytes_per_second']:.3g} GB/s, page cache "
                 f"{item['page_cache_gbytes_per_second']:.3g} GB/s (epoch = {item['x_over_page_cache_floor']:.3g}x "
                 "its read floor)")
    for name in COMPARE:
        key = compare_key(name)
        if f"{key}_seconds_per_epoch" in item:
            line += (f"; {name} {item[f'{key}_seconds_per_epoch'] * 1e3:.3f} ms/epoch "
                     f"({1 / item[f'xpnet_over_{key}']:.3g}x faster)")
        elif f"{key}_skipped" in item:
            line += f"; {name} not run: {item[f'{key}_skipped']}"
    return line


def format_table(report: dict) -> str:
    """The table ``xpnet bench`` prints for :func:`run`'s ``report`` (lines joined by newlines,
    none at the end): the BLAS line (and its warning), one row per case, then why any peer,
    floor or case did not run."""
    rows = report["results"]
    blas = report.get("blas")
    lines = [f"BLAS: {blas['describe']}"] if blas else []
    lines += [f"warning: {blas['warning']}"] if blas and blas.get("warning") else []
    peers = [n for n in COMPARE if any(f"{compare_key(n)}_seconds_per_epoch" in r or f"{compare_key(n)}_skipped" in r
                                       for r in rows)]
    floor = any("tanh_floor_seconds" in r or "tanh_floor_skipped" in r for r in rows)
    memory = any("peak_rss_bytes" in r or "device_peak_bytes" in r for r in rows)
    disk = any("page_cache_gbytes_per_second" in r for r in rows)
    head = (f"{'backend':<8} {'dtype':<7} {'n_samples':>9} {'hidden':>6} {'kernels':<12} {'ms/epoch':>10} "
            f"{'samples/s':>10} {'GFLOP/s':>8} {'%peak':>6} {'GB/s':>6} {'/bw floor':>9}")
    head += f" {'/tanh floor':>11}" if floor else ""
    head += f" {'read GB/s':>9} {'cache GB/s':>10} {'/read floor':>11}" if disk else ""
    head += "".join(f" {name + ' ms':>{_width(name)}} {'x faster':>8}" for name in peers)
    device = any("device_peak_bytes" in r for r in rows)  # GPU cases: the device pool's peak, not host RSS
    lines += [head + (f" {'peak MiB' if device else 'peak RSS MiB':>12}" if memory else "")]
    lines += [_table_row(r, peers, floor, memory, disk) for r in rows]
    for r in rows:
        where = f"n_samples={r['n_samples']} hidden={r['hidden']}"
        if "tanh_floor_skipped" in r:
            lines.append(f"tanh floor not run beside {where}: {r['tanh_floor_skipped']}")
        for name in peers:
            if f"{compare_key(name)}_skipped" in r:
                lines.append(f"{name} not run beside {where}: {r[f'{compare_key(name)}_skipped']}")
    for s in report["skipped"]:
        lines.append(f"skipped  {s['backend']} {s['dtype']} n_samples={s['n_samples']} hidden={s['hidden']}: "
                     f"{s['reason']}")
    return "\n".join(lines)


def _width(name: str) -> int:
    return max(11, len(name) + 3)


def _table_row(r: dict, peers: list, floor: bool, memory: bool, disk: bool = False) -> str:
    def number(key, scale=1.0, spec=".2f", width=6):
        return f"{r[key] * scale:>{width}{spec}}" if key in r else f"{'-':>{width}}"

    line = (f"{r['backend']:<8} {r['dtype']:<7} {r['n_samples']:>9} {r['hidden']:>6} {r.get('kernels', '-'):<12} "
            f"{r['seconds_per_epoch'] * 1e3:>10.3f} {r['samples_per_second']:>10.3g} {r['gflops']:>8.2f} "
            f"{number('percent_of_matmul_peak', spec='.1f')} {r['gbytes_per_second']:>6.2f} "
            f"{number('time_over_bandwidth_floor', width=9)}")
    if floor:
        line += " " + number("x_over_tanh_floor", spec=".3g", width=11)
    if disk:
        line += (f" {number('read_gbytes_per_second', spec='.3g', width=9)} "
                 f"{number('page_cache_gbytes_per_second', spec='.3g', width=10)} "
                 f"{number('x_over_page_cache_floor', spec='.3g', width=11)}")
    for name in peers:
        key = compare_key(name)
        if f"{key}_seconds_per_epoch" in r:
            line += f" {r[f'{key}_seconds_per_epoch'] * 1e3:>{_width(name)}.3f} {1 / r[f'xpnet_over_{key}']:>8.3g}"
        else:
            line += f" {'not run':>{_width(name)}} {'':>8}"
    if memory:
        key = "device_peak_bytes" if "device_peak_bytes" in r else "peak_rss_bytes"
        line += " " + number(key, 1 / 2**20, ".0f", 12)
    return line
