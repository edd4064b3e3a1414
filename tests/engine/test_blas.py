"""xpnet.engine.blas: which BLAS runs, what chose its kernels, and the warning when a variable
forces narrower ones than the CPU has -- table-driven over CPU flags and environment settings."""

import json
import os
import subprocess
import sys

import pytest

from xpnet.engine import blas

AVX512 = frozenset("fpu sse2 pni ssse3 sse4_1 sse4_2 avx avx2 fma avx512f avx512cd avx512bw avx512dq avx512vl".split())
AVX2 = frozenset("fpu sse2 pni ssse3 sse4_1 sse4_2 avx avx2 fma".split())
AVX = frozenset("fpu sse2 pni ssse3 sse4_1 sse4_2 avx".split())
XEON_PHI = frozenset("sse2 pni ssse3 sse4_1 sse4_2 avx avx2 fma avx512f avx512cd".split())  # no BW/DQ/VL
ARM = frozenset("fp asimd evtstrm aes".split())


def openblas(architecture):
    return {"user_api": "blas", "internal_api": "openblas", "num_threads": 2, "version": "0.3.31",
            "architecture": architecture, "filepath": "/x/libopenblas.so"}


MKL = {"user_api": "blas", "internal_api": "mkl", "num_threads": 4, "version": "2025.0", "filepath": "/x/libmkl_rt.so"}
BLIS = {"user_api": "blas", "internal_api": "blis", "num_threads": 1, "version": "0.9", "architecture": "zen3"}


@pytest.mark.parametrize("flags, level", [
    (AVX512, "avx512"), (AVX2, "avx2"), (AVX, "avx"), (XEON_PHI, "avx2"), (ARM, None), (frozenset(), None),
    (frozenset({"sse2", "pni"}), "sse3"), (frozenset({"avx2"}), None),  # AVX2 alone: no FMA, no SSE flags
])
def test_cpu_isa_is_the_widest_level_whose_flags_are_all_there(flags, level):
    assert blas.cpu_isa(flags) == level


HASWELL, SKYLAKEX = openblas("Haswell"), openblas("SkylakeX")


def coretype(value):
    return {"OPENBLAS_CORETYPE": value}


