"""Which BLAS runs NumPy's matrix products: library, version, threads, kernels, and what chose them.

A BLAS library picks its kernels (its *core type*: OpenBLAS's ``Haswell`` or ``SkylakeX``,
BLIS's ``zen3``...) for the CPU when it loads, unless an environment variable forces a choice
(``OPENBLAS_CORETYPE``, ``MKL_ENABLE_INSTRUCTIONS``...). A variable naming older kernels than
the CPU supports (an AVX-512 CPU with ``OPENBLAS_CORETYPE=Haswell``) makes every product
slower, and nothing says so; this module says so. It only reads: it never sets or overrides
a user's variable.

API (the CLI's run summary, ``xpnet bench`` and ``xpnet doctor`` use it)::

    >>> from xpnet.engine import blas
    >>> info = blas.numpy_blas()          # NumPy's BLAS now, or None if threadpoolctl sees none
    >>> info.describe()                   # doctest: +SKIP
    'OpenBLAS 0.3.31.188.0, 2 threads, SkylakeX kernels (AVX-512), chosen by OpenBLAS for this CPU'
    >>> info.warning                      # doctest: +SKIP
    None                                  # or one line when a variable forces narrower kernels
    >>> info.as_dict()                    # doctest: +SKIP
    {'library': 'openblas', 'version': '0.3.31.188.0', 'threads': 2, 'core_type': 'SkylakeX',
     'variable': None, 'kernel_isa': 'avx512', 'cpu_isa': 'avx512', 'warning': None, ...}

* :func:`numpy_blas` -- the BLAS NumPy's ``@`` calls (:class:`BlasInfo`); :func:`all_blas` --
  every BLAS loaded in the process (torch may bring its own).
* :class:`BlasInfo` -- ``library``, ``version``, ``threads``, ``core_type`` (the kernels' name as
  the library reports it; None where it does not, e.g. MKL), ``variable`` (``"NAME=value"`` of
  the environment variable that chose the kernels, None when the library chose them itself),
  ``kernel_isa`` and ``cpu_isa`` (the widest instruction sets of the kernels and of the CPU, as
  names of :data:`ISA_LEVELS`), ``warning`` (one line, or None), ``ignored_variable`` (a
  setting whose value the library did not take, e.g. ``OPENBLAS_CORETYPE=bogus``), ``filepath``;
  :meth:`BlasInfo.as_dict` (the JSON form), :meth:`BlasInfo.describe` (one line).
* :func:`inspect` -- the pure part: a threadpoolctl pool, an environment and a set of CPU flags
  in, a :class:`BlasInfo` out; testable on any machine.

Every judgement is a table lookup (:data:`CPU_ISA_FLAGS`, :data:`CORE_TYPE_ISA`,
:data:`VARIABLES`, :data:`VARIABLE_ISA`): a core type, variable value or CPU not in the tables is
reported as it is, and never judged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass

# Instruction-set levels from narrowest to widest (x86-64); "generic" is plain C.
ISA_LEVELS = ("generic", "sse2", "sse3", "ssse3", "sse4_1", "sse4_2", "avx", "avx2", "avx512")
ISA_NAMES = {"generic": "generic C", "sse2": "SSE2", "sse3": "SSE3", "ssse3": "SSSE3", "sse4_1": "SSE4.1",
             "sse4_2": "SSE4.2", "avx": "AVX", "avx2": "AVX2", "avx512": "AVX-512"}

# The /proc/cpuinfo flags each level needs, widest first (AVX-512 as BLAS kernels use it:
# the Skylake-X subset F, CD, BW, DQ, VL; AVX2 kernels use FMA3 too).
CPU_ISA_FLAGS = (
    ("avx512", frozenset({"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"})),
    ("avx2", frozenset({"avx2", "fma"})),
    ("avx", frozenset({"avx"})),
    ("sse4_2", frozenset({"sse4_2"})),
    ("sse4_1", frozenset({"sse4_1"})),
    ("ssse3", frozenset({"ssse3"})),
    ("sse3", frozenset({"pni"})),  # the kernel calls SSE3 "pni"
    ("sse2", frozenset({"sse2"})),
)

# Kernel (core type / configuration) names, lower case, as OpenBLAS (OPENBLAS_CORETYPE and
# threadpoolctl's "architecture") and BLIS (BLIS_ARCH_TYPE, "architecture") spell them, to the
# widest instruction set their kernels use. OpenBLAS runs Haswell's kernels for "Zen".
CORE_TYPE_ISA = {
    # OpenBLAS, x86-64
    "katmai": "generic", "coppermine": "generic", "northwood": "sse2", "banias": "sse2", "athlon": "sse2",
    "opteron": "sse2", "prescott": "sse3", "opteron_sse3": "sse3", "barcelona": "sse3", "bobcat": "sse3",
    "nano": "sse3", "core2": "ssse3", "atom": "ssse3", "penryn": "sse4_1", "dunnington": "sse4_1",
    "nehalem": "sse4_2", "sandybridge": "avx", "bulldozer": "avx", "piledriver": "avx", "steamroller": "avx",
    "excavator": "avx", "haswell": "avx2", "zen": "avx2", "skylakex": "avx512", "cooperlake": "avx512",
    "sapphirerapids": "avx512",
    # BLIS and AOCL-BLIS configurations
    "generic": "generic", "zen2": "avx2", "zen3": "avx2", "zen4": "avx512",
    "zen5": "avx512", "skx": "avx512", "knl": "avx512",
}

# The environment variables each library (threadpoolctl's "internal_api") reads to choose its
# kernels, in the order it honours them.
VARIABLES = {
    "openblas": ("OPENBLAS_CORETYPE",),
    "mkl": ("MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", "MKL_DEBUG_CPU_TYPE"),
    "blis": ("BLIS_ARCH_TYPE", "AOCL_ENABLE_INSTRUCTIONS"),
}

_MKL_LEVELS = {"sse2": "sse2", "compatible": "sse2", "sse3": "sse3", "ssse3": "ssse3", "sse4_1": "sse4_1",
               "sse4_2": "sse4_2", "avx": "avx", "avx2": "avx2", "avx2_e1": "avx2", "avx512": "avx512",
               "avx512_e1": "avx512", "avx512_e2": "avx512", "avx512_e3": "avx512", "avx512_e4": "avx512"}
# A variable's value (lower case; MKL_CBWR's ",STRICT" suffix dropped) to the widest instruction
# set it lets the library use. MKL_DEBUG_CPU_TYPE: only 5 (AVX2) is documented well enough here.
VARIABLE_ISA: dict[str, Mapping[str, str]] = {
    "OPENBLAS_CORETYPE": CORE_TYPE_ISA,
    "BLIS_ARCH_TYPE": CORE_TYPE_ISA,
    "AOCL_ENABLE_INSTRUCTIONS": {"avx2": "avx2", "avx512": "avx512", "zen": "avx2", "zen2": "avx2",
                                 "zen3": "avx2", "zen4": "avx512", "zen5": "avx512"},
    "MKL_ENABLE_INSTRUCTIONS": _MKL_LEVELS,
    "MKL_CBWR": _MKL_LEVELS,
    "MKL_DEBUG_CPU_TYPE": {"5": "avx2"},
}

_LIBRARY_NAMES = {"openblas": "OpenBLAS", "mkl": "MKL", "blis": "BLIS", "accelerate": "Accelerate"}


@dataclass(frozen=True)
class BlasInfo:
    """One BLAS library as it runs in this process (see the module doc for each field)."""

    library: str
    version: str | None
    threads: int | None
    core_type: str | None
    variable: str | None
    kernel_isa: str | None
    cpu_isa: str | None
    warning: str | None
    ignored_variable: str | None = None
    filepath: str | None = None

    def as_dict(self) -> dict:
        """The JSON form: every field, by name."""
        return asdict(self)

    def describe(self) -> str:
        """One line: library, version, threads, kernels and what chose them."""
        name = _LIBRARY_NAMES.get(self.library, self.library)
        parts = [f"{name} {self.version}" if self.version else name]
        if self.threads is not None:
            parts.append(f"{self.threads} thread{'s' if self.threads != 1 else ''}")
        isa = f" ({ISA_NAMES[self.kernel_isa]})" if self.kernel_isa else ""
        if self.core_type:
            parts.append(f"{self.core_type} kernels{isa}")
        elif self.kernel_isa:
            parts.append(f"kernels up to {ISA_NAMES[self.kernel_isa]}")
        parts.append(f"chosen by {self.variable}" if self.variable else f"chosen by {name} for this CPU")
        line = ", ".join(parts)
        if self.ignored_variable:
            line += f" ({self.ignored_variable} is set but not a kernel name it knows)"
        return line


def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset:
    """The CPU's feature flags from the first ``flags`` line of ``path`` (Linux, x86); empty
    where there is none (another OS or architecture: nothing is then judged)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_isa(flags) -> str | None:
    """The widest level of :data:`ISA_LEVELS` whose flags (:data:`CPU_ISA_FLAGS`) are all in
    ``flags``; None when none is (an unknown CPU, or no flags)."""
    have = frozenset(flags)
    return next((level for level, needs in CPU_ISA_FLAGS if needs <= have), None)


