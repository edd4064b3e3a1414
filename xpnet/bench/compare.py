"""Two saved pytest-benchmark runs side by side, in samples/s, with their ratio and their noise.

``xpnet bench compare RUN_A RUN_B`` reads the JSON files pytest-benchmark writes
(``pytest bench --benchmark-save=NAME`` under ``.benchmarks/``, or ``--benchmark-json=FILE``);
a run is named by its file, its number (``0001``) or its saved name (``main``).
Benchmarks are matched by test and parameters. Each side's samples/s is the samples of
one round over the round's median time; its noise is the spread of its rounds (fastest to
slowest); the verdict says "within noise" when the two sides' ranges of rounds overlap.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import XpnetValueError

DEFAULT_STORAGE = ".benchmarks"  # pytest-benchmark's default --benchmark-storage


def find_run(ref: str, storage: str = DEFAULT_STORAGE) -> Path:
    """The JSON file of run ``ref``: a path; else in ``storage`` (searched recursively), the run
    numbered ``ref`` (``0001``), the newest run saved as ``ref``, or the one file whose name
    contains ``ref``. One clear error when none or several match."""
    path = Path(ref)
    if path.is_file():
        return path
    root = Path(storage)
    files = sorted(root.rglob("*.json"), key=lambda p: p.name) if root.is_dir() else []
    if not files:
        raise XpnetValueError(f"no run {ref!r}: it is not a file, and {storage} holds no saved runs "
                              "(save one with pytest bench --benchmark-save=NAME, or name a --benchmark-json file)")
    number = [p for p in files if p.name.split("_", 1)[0] == ref]
    named = [p for p in files if p.stem.split("_", 1)[-1] == ref]
    partial = [p for p in files if ref in p.name]
    for found in (number, named[-1:], partial):
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = ", ".join(p.name for p in found[:6])
            raise XpnetValueError(f"run {ref!r} is ambiguous in {storage}: {names}; give its number or its file")
    names = ", ".join(p.stem for p in files[-6:])
    raise XpnetValueError(f"no run {ref!r} in {storage}; saved runs: {names}")


def load_run(ref: str, storage: str = DEFAULT_STORAGE) -> dict:
    """The saved run ``ref`` (:func:`find_run`) as pytest-benchmark wrote it, with ``path`` added."""
    path = find_run(ref, storage)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise XpnetValueError(f"cannot read the run {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise XpnetValueError(f"{path} is not a pytest-benchmark run (no 'benchmarks' list)")
    return {**data, "path": str(path)}


def _key(entry: dict) -> tuple:
    params = entry.get("params") or {}
    return (str(entry.get("name", "")).split("[")[0], tuple(sorted((k, str(v)) for k, v in params.items())))


def throughput(entry: dict) -> dict | None:
    """Samples/s of one saved benchmark: at its median round, its fastest and its slowest, and
    ``noise`` ((slowest - fastest) / 2 / median, of the round times); None without timings."""
    stats, info = entry.get("stats") or {}, entry.get("extra_info") or {}
    median = stats.get("median")
    if not median or not stats.get("min") or not stats.get("max"):
        return None
    samples = info.get("samples_per_round") or (entry.get("params") or {}).get("n_samples")
    if not samples:
        return None
    return {"samples_per_second": samples / median, "fastest": samples / stats["min"],
            "slowest": samples / stats["max"], "noise": (stats["max"] - stats["min"]) / 2 / median,
            "rounds": stats.get("rounds")}


def compare_runs(a: dict, b: dict) -> dict:
    """Match the benchmarks of runs ``a`` and ``b`` (:func:`load_run`) by test and parameters.

    Returns
    -------
    dict
        ``rows``: one per benchmark in both, in ``a``'s order: ``name``, ``a`` and ``b``
        (:func:`throughput`), ``ratio`` (b's samples/s over a's: above 1, b is faster) and
        ``verdict`` ("faster", "slower" or "within noise": the ranges of rounds overlap);
        ``only_a``, ``only_b``: the names in one run only; ``a_path``, ``b_path``.
    """
    b_entries = {_key(e): e for e in b["benchmarks"]}
    rows, only_a, seen = [], [], set()
    for entry in a["benchmarks"]:
        key = _key(entry)
        other = b_entries.get(key)
        ta, tb = throughput(entry), throughput(other) if other else None
        if other is None or ta is None or tb is None:
            only_a.append(entry.get("name"))
            continue
        seen.add(key)
        ratio = tb["samples_per_second"] / ta["samples_per_second"]
        overlap = ta["slowest"] <= tb["fastest"] and tb["slowest"] <= ta["fastest"]
        verdict = "within noise" if overlap else "faster" if ratio > 1 else "slower"
        rows.append({"name": entry.get("name"), "a": ta, "b": tb, "ratio": ratio, "verdict": verdict})
    only_b = [e.get("name") for e in b["benchmarks"] if _key(e) not in seen]
    return {"a_path": a.get("path"), "b_path": b.get("path"), "rows": rows, "only_a": only_a, "only_b": only_b}


def _describe(path, run: dict) -> str:
    info = run.get("machine_info") or {}
    mine = info.get("xpnet") or {}
    commit = str((run.get("commit_info") or {}).get("id") or "")
    commit = commit[:10] if commit and all(c in "0123456789abcdef" for c in commit) else ""
    when = str(run.get("datetime", ""))[:16].replace("T", " ")
    parts = [str(path), when, commit and f"commit {commit}", mine.get("cpu", ""),
             (mine.get("numpy_blas") or {}).get("describe", "")]
    return ", ".join(p for p in parts if p)


def format_comparison(result: dict, a: dict, b: dict) -> str:
    """The table ``xpnet bench compare`` prints for :func:`compare_runs`' ``result``."""
    lines = [f"A: {_describe(result['a_path'], a)}", f"B: {_describe(result['b_path'], b)}"]
    rows = result["rows"]
    if not rows:
        lines.append("no benchmark is in both runs with timings (was one saved with --benchmark-disable?)")
    else:
        width = max(len(str(r["name"])) for r in rows)
        lines.append(f"{'benchmark':<{width}} {'A samples/s':>12} {'noise':>6} {'B samples/s':>12} {'noise':>6} "
                     f"{'B/A':>6}  verdict")
        for r in rows:
            lines.append(f"{r['name']:<{width}} {r['a']['samples_per_second']:>12.4g} {_pct(r['a']['noise']):>6} "
                         f"{r['b']['samples_per_second']:>12.4g} {_pct(r['b']['noise']):>6} {r['ratio']:>5.2f}x  "
                         f"{r['verdict']}")
        counts = {v: sum(r["verdict"] == v for r in rows) for v in ("faster", "slower", "within noise")}
        lines.append(f"B/A: B's samples/s over A's (above 1: B is faster); noise: half the spread of a run's rounds "
                     f"over its median; 'within noise' when the two runs' ranges of rounds overlap. "
                     f"{counts['faster']} faster, {counts['slower']} slower, {counts['within noise']} within noise.")
    for side, names in (("A", result["only_a"]), ("B", result["only_b"])):
        if names:
            shown = ", ".join(str(n) for n in names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            lines.append(f"only in {side} (or without timings): {shown}")
    return "\n".join(lines)


def _pct(value: float) -> str:
    return f"±{100 * value:.0f}%" if value < 10 else "±big"


def storage_path(option: str) -> str:
    """``--benchmark-storage``'s value as a folder: ``file://./runs`` -> ``./runs``."""
    return option[len("file://"):] if option.startswith("file://") else os.fspath(option)
