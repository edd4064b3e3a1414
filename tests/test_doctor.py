"""`xpnet doctor`: the environment report, and --gpu-check run with a CPU stand-in for CuPy so that
every comparison, the table and each verdict are exercised without a GPU."""

import importlib
import json

import pytest
from conftest import available_backend, backend_works, run_cli

from xpnet import doctor
from xpnet.doctor.gpu_check import Check


def test_environment_has_versions_blas_cpu_and_each_backends_verdict():
    info = doctor.environment(backends=("numpy", "cupy", "nmpy"))
    assert info["numpy"] and info["blas"] and info["cpu"]["threads"] >= 1
    assert info["backends"]["numpy"] == {"available": True, "reason": "numpy (given)", "device": "numpy on cpu",
                                         "dtypes": ["float32", "float64"]}
    assert not info["backends"]["nmpy"]["available"] and "did you mean 'numpy'" in info["backends"]["nmpy"]["reason"]
    text = doctor.format_environment(info)
    assert "backends" in text and "numpy             yes" in text and "blas" in text


def test_cpu_features_come_from_the_flags(tmp_path):
    from xpnet.doctor.environment import cpu_info

    (tmp_path / "cpuinfo").write_text("model name\t: Test CPU\nflags\t\t: fpu sse4_2 avx avx2 fma\n")
    info = cpu_info(str(tmp_path / "cpuinfo"))
    assert info["model"] == "Test CPU" and info["features"]["avx2"] and not info["features"]["avx512f"]


def test_cli_doctor_json_is_one_object_with_backends_keyed_by_name():
    proc = run_cli("doctor", "--json", check=0)
    assert proc.stdout.count("\n") == 1
    info = json.loads(proc.stdout)
    assert {"numpy", "cupy", "auto"} <= set(info["backends"]) and info["backends"]["numpy"]["available"]
    assert all(set(v) >= {"available", "reason"} for v in info["backends"].values())


def test_gpu_check_without_a_gpu_is_skipped_and_says_why():
    if backend_works("cupy"):
        pytest.skip("a CUDA device is present")
    proc = run_cli("doctor", "--gpu-check", "--json", check=0)
    report = json.loads(proc.stdout)
    assert report["status"] == "skipped" and report["reason"].startswith("no working CUDA device: backend 'cupy'")
    required = run_cli("doctor", "--gpu-check", "--require-gpu", check=1)
    assert required.stdout.rstrip().endswith(report["reason"]) and required.stdout.startswith("gpu check on cupy")


def test_gpu_check_on_a_stand_in_device_runs_every_check(monkeypatch):
    from xpnet.core.ops import Ops

    available_backend("array_api_strict:device1")
    monkeypatch.setattr(Ops, "chunk_bytes", 1 << 15)  # the chunked check at a few hundred rows
    report = doctor.gpu_check("array_api_strict:device1", rank_devices=["array_api_strict:device1",
                                                                        "array_api_strict:device2"],
                              speed_rows=(300, 1200), speed_layers=[8, 32, 2], agreement_rows=400)
    checks = {c["name"]: c for c in report["checks"]}
    for name in ("agreement float64", "agreement float32", "chunked full batch", "minibatches (adam)",
                 "checkpoint device -> numpy"):
        assert checks[name]["status"] == "passed", checks[name]
    assert checks["agreement float64"]["difference"] <= doctor.TOLERANCES["float64"]
    assert checks["two MPI ranks"]["status"] in ("passed", "skipped"), checks["two MPI ranks"]
    # the estimators under array_api_dispatch: whatever xpnet.sklearn does today, a result with its reason
    assert checks["estimators (array_api_dispatch)"]["status"] in ("passed", "failed")
    assert [row["rows"] for row in report["speed"]] == [300, 1200]
    assert all(row["numpy_seconds"] > 0 and row["device_seconds"] > 0 for row in report["speed"])
    assert report["status"] == ("failed" if any(c["status"] == "failed" for c in checks.values()) else "passed")
    text = doctor.format_gpu_check(report)
    assert text.startswith("gpu check on array_api_strict on device1") and "s/epoch" in text
    assert text.rstrip().splitlines()[-1].startswith(report["status"] + ": ")


def test_the_verdict_fails_on_any_failed_check_and_reports_where_the_gpu_wins():
    speed = [{"rows": 1000}, {"rows": 100_000}]
    ok = [Check("a", "passed", ""), Check("b", "skipped", "needs two devices")]
    assert doctor.verdict(ok, 100_000, speed, "cupy on cuda:0") == (
        "passed", "every check passed on cupy on cuda:0 (b skipped); it is faster than NumPy from 100,000 rows")
    never = doctor.verdict(ok, None, speed, "x")[1]
    assert never.endswith("not faster than NumPy at any size tried (up to 100,000 rows)")
    status, reason = doctor.verdict(ok + [Check("c", "failed", "off by 1e-3")], 1000, speed, "x")
    assert status == "failed" and reason.startswith("c failed on x")


def test_a_check_that_raises_fails_with_its_reason():
    from xpnet.doctor.gpu_check import _guarded

    def broken():
        raise RuntimeError("cuBLAS failed")

    check = _guarded("broken", broken)
    assert (check.status, check.detail) == ("failed", "RuntimeError: cuBLAS failed")


def test_the_report_says_which_blas_kernels_run_and_warns_when_a_variable_holds_them_back(monkeypatch):
    env_module = importlib.import_module("xpnet.doctor.environment")
    from xpnet.engine import blas

    pool = {"user_api": "blas", "internal_api": "openblas", "num_threads": 2, "version": "0.3.31",
            "architecture": "Haswell", "filepath": "/x/libopenblas.so"}
    avx512 = frozenset("sse2 avx avx2 fma avx512f avx512cd avx512bw avx512dq avx512vl".split())
    monkeypatch.setattr("threadpoolctl.threadpool_info", lambda: [pool])
    monkeypatch.setattr(blas, "cpu_flags", lambda path="/proc/cpuinfo": avx512)
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    [entry] = env_module.blas_pools()
    assert entry["architecture"] == "Haswell" and entry["variable"] == "OPENBLAS_CORETYPE=Haswell"
    assert entry["kernel_isa"] == "avx2" and entry["cpu_isa"] == "avx512"
    assert "unset OPENBLAS_CORETYPE" in entry["warning"]
    text = env_module.format_environment({**doctor.environment(backends=("numpy",)), "blas": [entry]})
    assert "blas        OpenBLAS 0.3.31, 2 threads, Haswell kernels (AVX2), chosen by OPENBLAS_CORETYPE=Haswell" in text
    assert "            warning: OPENBLAS_CORETYPE=Haswell makes OpenBLAS run" in text
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    pool["architecture"] = "SkylakeX"
    [entry] = env_module.blas_pools()
    assert entry["warning"] is None and entry["variable"] is None
    assert "chosen by OpenBLAS for this CPU" in entry["kernels"]
