"""`xpnet` through a subprocess, as a user runs it."""

import json
import shutil
import subprocess

import pytest
from conftest import run_cli

import xpnet

TRAIN_KEYS = {"backend", "device", "dtype", "epochs", "final_loss", "accuracy", "seconds", "history"}


def test_version():
    assert run_cli("--version", check=0).stdout.strip() == f"xpnet {xpnet.__version__}"


def test_console_script_matches_python_m():
    script = shutil.which("xpnet")
    if script is None:
        pytest.skip("the xpnet console script is not on PATH (package not installed)")
    proc = subprocess.run([script, "--version"], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == f"xpnet {xpnet.__version__}"


def test_train_json_is_one_line_with_the_documented_keys():
    proc = run_cli("train", "--backend", "numpy", "--epochs", "300", "--json", check=0)
    assert proc.stdout.count("\n") == 1
    data = json.loads(proc.stdout)
    assert TRAIN_KEYS <= data.keys()
    assert data["backend"] == "numpy" and data["device"] == "cpu" and data["dtype"] == "float32"
    assert data["epochs"] == 300 and data["history"][-1] == data["final_loss"]
    assert data["history"][-1] < data["history"][0] and 0.85 <= data["accuracy"] <= 1 and data["seconds"] > 0


def test_train_defaults_reach_high_accuracy_and_say_the_backend():
    proc = run_cli("train", check=0)
    assert "auto chose" in proc.stdout  # XPNET_BACKEND unset: auto states what it picked
    accuracy = float(proc.stdout.split("accuracy")[1].split()[0])
    assert accuracy >= 0.95
    assert "epoch" in proc.stderr and "loss" in proc.stderr  # progress on stderr


def test_environment_variable_picks_the_backend():
    proc = run_cli("train", "--epochs", "5", "--json", env={"XPNET_BACKEND": "array_api_strict"})
    if proc.returncode == 2 and "array_api_strict" in proc.stderr:
        pytest.skip("array_api_strict not installed")
    assert json.loads(proc.stdout)["backend"] == "array_api_strict"


def test_train_options_deep_net_float64_threads():
    proc = run_cli("train", "--backend", "numpy", "--dataset", "spirals", "--hidden", "32,32", "--activation", "relu",
                   "--dtype", "float64", "--threads", "1", "--epochs", "200", "--learning-rate", "0.2", "--l2", "0.001",
                   "--json", check=0)
    data = json.loads(proc.stdout)
    assert data["layer_sizes"] == [2, 32, 32, 3] and data["dtype"] == "float64"


def test_help_explains_every_flag():
    text = run_cli("train", "--help", check=0).stdout
    for flag in ("--backend", "--dataset", "--n-samples", "--noise", "--hidden", "--activation", "--epochs",
                 "--learning-rate", "--l2", "--dtype", "--seed", "--threads", "--json"):
        assert flag in text, flag
    assert "XPNET_BACKEND" in text


@pytest.mark.parametrize("args, needle", [
    (["train", "--hidden", "0"], "--hidden"),
    (["train", "--epochs", "-3"], "--epochs"),
    (["train", "--dataset", "mnist"], "--dataset"),
    (["train", "--dtype", "float16"], "--dtype"),
    (["train", "--activation", "swish", "--epochs", "1"], "activation"),
    (["train", "--learning-rate", "0", "--epochs", "1"], "--learning-rate"),
    (["train", "--l2", "nan"], "--l2"),
    (["train", "--backend", "no_such_lib", "--epochs", "1"], "no_such_lib"),
    (["train", "--no-such-flag"], "--no-such-flag"),
    (["frobnicate"], "frobnicate"),
])
def test_errors_are_one_line_and_exit_2(args, needle):
    proc = run_cli(*args)
    assert proc.returncode == 2
    assert proc.stderr.startswith("xpnet: error:") and proc.stderr.count("\n") == 1, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr


def test_divergence_exits_1_and_keeps_the_last_good_weights():
    proc = run_cli("train", "--backend", "numpy", "--learning-rate", "1e30", "--dtype", "float32", "--epochs", "50",
                   "--json")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("xpnet: error: training diverged")
    data = json.loads(proc.stdout)
    assert data["diverged"] is True and data["epochs"] < 50
