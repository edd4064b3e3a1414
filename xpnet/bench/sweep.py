"""The cost curve: one epoch timed over a log-spaced range of rows or hidden widths, and its figure.

``xpnet bench --sweep rows`` times rows 1e3, 2e3, 5e3, 1e4, ... up to the largest count whose
case fits the budget (``--budget``: the memory estimate, and for ``--source file`` the file
too); ``--sweep hidden`` times widths 16, 32, ..., 8192 (those that fit). Each point is a
case of :func:`xpnet.bench.run`, against its tanh floor, the matmul peak and (from a file)
the page cache's read rate. :func:`sweep_figure` draws seconds per epoch and samples/s
against size with those floors as lines, and marks where the data (rows) or the weights
(hidden) outgrow each of the CPU's caches (:func:`~xpnet.bench.machine.cpu_caches`).
"""

from __future__ import annotations

from ..backend import itemsize as dtype_bytes
from ..errors import XpnetValueError, check_choice
from ..memory import format_bytes
from .disk import file_bytes
from .report import run
from .runners import Case, estimate_memory

SWEEPS = ("rows", "hidden")
FIRST_ROWS = 1000
HIDDEN_RANGE = (16, 8192)
DEFAULT_BUDGET = 2**30  # bytes a sweep's largest case may take (memory estimate; the file too)
DEFAULT_REPEAT = 3  # timed samples per size of `xpnet bench --sweep` (a curve of many sizes: fewer than a grid's 7)
DEFAULTS = {"rows": {"hidden": [256]}, "hidden": {"n_samples": [100_000]}}  # the other axis when not given


def rows_range(case: Case, budget: int, source: str = "memory", first: int = FIRST_ROWS) -> list[int]:
    """Rows 1, 2, 5 x 10^k from ``first`` while ``case`` with that many rows needs at most
    ``budget`` bytes (:func:`~xpnet.bench.estimate_memory`; with ``source="file"`` its file
    too, :func:`~xpnet.bench.disk.file_bytes`)."""
    sizes: list[int] = []
    decade = first
    while True:
        for step in (1, 2, 5):
            n = decade * step
            probe = Case(case.backend, case.dtype, n, case.hidden, case.input_dim, case.classes, case.activation)
            need = estimate_memory(probe) + (file_bytes(probe) if source == "file" else 0)
            if need > budget:
                return sizes
            sizes.append(n)
        decade *= 10


def hidden_range(case: Case, budget: int, low: int = HIDDEN_RANGE[0], high: int = HIDDEN_RANGE[1]) -> list[int]:
    """Hidden widths ``low``, ``2 low``, ... ``high`` (powers of 2) whose case fits ``budget``."""
    sizes, h = [], low
    while h <= high:
        probe = Case(case.backend, case.dtype, case.n_samples, h, case.input_dim, case.classes, case.activation)
        if estimate_memory(probe) > budget:
            break
        sizes.append(h)
        h *= 2
    return sizes


def run_sweep(kind: str, backends=None, dtypes=("float32",), *, n_samples=None, hidden=None, input_dim: int = 2,
              classes: int = 2, budget: int = DEFAULT_BUDGET, source: str = "memory", **options) -> dict:
    """Time the cost curve ``kind`` ("rows" or "hidden"): :func:`~xpnet.bench.run` over the sizes of
    :func:`rows_range` or :func:`hidden_range`, for each value of the other axis (default:
    hidden 256 for rows, 1e5 rows for hidden). ``options`` go to :func:`~xpnet.bench.run`.
    The report gains ``sweep``: ``kind``, ``sizes`` (per value of the other axis),
    ``budget_bytes``."""
    check_choice("sweep", kind, SWEEPS)
    if budget <= 0:
        raise XpnetValueError(f"budget={budget} must be a positive number of bytes")
    hidden = list(hidden or DEFAULTS["rows"]["hidden"])
    n_samples = list(n_samples or DEFAULTS["hidden"]["n_samples"])
    others = hidden if kind == "rows" else n_samples
    reports, sizes = [], {}
    for other in others:
        like = Case("numpy", dtypes[0], n_samples[0] if kind == "rows" else other, other if kind == "rows" else 16,
                    input_dim, classes)
        span = rows_range(like, budget, source) if kind == "rows" else hidden_range(like, budget)
        if not span:
            raise XpnetValueError(f"budget={budget} bytes is too small for the smallest case of the {kind} sweep; "
                                  "give a larger --budget")
        sizes[other] = span
        rows, widths = (span, [other]) if kind == "rows" else ([other], span)
        reports.append(run(backends, dtypes, rows, widths, input_dim=input_dim, classes=classes, source=source,
                           **options))
    report = reports[0]
    for more in reports[1:]:
        report["ceilings"] += more["ceilings"]
        report["results"] += more["results"]
        report["skipped"] += more["skipped"]
    report["sweep"] = {"kind": kind, "sizes": {str(k): v for k, v in sizes.items()}, "budget_bytes": budget,
                       "source": source}
    return report