# (pool, environment, CPU flags) -> (core_type, variable, kernel_isa, warns, ignored)
CASES = [
    # OpenBLAS's own choice: no variable, no warning, even when it is narrower than the CPU
    (SKYLAKEX, {}, AVX512, ("SkylakeX", None, "avx512", False, None)),
    (HASWELL, {}, AVX512, ("Haswell", None, "avx2", False, None)),
    # this machine's shells: an AVX-512 CPU forced to Haswell's kernels
    (HASWELL, coretype("Haswell"), AVX512, ("Haswell", "OPENBLAS_CORETYPE=Haswell", "avx2", True, None)),
    (HASWELL, coretype("zen"), AVX512, ("Haswell", "OPENBLAS_CORETYPE=zen", "avx2", True, None)),
    (openblas("Sandybridge"), coretype("SANDYBRIDGE"), AVX2,
     ("Sandybridge", "OPENBLAS_CORETYPE=SANDYBRIDGE", "avx", True, None)),
    # the same setting on a CPU without AVX-512 is no narrowing
    (HASWELL, coretype("Haswell"), AVX2, ("Haswell", "OPENBLAS_CORETYPE=Haswell", "avx2", False, None)),
    # a variable as wide as the CPU, or wider
    (SKYLAKEX, coretype("SkylakeX"), AVX512, ("SkylakeX", "OPENBLAS_CORETYPE=SkylakeX", "avx512", False, None)),
    (HASWELL, coretype("SkylakeX"), AVX2, ("Haswell", "OPENBLAS_CORETYPE=SkylakeX", "avx2", False, None)),
    # a value OpenBLAS does not know: it chose itself; the setting is reported as ignored
    (SKYLAKEX, coretype("bogus"), AVX512, ("SkylakeX", None, "avx512", False, "OPENBLAS_CORETYPE=bogus")),
    # an empty value is no setting
    (SKYLAKEX, coretype(" "), AVX512, ("SkylakeX", None, "avx512", False, None)),
    # a known narrow value the library did not follow (it reports wide kernels): nothing to warn of
    (SKYLAKEX, coretype("Haswell"), AVX512, ("SkylakeX", "OPENBLAS_CORETYPE=Haswell", "avx512", False, None)),
    # no CPU flags (another OS, ARM): reported, never judged
    (HASWELL, coretype("Haswell"), ARM, ("Haswell", "OPENBLAS_CORETYPE=Haswell", "avx2", False, None)),
    (HASWELL, coretype("Haswell"), frozenset(), ("Haswell", "OPENBLAS_CORETYPE=Haswell", "avx2", False, None)),
    # another library's variable does not count
    (SKYLAKEX, {"MKL_ENABLE_INSTRUCTIONS": "AVX2"}, AVX512, ("SkylakeX", None, "avx512", False, None)),
    # MKL reports no core type: the variable's value says what it allows
    (MKL, {}, AVX512, (None, None, None, False, None)),
    (MKL, {"MKL_ENABLE_INSTRUCTIONS": "AVX2"}, AVX512, (None, "MKL_ENABLE_INSTRUCTIONS=AVX2", "avx2", True, None)),
    (MKL, {"MKL_ENABLE_INSTRUCTIONS": "avx512_e1"}, AVX512,
     (None, "MKL_ENABLE_INSTRUCTIONS=avx512_e1", "avx512", False, None)),
    (MKL, {"MKL_CBWR": "AVX,STRICT"}, AVX2, (None, "MKL_CBWR=AVX,STRICT", "avx", True, None)),
    (MKL, {"MKL_DEBUG_CPU_TYPE": "5"}, AVX512, (None, "MKL_DEBUG_CPU_TYPE=5", "avx2", True, None)),
    # a value not in the tables: reported, not judged
    (MKL, {"MKL_DEBUG_CPU_TYPE": "7"}, AVX512, (None, "MKL_DEBUG_CPU_TYPE=7", None, False, None)),
    # MKL honours MKL_ENABLE_INSTRUCTIONS first
    (MKL, {"MKL_ENABLE_INSTRUCTIONS": "AVX512", "MKL_DEBUG_CPU_TYPE": "5"}, AVX512,
     (None, "MKL_ENABLE_INSTRUCTIONS=AVX512", "avx512", False, None)),
    # BLIS names its configuration
    (BLIS, {}, AVX512, ("zen3", None, "avx2", False, None)),
    (BLIS, {"BLIS_ARCH_TYPE": "zen3"}, AVX512, ("zen3", "BLIS_ARCH_TYPE=zen3", "avx2", True, None)),
    # a library this module does not know: reported as it is
    ({"user_api": "blas", "internal_api": "flexiblas", "num_threads": 2, "version": "3.4"}, coretype("Haswell"),
     AVX512, (None, None, None, False, None)),
]


@pytest.mark.parametrize("pool, environ, flags, expected", CASES)
def test_inspect_reports_the_kernels_and_what_chose_them(pool, environ, flags, expected):
    core_type, variable, kernel_isa, warns, ignored = expected
    info = blas.inspect(pool, environ=environ, flags=flags)
    assert (info.core_type, info.variable, info.kernel_isa, info.ignored_variable) == (core_type, variable, kernel_isa,
                                                                                        ignored)
    assert info.library == pool["internal_api"] and info.threads == pool["num_threads"]
    assert info.version == pool["version"]
    if warns:
        name = variable.split("=")[0]
        assert "\n" not in info.warning and variable in info.warning and f"unset {name}" in info.warning
        assert blas.ISA_NAMES[info.cpu_isa] in info.warning and blas.ISA_NAMES[kernel_isa] in info.warning
    else:
        assert info.warning is None


