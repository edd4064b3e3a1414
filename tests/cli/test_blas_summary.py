"""`xpnet train` says which BLAS kernels ran NumPy's products (the summary's ``blas`` line, the
JSON's ``blas`` key), and warns in one line when a variable forces narrower kernels than the CPU
has (the table of cases lives in tests/engine/test_blas.py; here the wiring)."""

import json

import pytest

from xpnet import cli
from xpnet.engine import blas

AVX512 = frozenset("sse2 avx avx2 fma avx512f avx512cd avx512bw avx512dq avx512vl".split())
POOL = {"user_api": "blas", "internal_api": "openblas", "num_threads": 2, "version": "0.3.31",
        "architecture": "Haswell", "filepath": "/x/libopenblas.so"}


def held_back():
    return blas.inspect(POOL, environ={"OPENBLAS_CORETYPE": "Haswell"}, flags=AVX512)


def test_json_has_the_blas_key_of_numpys_blas(capsys):
    assert cli.main(["train", "--epochs", "3", "--n-samples", "50", "--backend", "numpy", "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    want = blas.numpy_blas()
    assert want is not None and summary["blas"] == want.as_dict()
    assert set(summary["blas"]) >= {"library", "version", "threads", "core_type", "variable", "warning"}


@pytest.mark.filterwarnings("default::xpnet.errors.XpnetWarning")  # the CLI shows it (not the suite's error)
def test_a_variable_holding_blas_back_is_one_warning_line_and_in_the_json(monkeypatch, capsys):
    monkeypatch.setattr(blas, "numpy_blas", held_back)
    assert cli.main(["train", "--epochs", "3", "--n-samples", "50", "--backend", "numpy"]) == 0
    out, err = capsys.readouterr()
    assert "blas      OpenBLAS 0.3.31, 2 threads, Haswell kernels (AVX2), chosen by OPENBLAS_CORETYPE=Haswell" in out
    [line] = [line for line in err.splitlines() if "OPENBLAS_CORETYPE" in line]
    assert line.startswith("xpnet: warning: OPENBLAS_CORETYPE=Haswell makes OpenBLAS run its Haswell kernels (AVX2)")
    assert line.endswith("unset OPENBLAS_CORETYPE to let it choose for this CPU")
    assert cli.main(["train", "--epochs", "3", "--n-samples", "50", "--backend", "numpy", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["blas"]["warning"] == held_back().warning
    assert [w for w in summary["warnings"] if "OPENBLAS_CORETYPE" in w] == [f"warning: {held_back().warning}"]


@pytest.mark.parametrize("backend", ["array_api_strict"])
def test_another_backends_run_has_no_numpy_blas_line(backend, capsys):
    pytest.importorskip(backend)
    assert cli.main(["train", "--epochs", "3", "--n-samples", "50", "--backend", backend, "--json", "--quiet"]) == 0
    assert "blas" not in json.loads(capsys.readouterr().out)
