"""Every bad input is one clear error: an XpnetError from the API, and from the CLI one
`xpnet: error:` line on stderr naming the argument, exit status 2, never a traceback."""

import numpy as np
import pytest
from conftest import run_cli

import xpnet
from xpnet import tutorials
from xpnet.data import datasets
from xpnet.io import checkpoint

X4, Y4 = np.zeros((4, 2)), np.array([0, 1, 0, 1])


def fit(**options):
    return xpnet.MLP([2, 3, 2], backend="numpy").fit(X4, Y4, **{"epochs": 1, **options})


API_CASES = [  # (what, call, words the message must contain)
    ("unknown activation", lambda: xpnet.MLP([2, 3, 2], activation="swish"), ["activation", "swish", "tanh"]),
    ("unknown output", lambda: xpnet.MLP([2, 2], output="tanh"), ["output", "softmax"]),
    ("unknown loss", lambda: xpnet.MLP([2, 2], loss="hinge"), ["loss", "hinge"]),
    ("unknown init", lambda: xpnet.MLP([2, 2], init="zeros"), ["init", "zeros"]),
    ("unknown dtype", lambda: xpnet.MLP([2, 2], dtype="float16", backend="numpy"), ["dtype", "float16"]),
    ("unknown backend", lambda: xpnet.get_backend("no_such_lib"), ["no_such_lib"]),
    ("unknown dataset", lambda: datasets.load("mnist"), ["dataset", "mnist"]),
    ("unknown tutorial", lambda: tutorials.run("trask-4layer"), ["tutorial", "trask-4layer"]),
    ("zero layer size", lambda: xpnet.MLP([2, 0, 2]), ["layer size", "0"]),
    ("zero epochs", lambda: fit(epochs=0), ["epochs", "0"]),
    ("negative epochs", lambda: fit(epochs=-5), ["epochs", "-5"]),
    ("zero learning rate", lambda: fit(learning_rate=0.0), ["learning_rate"]),
    ("negative learning rate", lambda: fit(learning_rate=-0.1), ["learning_rate", "-0.1"]),
    ("zero batch size", lambda: fit(batch_size=0), ["batch_size"]),
    ("zero samples", lambda: datasets.load("moons", n_samples=0), ["n_samples"]),
    ("X of rank 1", lambda: xpnet.MLP([2, 2], backend="numpy").predict(np.zeros(4)), ["X", "shape"]),
    ("X/y length mismatch", lambda: xpnet.MLP([2, 2], backend="numpy").fit(X4, Y4[:3]), ["y has shape"]),
    ("empty data", lambda: xpnet.MLP([2, 2], backend="numpy").fit(np.zeros((0, 2)), np.zeros(0)), ["empty"]),
    ("NaN in X", lambda: xpnet.MLP([2, 2], backend="numpy").fit(np.full((4, 2), np.nan), Y4), ["NaN"]),
    ("Inf in y", lambda: xpnet.MLP([2, 1], output="sigmoid", backend="numpy").fit(X4, np.array([0, np.inf, 0, 1])),
     ["NaN or Inf"]),
    ("label out of range", lambda: xpnet.MLP([2, 2], backend="numpy").fit(X4, np.array([0, 1, 2, 1])), ["0..1"]),
    ("fractional label", lambda: xpnet.MLP([2, 2], backend="numpy").fit(X4, np.array([0, 1, 0.5, 1])), ["integer"]),
    ("string X", lambda: xpnet.MLP([2, 2], backend="numpy").predict(np.array([["a", "b"]])), ["X", "numeric"]),
    ("float64 on a float32-only device",
     lambda: xpnet.MLP([2, 2], dtype="float64", backend="array_api_strict:no_float64"), ["float64", "float32"]),
    ("missing model file", lambda: checkpoint.load("/nonexistent/model.npz"), ["no such file"]),
]