def cache_crossings(kind: str, rows: list, caches: list) -> list:
    """Where the working set outgrows each data cache: ``[(size, label)]`` with ``size`` the rows
    (data ``N x (inputs + classes)`` in the dtype) or hidden width (weights ``(inputs + 1) x H +
    (H + 1) x classes``) at which it equals the cache, for sizes inside the swept range."""
    if not rows:
        return []
    r = rows[0]
    item = dtype_bytes(r["dtype"])
    d, c = r["input_dim"], r["classes"]
    x = [row["n_samples" if kind == "rows" else "hidden"] for row in rows]
    out = []
    for cache in caches:
        if cache["type"] == "Instruction":
            continue
        size = cache["bytes"] / item
        at = size / (d + c) if kind == "rows" else (size - c) / (d + 1 + c)
        if min(x) <= at <= max(x):
            what = "data" if kind == "rows" else "weights"
            out.append((at, f"{what} = L{cache['level']} ({format_bytes(cache['bytes'])})"))
    return out


def sweep_figure(report: dict, path) -> None:
    """Draw a sweep's ``report`` into ``path``: seconds per epoch (left) and samples/s (right)
    against rows or hidden width, log-log, one colour per series (backend, dtype, other axis);
    the tanh floor (dashed), the matmul floor at the measured peak (dotted) and, from a file,
    the page-cache floor (dash-dot) as lines; the caches' crossings as grey verticals."""
    from ..plot import new_figure, save

    kind = report["sweep"]["kind"]
    rows = report["results"]
    if not rows:
        raise XpnetValueError("nothing to plot: every case was skipped")
    axis = "n_samples" if kind == "rows" else "hidden"
    other = "hidden" if kind == "rows" else "n_samples"
    peaks = {(c["backend"], c["dtype"]): c["matmul_gflops"] for c in report["ceilings"]}
    fig = new_figure(11, 4.5)
    left, right = fig.subplots(1, 2)
    series: dict = {}
    for row in rows:
        series.setdefault((row["backend"], row["dtype"], row[other]), []).append(row)
    for (name, dtype, value), group in sorted(series.items()):
        group.sort(key=lambda r: r[axis])
        x = [r[axis] for r in group]
        n = [r["n_samples"] for r in group]
        label = f"{name} {dtype} {'H' if kind == 'rows' else 'N'}={value:g}"
        lines: list = [("epoch (median)", [r["seconds_per_epoch"] for r in group], "-", "o")]
        if all("tanh_floor_seconds" in r for r in group):
            lines.append(("tanh floor", [r["tanh_floor_seconds"] for r in group], "--", None))
        if (name, dtype) in peaks:
            lines.append(("matmul at peak", [r["matmul_flops"] / (peaks[name, dtype] * 1e9) for r in group], ":", None))
        if all("page_cache_floor_seconds" in r for r in group):
            lines.append(("page-cache read", [r["page_cache_floor_seconds"] for r in group], "-.", None))
        colour = None
        for what, seconds, style, marker in lines:
            (line,) = left.plot(x, seconds, linestyle=style, marker=marker, color=colour, label=f"{label}: {what}")
            colour = line.get_color()
            right.plot(x, [k / s for k, s in zip(n, seconds)], linestyle=style, marker=marker, color=colour)
    for at, text in cache_crossings(kind, rows, report["machine"].get("caches", [])):
        for ax in (left, right):
            ax.axvline(at, color="grey", linewidth=0.8, alpha=0.6)
        left.annotate(text, (at, 1), xycoords=("data", "axes fraction"), rotation=90, fontsize="x-small",
                      va="top", ha="right", color="grey")
    xlabel = "rows (samples in the full batch)" if kind == "rows" else "hidden units"
    for ax, ylabel in ((left, "seconds per epoch"), (right, "training samples per second")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    r0 = rows[0]
    shape = f"{r0['input_dim']} -> {'H' if kind == 'hidden' else r0['hidden']} -> {r0['classes']}"
    fig.suptitle(f"xpnet: the cost of one epoch against {'rows' if kind == 'rows' else 'hidden width'} "
                 f"({shape}, data from {report['sweep']['source']})")
    left.legend(fontsize="x-small")
    save(fig, path)