def variable_isa(name: str, value: str) -> str | None:
    """The widest instruction set the setting ``name=value`` lets its library use; None when the
    value is not in :data:`VARIABLE_ISA` (then nothing is judged)."""
    key = value.strip().lower().split(",")[0].strip()
    return VARIABLE_ISA.get(name, {}).get(key)


def _rank(level: str | None) -> int:
    return ISA_LEVELS.index(level) if level in ISA_LEVELS else -1


def inspect(pool: Mapping, *, environ: Mapping[str, str] | None = None, flags=None) -> BlasInfo:
    """Describe one threadpoolctl pool (a ``threadpool_info()`` entry) under ``environ`` (default
    ``os.environ``) on a CPU with ``flags`` (default :func:`cpu_flags`).

    ``variable`` is the first of the library's :data:`VARIABLES` set (non-empty) in ``environ``;
    when its value is not in :data:`VARIABLE_ISA` and the library reports the kernels it runs,
    the library did not take it: it is ``ignored_variable`` instead.
    ``warning`` is one line when that variable's value names kernels (:func:`variable_isa`)
    narrower than the CPU's widest level (:func:`cpu_isa`) and the library does run kernels
    that narrow (its reported core type, where it reports one). Otherwise None.
    """
    environ = os.environ if environ is None else environ
    flags = cpu_flags() if flags is None else flags
    library = str(pool.get("internal_api") or "unknown")
    core_type = pool.get("architecture") or None
    name = next((v for v in VARIABLES.get(library, ()) if environ.get(v, "").strip()), None)
    setting = f"{name}={environ[name].strip()}" if name else None
    forced = variable_isa(name, environ[name]) if name else None
    # a value the tables do not know, while the library names the kernels it chose: the
    # library ignored it (OpenBLAS falls back to its own choice), so it chose nothing
    ignored = setting if name and forced is None and core_type else None
    variable = None if ignored else setting
    kernel = CORE_TYPE_ISA.get(str(core_type).lower()) if core_type else forced
    cpu = cpu_isa(flags)
    warning = None
    if name and forced and cpu and _rank(forced) < _rank(cpu) and (kernel is None or _rank(kernel) < _rank(cpu)):
        ran = f"its {core_type} kernels" if core_type else "kernels"
        warning = (f"{variable} makes {_LIBRARY_NAMES.get(library, library)} run {ran} "
                   f"({ISA_NAMES[kernel or forced]}) on a CPU with {ISA_NAMES[cpu]}: matrix products are slower; "
                   f"unset {name} to let it choose for this CPU")
    threads = pool.get("num_threads")
    return BlasInfo(library=library, version=pool.get("version"), threads=None if threads is None else int(threads),
                    core_type=core_type, variable=variable, kernel_isa=kernel, cpu_isa=cpu, warning=warning,
                    ignored_variable=ignored, filepath=pool.get("filepath"))


