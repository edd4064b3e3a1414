"""The command line under faults, hostile flags and odd environments (issue 15), and the test
suite's own output (issue 17): each through a subprocess, as a user meets it."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import run_cli

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(TESTS)


def test_skip_reasons_are_printed_once_each_with_a_count(tmp_path):
    (tmp_path / "conftest.py").write_text(
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('xpnet_conftest', {os.path.join(TESTS, 'conftest.py')!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "pytest_terminal_summary = module.pytest_terminal_summary\n")
    (tmp_path / "test_skips.py").write_text(
        "import pytest\n"
        "@pytest.mark.parametrize('k', range(5))\n"
        "def test_needs_a_gpu(k):\n"
        "    pytest.skip('no GPU here: install CuPy')\n"
        "def test_other():\n"
        "    pytest.skip('another reason')\n"
        "def test_runs():\n"
        "    assert True\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-c",
                           os.path.join(ROOT, "pyproject.toml"), "--rootdir", str(tmp_path), str(tmp_path)],
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]
    out = proc.stdout
    assert "SKIPPED [" not in out  # not one line per skipped test
    assert out.count("no GPU here: install CuPy") == 1 and "   5 x no GPU here: install CuPy" in out
    assert "   1 x another reason" in out and "1 passed, 6 skipped" in out


def run_patched(setup: str, *args, stdout=subprocess.PIPE, timeout=300, cwd=None):
    """``xpnet ARGS`` in a subprocess after running the Python ``setup`` (which patches something)."""
    code = f"{setup}\nimport sys\nfrom xpnet.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], stdout=stdout, stderr=subprocess.PIPE,
                          text=True, timeout=timeout, env=dict(os.environ, PYTHONPATH=ROOT), cwd=cwd)


def assert_one_error_line(proc, *words, code=2):
    assert proc.returncode == code, (proc.returncode, proc.stderr[-2000:])
    errors = [line for line in proc.stderr.splitlines() if line.startswith("xpnet: error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    for word in words:
        assert word in errors[0], (word, errors[0])
    return errors[0]


@pytest.mark.parametrize("seed", ["-1", str(2**70), "2**70", "1.5", str(2**32)])
def test_seeds_out_of_range_are_one_line(seed):
    proc = run_cli("train", "--seed", seed, "--epochs", "1")
    assert_one_error_line(proc, "--seed", "2**32-1")
    assert proc.stderr.count("\n") == 1


def test_seed_at_the_top_of_the_range_trains():
    data = json.loads(run_cli("train", "--backend", "numpy", "--seed", str(2**32 - 1), "--epochs", "2", "--json",
                              "--quiet", check=0).stdout)
    assert data["epochs"] == 2


@pytest.mark.parametrize("width, words", [("1000000000000000000", "would need about"),
                                          ("1e18", "whole numbers"),
                                          ("100000000000", "would need about")])
def test_widths_whose_weights_cannot_fit_are_refused_before_allocating(width, words):
    proc = run_cli("train", "--backend", "numpy", "--hidden", width, "--epochs", "1", timeout=60)
    assert_one_error_line(proc, words)


@pytest.mark.parametrize("args", [["train", "--backend", "numpy", "--epochs", "5", "--json"],
                                  ["tutorial", "list"]])
def test_stdout_on_a_full_device_is_one_line(args):
    with open("/dev/full", "w") as full:
        proc = run_cli(*args, "--quiet" if args[0] == "train" else "--json", stdout=full)
    assert_one_error_line(proc, "cannot write the results to stdout", "No space left on device")


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback():
    setup = "import xpnet.cli.train as t\ndef boom(args):\n    raise RuntimeError('boom')\nt.cmd_train = boom"
    proc = run_patched(setup, "train")
    line = assert_one_error_line(proc, "unexpected RuntimeError: boom", "--debug")
    assert proc.stderr == line + "\n"
    proc = run_patched(setup, "train", "--debug")
    assert proc.returncode == 2 and "Traceback (most recent call last)" in proc.stderr
    assert "\nRuntimeError: boom\n" in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("xpnet: error: unexpected RuntimeError: boom")


def test_threads_reach_torch():
    pytest.importorskip("torch")
    setup = ("import sys, torch, xpnet.cli.progress as t\ncall = t.Progress.__call__\n"
             "def record(self, event):\n    print('torch threads', torch.get_num_threads(), file=sys.stderr)\n"
             "    return call(self, event)\nt.Progress.__call__ = record")
    proc = run_patched(setup, "train", "--backend", "torch", "--threads", "1", "--epochs", "3", "--log-every", "1",
                       "--quiet")
    assert proc.returncode == 0, proc.stderr
    counts = {line.split()[-1] for line in proc.stderr.splitlines() if line.startswith("torch threads")}
    assert counts == {"1"}


def train_and_save(tmp_path, *extra, epochs=20):
    path = tmp_path / "run.npz"
    run_cli("train", "--backend", "numpy", "--n-samples", "100", "--epochs", str(epochs), "--quiet", "--save", path,
            *extra, check=0)
    return path


def test_resume_refuses_an_explicit_flag_equal_to_the_default(tmp_path):
    path = train_and_save(tmp_path, "--learning-rate", "0.1")
    # 0.5 is the default learning rate: given explicitly, it still contradicts the saved 0.1
    proc = run_cli("train", "--resume", path, "--learning-rate", "0.5", "--epochs", "40")
    assert_one_error_line(proc, "--learning-rate 0.5 differs from the 0.1")
    config = tmp_path / "c.toml"
    config.write_text("learning-rate = 0.5\n")
    assert_one_error_line(run_cli("train", "--resume", path, "--config", config, "--epochs", "40"), "--learning-rate")
    # the same value, or no flag at all, continues the run
    run_cli("train", "--resume", path, "--learning-rate", "0.1", "--epochs", "30", "--quiet", "--save",
            tmp_path / "other.npz", check=0)


def test_resume_without_save_saves_back_to_the_resumed_file(tmp_path):
    from xpnet.io import checkpoint

    path = train_and_save(tmp_path)
    proc = run_cli("train", "--resume", path, "--epochs", "40", "--json", check=0)
    assert f"saved back to {path} (atomically)" in proc.stderr
    assert json.loads(proc.stdout)["saved"] == str(path)
    ckpt = checkpoint.load(path, backend="numpy")
    assert ckpt.epochs_done == 40 and ckpt.history["epochs"][-1] == 40


def test_save_every_writes_checkpoints_at_its_epochs(tmp_path):
    setup = ("import sys, xpnet.checkpoint as c\nsave = c.save\n"
             "def record(path, model, **kw):\n    print('saved', kw['epochs_done'], file=sys.stderr)\n"
             "    return save(path, model, **kw)\nc.save = record")
    path = tmp_path / "run.npz"
    proc = run_patched(setup, "train", "--backend", "numpy", "--n-samples", "100", "--epochs", "100",
                       "--save-every", "30", "--log-every", "25", "--save", path)
    assert proc.returncode == 0, proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("saved")] == \
        ["saved 30", "saved 60", "saved 90", "saved 100"]
    shown = [line.split("/")[0].split()[-1] for line in proc.stderr.splitlines() if line.startswith("epoch")]
    assert shown == ["0", "25", "50", "75", "100"]  # progress lines keep their own rhythm
    assert_one_error_line(run_cli("train", "--save-every", "10"), "--save-every needs --save")


def test_save_every_survives_a_kill_and_resumes(tmp_path):
    from xpnet.io import checkpoint

    path = tmp_path / "run.npz"
    with subprocess.Popen([sys.executable, "-m", "xpnet", "train", "--backend", "numpy", "--n-samples", "100",
                           "--epochs", "100000000", "--log-every", "20", "--save-every", "20", "--save", str(path)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        for line in proc.stderr:
            if line.startswith("epoch") and int(line.split("/")[0].split()[-1]) >= 60:
                break
        proc.kill()
        proc.communicate(timeout=60)
    ckpt = checkpoint.load(path, backend="numpy")
    assert ckpt.epochs_done >= 40 and ckpt.epochs_done % 20 == 0
    run_cli("train", "--resume", path, "--epochs", str(ckpt.epochs_done + 10), "--quiet", check=0)
    assert checkpoint.load(path, backend="numpy").epochs_done == ckpt.epochs_done + 10


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("args, words", [
    (["train", "--save", "{tmp}/missing/run.npz"], "does not exist"),
    (["train", "--save", "/dev/null"], "not a regular file"),
    (["train", "--save", "{fifo}"], "not a regular file"),
    (["train", "--save", "{tmp}"], "is a directory"),
    (["train", "--plot", "{tmp}/missing/p.png"], "does not exist"),
    (["train", "--resume", "{tmp}/missing.npz"], "missing.npz"),
])
def test_output_destinations_are_checked_before_training(tmp_path, fifo, args, words):
    pytest.importorskip("matplotlib")
    args = [a.format(tmp=tmp_path, fifo=fifo) for a in args]
    proc = run_cli(*args, "--backend", "numpy", "--epochs", "5")
    assert_one_error_line(proc, words)
    assert "epoch" not in proc.stderr.replace("epochs", "")  # no training happened


def test_predict_refuses_a_device_as_output_and_leaves_it_alone(tmp_path):
    import stat

    model = train_and_save(tmp_path)
    data = tmp_path / "x.npy"
    np.save(data, np.zeros((3, 2)))
    proc = run_cli("predict", "--model", model, "--data", data, "--output", "/dev/full")
    assert_one_error_line(proc, "--output", "not a regular file")
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_a_failed_final_save_is_reported_and_exits_1(tmp_path):
    setup = ("import errno, xpnet.checkpoint as c\ndef full(path, model, **kw):\n"
             "    raise OSError(errno.ENOSPC, 'No space left on device')\nc.save = full")
    proc = run_patched(setup, "train", "--backend", "numpy", "--n-samples", "100", "--epochs", "20", "--json",
                       "--quiet", "--save", tmp_path / "run.npz")
    assert_one_error_line(proc, "could not save the checkpoint to", "No space left on device", code=1)
    data = json.loads(proc.stdout)  # the results are still reported
    assert "saved" not in data and data["epochs"] == 20


def test_a_final_save_that_fails_names_the_rescue_file_and_exits_1(tmp_path):
    from xpnet.io import checkpoint

    out, work = tmp_path / "out", tmp_path / "work"
    out.mkdir()
    work.mkdir()
    # the destination's directory disappears during training (checked, and fine, before it)
    setup = (f"import shutil, xpnet.cli.progress as t\ncall = t.Progress.__call__\n"
             f"def remove(self, event):\n    shutil.rmtree({str(out)!r}, ignore_errors=True)\n"
             f"    return call(self, event)\nt.Progress.__call__ = remove")
    proc = run_patched(setup, "train", "--backend", "numpy", "--n-samples", "100", "--epochs", "20", "--quiet",
                       "--save", out / "run.npz", cwd=work)
    line = assert_one_error_line(proc, "could not save the checkpoint", "saved to", code=1)
    rescued = list(work.glob("xpnet-rescue-*run.npz"))
    assert len(rescued) == 1 and str(rescued[0]) in line
    assert checkpoint.load(rescued[0], backend="numpy").epochs_done == 20  # the trained weights are kept
    assert "saved     " not in proc.stdout and "accuracy" in proc.stdout


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_stop_signal_finishes_the_epoch_saves_reports_and_exits_128_plus_its_number(tmp_path, signum):
    from xpnet.io import checkpoint

    path = tmp_path / "run.npz"
    with subprocess.Popen([sys.executable, "-m", "xpnet", "train", "--backend", "numpy", "--n-samples", "100",
                           "--epochs", "100000000", "--log-every", "50", "--save", str(path), "--json"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        for line in proc.stderr:
            if line.startswith("epoch"):  # training is under way
                break
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err
    summary = json.loads(out)
    done = summary["epochs"]
    assert summary["interrupted"] and summary["saved"] == str(path) and 0 < done < 100000000
    by = "" if signum == signal.SIGINT else f" by {signum.name}"
    assert f"xpnet: interrupted{by} after epoch {done}; saved epoch {done} to {path}" in err
    assert checkpoint.load(path, backend="numpy").epochs_done == done


def test_a_periodic_checkpoint_resumes_exactly_with_momentum(tmp_path):
    # the checkpoint written at epoch 30 holds that epoch's momentum velocity (TrainEvent.state)
    setup = ("import shutil, xpnet.checkpoint as c\nsave = c.save\n"
             "def keep(path, model, **kw):\n    save(path, model, **kw)\n"
             f"    if kw['epochs_done'] == 30:\n        shutil.copy(path, {str(tmp_path / 'at30.npz')!r})\n"
             "c.save = keep")
    common = ["--backend", "numpy", "--dtype", "float64", "--n-samples", "100", "--momentum", "0.9",
              "--batch-size", "32", "--quiet", "--json"]
    proc = run_patched(setup, "train", *common, "--epochs", "60", "--save-every", "30", "--save", tmp_path / "a.npz")
    assert proc.returncode == 0, proc.stderr
    straight = json.loads(proc.stdout)
    resumed = json.loads(run_cli("train", "--resume", tmp_path / "at30.npz", "--epochs", "60", "--quiet", "--json",
                                 "--save", tmp_path / "b.npz", check=0).stdout)
    assert resumed["final_loss"] == straight["final_loss"]
    whole, again = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    for name in ("W0", "W1", "b0", "b1"):
        np.testing.assert_array_equal(whole[name], again[name])


def test_early_stopping_resumes_bit_for_bit(tmp_path):
    """Issue 15: the early-stopping state (the best loss, its epoch and weights, and the last
    epoch's weights) travels in the checkpoint, so a resumed run ends where one run ends."""
    import numpy as np

    flags = ["train", "--backend", "numpy", "--dtype", "float64", "--n-samples", "300", "--hidden", "8",
             "--early-stopping", "--patience", "200", "--batch-size", "60", "--momentum", "0.5", "--quiet"]
    run_cli(*flags, "--epochs", "40", "--save", tmp_path / "whole.npz", check=0)
    run_cli(*flags, "--epochs", "15", "--save", tmp_path / "part.npz", check=0)
    run_cli("train", "--resume", tmp_path / "part.npz", "--epochs", "40", "--quiet", check=0)
    whole, part = np.load(tmp_path / "whole.npz"), np.load(tmp_path / "part.npz")
    weights = [name for name in whole.files if name != "meta"]
    assert "W0" in weights and any(name.startswith("optimizer/early_stopping_best_") for name in weights)
    for name in weights:
        np.testing.assert_array_equal(part[name], whole[name], err_msg=name)


def test_adam_from_the_command_line_resumes_bit_for_bit(tmp_path):
    """Issue 16: --optimizer adam; its state (m, v, t) travels in the checkpoint."""
    import numpy as np

    flags = ["train", "--backend", "numpy", "--dtype", "float64", "--n-samples", "300", "--hidden", "8",
             "--optimizer", "adam", "--learning-rate", "0.01", "--batch-size", "100", "--quiet"]
    whole = json.loads(run_cli(*flags, "--epochs", "30", "--save", tmp_path / "whole.npz", "--json", check=0).stdout)
    run_cli(*flags, "--epochs", "12", "--save", tmp_path / "part.npz", check=0)
    run_cli("train", "--resume", tmp_path / "part.npz", "--epochs", "30", "--quiet", check=0)
    assert whole["history"][-1] < whole["history"][0]
    a, b = np.load(tmp_path / "whole.npz"), np.load(tmp_path / "part.npz")
    assert "optimizer/m_0" in a.files and "optimizer/t" in a.files
    for name in a.files:
        if name != "meta":
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