def test_the_warning_reads_as_one_line_naming_the_cpu_and_the_kernels():
    info = blas.inspect(HASWELL, environ=coretype("Haswell"), flags=AVX512)
    assert info.warning == ("OPENBLAS_CORETYPE=Haswell makes OpenBLAS run its Haswell kernels (AVX2) on a CPU "
                            "with AVX-512: matrix products are slower; unset OPENBLAS_CORETYPE to let it choose for "
                            "this CPU")
    assert info.describe() == "OpenBLAS 0.3.31, 2 threads, Haswell kernels (AVX2), chosen by OPENBLAS_CORETYPE=Haswell"
    own = blas.inspect(openblas("SkylakeX"), environ={}, flags=AVX512)
    assert own.describe() == "OpenBLAS 0.3.31, 2 threads, SkylakeX kernels (AVX-512), chosen by OpenBLAS for this CPU"
    assert blas.inspect(MKL, environ={}, flags=AVX512).describe() == "MKL 2025.0, 4 threads, chosen by MKL for this CPU"
    bogus = blas.inspect(openblas("SkylakeX"), environ={"OPENBLAS_CORETYPE": "bogus"}, flags=AVX512)
    assert bogus.describe().endswith("(OPENBLAS_CORETYPE=bogus is set but not a kernel name it knows)")


def test_as_dict_has_the_json_keys():
    d = blas.inspect(openblas("Haswell"), environ={"OPENBLAS_CORETYPE": "Haswell"}, flags=AVX512).as_dict()
    assert {"library", "version", "threads", "core_type", "variable", "kernel_isa", "cpu_isa", "warning"} <= set(d)
    assert d["library"] == "openblas" and d["core_type"] == "Haswell" and d["variable"] == "OPENBLAS_CORETYPE=Haswell"


def test_every_table_entry_names_a_known_level():
    levels = set(blas.ISA_LEVELS)
    assert set(blas.ISA_NAMES) == levels
    assert {level for level, _ in blas.CPU_ISA_FLAGS} <= levels
    assert set(blas.CORE_TYPE_ISA.values()) <= levels
    for name, table in blas.VARIABLE_ISA.items():
        assert any(name in names for names in blas.VARIABLES.values()), name
        assert set(table.values()) <= levels, name
    ranks = [blas.ISA_LEVELS.index(level) for level, _ in blas.CPU_ISA_FLAGS]
    assert ranks == sorted(ranks, reverse=True)  # widest first, so the first match is the widest


def test_cpu_flags_reads_the_first_flags_line(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu avx2 fma\n\nprocessor\t: 1\nflags\t: sse2\n")
    assert blas.cpu_flags(str(path)) == {"fpu", "avx2", "fma"}
    assert blas.cpu_flags(str(tmp_path / "missing")) == frozenset()


@pytest.mark.parametrize("setting", [None, "Haswell"])
def test_numpy_blas_in_a_process_with_and_without_the_variable(setting):
    """The real library, in a fresh process (OpenBLAS reads its variable when it loads):
    the variable is reported exactly as set, never changed, and the kernels are the ones
    threadpoolctl sees."""
    code = ("import os, json, threadpoolctl, numpy\n"
            "try:\n    import scipy.linalg  # SciPy's wheels bundle an OpenBLAS of their own, loaded first here\n"
            "except ImportError:\n    pass\n"
            "from xpnet.engine import blas; info = blas.numpy_blas()\n"
            "pools = [p for p in threadpoolctl.threadpool_info() if p['filepath'] == info.filepath]\n"
            "print(json.dumps([info.as_dict(), pools[0].get('architecture'), os.environ.get('OPENBLAS_CORETYPE'), "
            "numpy.show_config(mode='dicts')['Build Dependencies']['blas']['name']]))")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    if setting:
        env["OPENBLAS_CORETYPE"] = setting
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    info, architecture, after, built = json.loads(proc.stdout)
    assert after == setting  # never overridden
    if "scipy-openblas" in built:  # NumPy's wheel: its own copy, not SciPy's
        assert f"{os.sep}numpy.libs{os.sep}" in info["filepath"] or f"{os.sep}.dylibs{os.sep}" in info["filepath"]
    assert info["core_type"] == architecture and info["threads"] >= 1
    if info["library"] == "openblas" and setting:
        assert info["variable"] == f"OPENBLAS_CORETYPE={setting}" and info["core_type"] == "Haswell"
        assert (info["warning"] is not None) == (info["cpu_isa"] == "avx512")
    elif info["library"] == "openblas":
        assert info["variable"] is None and info["warning"] is None
