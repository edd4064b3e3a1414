"""Benchmarks: how fast one full-batch training epoch runs, measured against the machine and peers.

    >>> from xpnet import bench
    >>> report = bench.run(["numpy"], ["float32"], n_samples=[1000], hidden=[64], repeat=3)
    >>> row = report["results"][0]
    >>> row["seconds_per_epoch"] > 0 and row["x_over_tanh_floor"] > 0
    True
    >>> print(bench.format_table(report))  # doctest: +SKIP

The same from the shell: ``xpnet bench --backend numpy --hidden 64,256 --compare torch,jax``;
as a pytest-benchmark suite: ``pytest bench`` (see ``bench/conftest.py``). The method, the
JSON keys and the measurements are in ``docs/benchmarks.md``.

One module per job:

* :mod:`~xpnet.bench.cost`: what a step does (:func:`step_cost`: FLOPs, bytes) and :func:`units`;
* :mod:`~xpnet.bench.runners`: what is timed of xpnet: :class:`Case`, the trainer's own epoch
  (:class:`EpochRunner`), and the memory a case needs (:func:`estimate_memory`, :func:`too_big`);
* :mod:`~xpnet.bench.peers`: the peers of ``compare`` (:data:`COMPARE`, :data:`BASELINES`);
* :mod:`~xpnet.bench.probes`: the :class:`MatmulProbe` and :class:`TanhFloor`;
* :mod:`~xpnet.bench.disk`: rows from a mapped ``.npy`` and the :class:`PageCacheProbe`;
* :mod:`~xpnet.bench.timing`: :func:`time_interleaved`, :func:`measure_ceilings`, :func:`peak_memory`,
  :func:`watch_memory`;
* :mod:`~xpnet.bench.machine`: :func:`machine_info` (with :func:`cpu_caches` and the BLAS
  report of :mod:`xpnet.engine.blas`);
* :mod:`~xpnet.bench.report`: :func:`run`, :func:`measure_case`, :func:`format_table`,
  :func:`format_progress`;
* :mod:`~xpnet.bench.sweep`: the cost curve (``xpnet bench --sweep``) and its figure;
* :mod:`~xpnet.bench.compare`: two saved pytest-benchmark runs side by side (``xpnet bench compare``).

The throughput figure is :func:`xpnet.plot.bench_figure`; the cost curve's
:func:`xpnet.bench.sweep.sweep_figure`.
"""

from __future__ import annotations

from ..backend import get_backend as get_backend  # `xpnet bench` loads torch through it
from .cost import ACTIVATIONS, StepCost, step_cost, units
from .disk import PageCacheProbe
from .machine import cpu_caches, default_ceiling_sizes, machine_info, on_gpu
from .peers import (
    BASELINES,
    JaxBaseline,
    TorchBaseline,
    TorchCompileBaseline,
    TutorialBaseline,
    start_peer,
    torch_device_for,
)
from .probes import MatmulProbe, TanhFloor
from .report import format_progress, format_table, measure_case, run
from .runners import COMPARE, Case, EpochRunner, baseline_memory, compare_key, compare_names, estimate_memory, too_big
from .timing import best_seconds, measure_ceilings, peak_memory, time_interleaved, watch_memory

__all__ = [
    "ACTIVATIONS", "BASELINES", "COMPARE", "Case", "EpochRunner", "JaxBaseline", "MatmulProbe", "PageCacheProbe",
    "StepCost", "cpu_caches", "watch_memory",
    "TanhFloor", "TorchBaseline", "TorchCompileBaseline", "TutorialBaseline", "baseline_memory", "best_seconds",
    "compare_key", "compare_names", "default_ceiling_sizes", "estimate_memory", "format_progress", "format_table",
    "machine_info", "measure_case", "measure_ceilings", "on_gpu", "peak_memory", "run",
    "start_peer", "step_cost", "time_interleaved", "too_big", "torch_device_for", "units",
]