@pytest.mark.parametrize("what, call, words", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_errors_name_the_problem(what, call, words):
    if "float32-only" in what:
        pytest.importorskip("array_api_strict")
    with pytest.raises(xpnet.XpnetError) as info:
        call()
    assert isinstance(info.value, (ValueError, TypeError))
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_a_backend_that_is_not_there():
    try:
        xpnet.get_backend("cupy")
    except xpnet.BackendUnavailableError as exc:
        assert "cupy" in str(exc) and isinstance(exc, ValueError)
    else:
        pytest.skip("CuPy and a GPU are present")


@pytest.fixture
def files(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "words.csv").write_text("a,b,label\nx,1,yes\ny,2,no\n")
    (tmp_path / "ok.csv").write_text("a,b,label\n1,2,yes\n3,4,no\n5,6,yes\n")
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 not really a zip archive")
    np.savez(tmp_path / "foreign.npz", weights=np.ones(3))
    return tmp_path


CLI_CASES = [  # (arguments, words the one error line must contain)
    (["train", "--activation", "swish", "--epochs", "1"], ["activation", "swish"]),
    (["train", "--init", "zeros", "--epochs", "1"], ["init", "zeros"]),
    (["train", "--backend", "no_such_lib", "--epochs", "1"], ["no_such_lib"]),
    (["train", "--dataset", "mnist"], ["--dataset", "mnist"]),
    (["train", "--dtype", "float16"], ["--dtype", "float16"]),
    (["train", "--dtype", "float64", "--backend", "array_api_strict:no_float64", "--epochs", "1"], ["float64"]),
    (["train", "--epochs", "0"], ["--epochs"]),
    (["train", "--n-samples", "-5"], ["--n-samples"]),
    (["train", "--batch-size", "0"], ["--batch-size"]),
    (["train", "--hidden", "16,0"], ["--hidden"]),
    (["train", "--learning-rate", "-1"], ["--learning-rate"]),
    (["train", "--learning-rate", "abc"], ["--learning-rate", "abc"]),
    (["train", "--data", "{d}/missing.csv", "--epochs", "1"], ["missing.csv"]),
    (["train", "--data", "{d}/empty.csv", "--epochs", "1"], ["empty.csv", "header row"]),
    (["train", "--data", "{d}/words.csv", "--epochs", "1"], ["column 'a'", "not a number"]),
    (["train", "--data", "{d}/ok.csv", "--target", "nope", "--epochs", "1"], ["nope"]),
    (["evaluate", "--model", "{d}/corrupt.npz"], ["corrupt.npz", "not an xpnet checkpoint"]),
    (["evaluate", "--model", "{d}/foreign.npz"], ["foreign.npz", "not an xpnet checkpoint"]),
    (["evaluate", "--model", "{d}/missing.npz"], ["missing.npz", "no such file"]),
    (["tutorial", "trask-4layer"], ["trask-4layer"]),
    (["tutorial", "trask-3layer", "--iterations", "0"], ["--iterations"]),
    (["bench", "--hidden", "0"], ["--hidden"]),
]


@pytest.mark.parametrize("args, words", CLI_CASES, ids=[" ".join(c[0][:3]) for c in CLI_CASES])
def test_cli_errors_are_one_line_exit_2(files, args, words):
    if any("array_api_strict" in a for a in args):
        pytest.importorskip("array_api_strict")
    proc = run_cli(*[a.format(d=files) for a in args])
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("xpnet: error:") and "Traceback" not in proc.stderr, proc.stderr
    assert len([line for line in lines if line.startswith("xpnet: error:")]) == 1
    for word in words:
        assert word.format(d=files) in lines[-1], (word, lines[-1])


def test_ctrl_c_without_save_prints_the_summary_so_far_and_exits_130():
    import signal
    import subprocess
    import sys

    with subprocess.Popen([sys.executable, "-m", "xpnet", "train", "--backend", "numpy", "--epochs", "10000000",
                           "--log-every", "50", "--n-samples", "100", "--json"],
                          stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as proc:
        proc.stderr.readline()  # training is under way
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    import json

    summary = json.loads(out)
    assert summary["interrupted"] is True and 0 < summary["epochs"] < 10_000_000
    assert err.strip().splitlines()[-1].startswith("xpnet: interrupted after epoch")


def test_fit_stops_cleanly_on_sigint_after_a_complete_epoch():
    import os
    import signal

    X, y = datasets.load("moons", n_samples=100)
    model = xpnet.MLP([2, 8, 2], backend="numpy")
    calls = []

    def interrupt_once(event):
        calls.append(event.epoch)
        if event.epoch == 20:
            os.kill(os.getpid(), signal.SIGINT)

    result = model.fit(X, y, epochs=1000, log_every=10, callback=interrupt_once)
    # the signal came during epoch 20: that epoch still completes, then training stops
    assert result.interrupted and result.epochs == 21 and result.logged_epochs[-1] == 21
    assert result.final_loss == model.loss(X, y)  # the weights are those of the last complete epoch