def _blas_pools() -> list:
    import numpy as np  # noqa: F401  (loads NumPy's BLAS, so threadpoolctl can see it)
    from threadpoolctl import threadpool_info

    return [pool for pool in threadpool_info() if pool.get("user_api") == "blas"]


def all_blas(*, environ: Mapping[str, str] | None = None, flags=None) -> list[BlasInfo]:
    """Every BLAS library loaded in this process (NumPy's first), each :func:`inspect`-ed."""
    pools = _blas_pools()
    numpys = _numpys(pools)
    pools = sorted(pools, key=lambda pool: pool not in numpys)
    flags = cpu_flags() if flags is None else flags
    return [inspect(pool, environ=environ, flags=flags) for pool in pools]


def numpy_blas(*, environ: Mapping[str, str] | None = None, flags=None) -> BlasInfo | None:
    """The BLAS NumPy's matrix products call, :func:`inspect`-ed; None when threadpoolctl finds
    no BLAS (a NumPy built without one)."""
    found = all_blas(environ=environ, flags=flags)
    return found[0] if found else None


def _numpys(pools: list) -> list:
    """The pools of the library NumPy links: those inside NumPy's own folders (wheels bundle it
    in ``numpy.libs`` or ``numpy/.dylibs``; SciPy bundles its own beside it), else those of the
    kind NumPy was built with."""
    import numpy as np

    package = os.path.dirname(os.path.abspath(np.__file__))
    inside = [p for p in pools if any(str(p.get("filepath") or "").startswith(folder + os.sep)
                                      for folder in (package, package + ".libs"))]
    if inside:
        return inside
    try:
        built = str(np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]).lower()
    except Exception:  # an old NumPy, or a config without the entry: no preference
        return []
    return [p for p in pools if str(p.get("internal_api", "")) in built]
