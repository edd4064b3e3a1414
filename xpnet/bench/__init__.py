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
* :mod:`~xpnet.bench.runners`: what is timed of xpnet: :class:`Case`, xpnet's step
  (:class:`EpochRunner`), and the memory a case needs (:func:`estimate_memory`, :func:`too_big`);
* :mod:`~xpnet.bench.peers`: the peers of ``compare`` (:data:`COMPARE`, :data:`BASELINES`);
* :mod:`~xpnet.bench.probes`: the :class:`MatmulProbe` and :class:`TanhFloor`;
* :mod:`~xpnet.bench.timing`: :func:`time_interleaved`, :func:`measure_ceilings`, :func:`peak_memory`;
* :mod:`~xpnet.bench.machine`: :func:`machine_info`;
* :mod:`~xpnet.bench.report`: :func:`run`, :func:`measure_case`, :func:`format_table`,
  :func:`format_progress`.

The throughput figure is :func:`xpnet.plot.bench_figure`.
"""

from __future__ import annotations

from ..backend import get_backend as get_backend  # `xpnet bench` loads torch through it
from .cost import ACTIVATIONS, StepCost, step_cost, units
from .machine import default_ceiling_sizes, machine_info, on_gpu
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
from .timing import best_seconds, measure_ceilings, peak_memory, time_interleaved

__all__ = [
    "ACTIVATIONS", "BASELINES", "COMPARE", "Case", "EpochRunner", "JaxBaseline", "MatmulProbe", "StepCost",
    "TanhFloor", "TorchBaseline", "TorchCompileBaseline", "TutorialBaseline", "baseline_memory", "best_seconds",
    "compare_key", "compare_names", "default_ceiling_sizes", "estimate_memory", "format_progress", "format_table",
    "machine_info", "measure_case", "measure_ceilings", "on_gpu", "peak_memory", "run",
    "start_peer", "step_cost", "time_interleaved", "too_big", "torch_device_for", "units",
]
