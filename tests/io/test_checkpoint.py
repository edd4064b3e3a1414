"""Checkpoints: round trips on every backend, across backends, resume == uninterrupted, atomic writes."""

import dataclasses
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
from conftest import available_backend, rtol_for, run_cli

import xpnet
from xpnet.core.activations import Activation
from xpnet.errors import XpnetValueError
from xpnet.io import checkpoint

X, Y = xpnet.datasets.load("moons", n_samples=64, noise=0.2, seed=0)


def trained(backend, dtype, epochs=30, seed=0):
    model = xpnet.MLP([2, 6, 2], activation="tanh", dtype=dtype, backend=backend, seed=seed)
    model.fit(X, Y, epochs=epochs, learning_rate=0.5)
    return model


def host(model):
    return [xpnet.to_numpy(a) for a in model.parameters()]


def test_round_trip_on_every_backend(backend, dtype, tmp_path):
    model = trained(backend, dtype)
    path = tmp_path / "m.npz"
    state = {"velocity/W0": backend.asarray(np.full((2, 6), 0.25), dtype)}
    checkpoint.save(path, model, config={"learning_rate": 0.5}, history={"epochs": [0, 30], "losses": [0.7, 0.3]},
                    epochs_done=30, optimizer_state=state)
    ckpt = checkpoint.load(path, backend=backend)
    assert ckpt.model.dtype_name == dtype and ckpt.model.layer_sizes == (2, 6, 2)
    for saved, loaded in zip(host(model), host(ckpt.model)):
        np.testing.assert_array_equal(saved, loaded)  # bit-exact: the .npz keeps the dtype
    assert ckpt.epochs_done == 30 and ckpt.config == {"learning_rate": 0.5}
    assert ckpt.history == {"epochs": [0, 30], "losses": [0.7, 0.3]}
    np.testing.assert_array_equal(ckpt.optimizer_state["velocity/W0"], np.full((2, 6), 0.25, dtype=dtype))
    meta = ckpt.meta
    assert meta["format"] == "xpnet-checkpoint" and meta["format_version"] == checkpoint.FORMAT_VERSION
    assert meta["xpnet_version"] == xpnet.__version__ and meta["architecture"]["activation"] == ["tanh"]
    np.testing.assert_array_equal(xpnet.to_numpy(ckpt.model.predict(X)), xpnet.to_numpy(model.predict(X)))


@pytest.mark.parametrize("other", ["numpy", "array_api_strict:no_float64", "torch"])
def test_saved_on_one_backend_loads_on_another(backend, dtype, other, tmp_path):
    target = available_backend(other)
    model = trained(backend, dtype)
    checkpoint.save(tmp_path / "m.npz", model)
    ckpt = checkpoint.load(tmp_path / "m.npz", backend=target)
    assert ckpt.model.backend.name == target.name
    expected = "float64" if dtype == "float64" and "float64" in target.dtype_names() else "float32"
    assert ckpt.model.dtype_name == expected  # float64 falls back to float32 only where the device lacks it
    got = xpnet.to_numpy(ckpt.model.predict_proba(X))
    np.testing.assert_allclose(got, xpnet.to_numpy(model.predict_proba(X)), rtol=rtol_for(expected), atol=1e-6)


def test_resume_gives_the_uninterrupted_weights(backend, dtype, tmp_path):
    straight = trained(backend, dtype, epochs=40)
    first = trained(backend, dtype, epochs=15)
    checkpoint.save(tmp_path / "m.npz", first, epochs_done=15)
    resumed = checkpoint.load(tmp_path / "m.npz", backend=backend).model
    resumed.fit(X, Y, epochs=25, learning_rate=0.5)
    for a, b in zip(host(straight), host(resumed)):
        np.testing.assert_array_equal(a, b)


def test_cli_resume_equals_uninterrupted_run(tmp_path):
    common = ["train", "--backend", "numpy", "--n-samples", "200", "--hidden", "8", "--quiet"]
    run_cli(*common, "--epochs", "60", "--save", tmp_path / "full.npz", check=0)
    run_cli(*common, "--epochs", "25", "--save", tmp_path / "part.npz", check=0)
    out = run_cli("train", "--backend", "numpy", "--resume", tmp_path / "part.npz", "--epochs", "60", "--quiet",
                  "--save", tmp_path / "resumed.npz", "--json", check=0)
    assert json.loads(out.stdout)["epochs_total"] == 60
    full, resumed = np.load(tmp_path / "full.npz"), np.load(tmp_path / "resumed.npz")
    for name in ("W0", "W1", "b0", "b1"):
        np.testing.assert_array_equal(full[name], resumed[name])
    history = json.loads(resumed["meta"].tobytes())["history"]
    assert history["epochs"] == sorted(set(history["epochs"])) and history["epochs"][-1] == 60
    # the data and settings come from the checkpoint; contradicting them is an error
    proc = run_cli("train", "--resume", tmp_path / "part.npz", "--hidden", "16", check=2)
    assert "--hidden [16] differs from the [8]" in proc.stderr
    proc = run_cli("train", "--resume", tmp_path / "full.npz", "--epochs", "60", check=2)
    assert "already ran" in proc.stderr


def test_ctrl_c_saves_a_resumable_checkpoint(tmp_path):
    path = tmp_path / "m.npz"
    with subprocess.Popen([sys.executable, "-m", "xpnet", "train", "--backend", "numpy", "--epochs", "10000000",
                           "--log-every", "50", "--n-samples", "100", "--save", str(path)],
                          stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as proc:
        for _ in range(3):  # wait until training is under way
            proc.stderr.readline()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "saved epoch" in err and "--resume" in err
    assert "accuracy" in out  # the summary so far
    ckpt = checkpoint.load(path, backend="numpy")
    assert ckpt.epochs_done > 0  # the last complete epoch, logged when training stopped
    assert ckpt.history["epochs"][-1] == ckpt.epochs_done
    resumed = subprocess.run([sys.executable, "-m", "xpnet", "train", "--resume", str(path), "--epochs",
                              str(ckpt.epochs_done + 5), "--json"], capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr


class Crash(Exception):
    pass


def test_failed_write_leaves_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    checkpoint.save(path, trained("numpy", "float64", epochs=5), epochs_done=5)
    before = path.read_bytes()

    def half_then_crash(handle, **arrays):
        handle.write(b"PK\x03\x04 half an archive")
        raise Crash

    monkeypatch.setattr(np, "savez", half_then_crash)
    with pytest.raises(Crash):
        checkpoint.save(path, trained("numpy", "float64", epochs=10), epochs_done=10)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]  # the temporary file is gone too


KILLER = """
import sys, numpy as np, xpnet
from xpnet import checkpoint
from xpnet.activations import Activation
model = xpnet.MLP([2, 400, 400, 2], backend="numpy", dtype="float64")
print("ready", flush=True)
for i in range(1000000):
    checkpoint.save(sys.argv[1], model, epochs_done=i)
"""


def test_kill_during_writes_leaves_a_loadable_file(tmp_path):
    path = tmp_path / "m.npz"
    checkpoint.save(path, xpnet.MLP([2, 400, 400, 2], backend="numpy", dtype="float64"), epochs_done=0)
    torn = 0
    for attempt in range(8):  # until a kill has landed mid-write (a temporary file is left behind)
        with subprocess.Popen([sys.executable, "-c", KILLER, str(path)], stdout=subprocess.PIPE, text=True) as proc:
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(0.2 + 0.05 * attempt)  # ~1.3 MB writes back to back
            proc.kill()
        ckpt = checkpoint.load(path, backend="numpy")  # the destination is always a whole checkpoint
        assert ckpt.model.layer_sizes == (2, 400, 400, 2) and ckpt.epochs_done >= 0
        torn = len([name for name in os.listdir(tmp_path) if name.endswith(".tmp")])
        if torn:
            break
    assert torn, "no kill landed during a write; the test proved nothing"


def test_refuses_bad_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where the failed save at the end puts its rescue file
    np.savez(tmp_path / "plain.npz", W0=np.zeros(2))
    with pytest.raises(XpnetValueError, match="not an xpnet checkpoint"):
        checkpoint.load(tmp_path / "plain.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(XpnetValueError, match="not an xpnet checkpoint"):
        checkpoint.load(tmp_path / "text.npz")
    path = tmp_path / "m.npz"
    checkpoint.save(path, trained("numpy", "float64", epochs=1))
    arrays = dict(np.load(path))
    meta = json.loads(arrays["meta"].tobytes())
    newer = dict(meta, format_version=checkpoint.FORMAT_VERSION + 1)
    np.savez(tmp_path / "newer.npz", **dict(arrays, meta=np.frombuffer(json.dumps(newer).encode(), np.uint8)))
    with pytest.raises(XpnetValueError, match="newer than this xpnet.*upgrade"):
        checkpoint.load(tmp_path / "newer.npz")
    np.savez(tmp_path / "pickled.npz", **dict(arrays, W0=np.array([{"evil": 1}], dtype=object)))
    with pytest.raises(XpnetValueError, match="not a valid xpnet checkpoint"):
        checkpoint.load(tmp_path / "pickled.npz")  # allow_pickle=False: object arrays are refused
    with pytest.raises(checkpoint.SaveError, match="does not exist"):  # the weights are rescued elsewhere
        checkpoint.save(tmp_path / "no" / "dir.npz", trained("numpy", "float64", epochs=1))


@pytest.mark.parametrize("flags", [["--batch-size", "100", "--momentum", "0.9"],
                                   ["--dropout", "0.2", "--schedule", "annealing"],
                                   ["--batch-norm", "--batch-size", "64", "--nesterov", "--momentum", "0.5"]])
def test_resume_equals_an_uninterrupted_run_with_training_options(tmp_path, flags):
    """Momentum velocity, batch-norm statistics, the shuffle and dropout streams and the
    schedule all continue where the saved run stopped."""
    path = tmp_path / "r.npz"
    def xpnet_json(*args):
        proc = subprocess.run([sys.executable, "-m", "xpnet", *map(str, args)], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    common = ["train", "--backend", "numpy", "--n-samples", "300", "--quiet", "--json", *flags]
    whole = xpnet_json(*common, "--epochs", "6")
    xpnet_json(*common, "--epochs", "3", "--save", path)
    resumed = xpnet_json("train", "--resume", path, "--epochs", "6", "--json", "--quiet")
    assert resumed["final_loss"] == whole["final_loss"]


# -- user-defined activations (issue 13) ------------------------------------------------------

def softsign_forward(xp, Z):
    return Z / (1 + xp.abs(Z))


def softsign_backward(xp, dY, Y):
    return dY * (1 - xp.abs(Y)) ** 2


softsign = Activation("softsign", softsign_forward, softsign_backward)


def test_user_defined_activation_is_recorded_and_must_be_passed_again(tmp_path):
    model = xpnet.MLP([2, 6, 5, 2], activation=[softsign, "tanh"], backend="numpy", dtype="float64")
    model.fit(X, Y, epochs=20, learning_rate=0.5)
    path = tmp_path / "x.npz"
    checkpoint.save(path, model)
    meta = json.loads(np.load(path)["meta"].tobytes())
    assert meta["architecture"]["activation"] == ["softsign", "tanh"]
    assert meta["architecture"]["user_activations"] == ["softsign"]
    with pytest.raises(XpnetValueError) as info:
        checkpoint.load(path)
    assert str(info.value) == (f"the model in {str(path)!r} uses the activation 'softsign' defined in your code; "
                               f"pass it again: checkpoint.load({str(path)!r}, activations=[softsign])")
    expected = xpnet.to_numpy(model.predict_proba(X))
    for given in ([softsign], {"softsign": softsign}, (softsign, xpnet.activations.HIDDEN["relu"])):
        loaded = checkpoint.load(path, backend="numpy", activations=given).model
        assert loaded.spec.hidden[0] is softsign and loaded.spec.hidden[1] is xpnet.activations.HIDDEN["tanh"]
        np.testing.assert_array_equal(xpnet.to_numpy(loaded.predict_proba(X)), expected)


def test_a_user_activation_named_like_a_builtin_is_not_replaced_by_it(tmp_path):
    mine = Activation("tanh", softsign_forward, softsign_backward)
    checkpoint.save(tmp_path / "m.npz", xpnet.MLP([2, 4, 2], activation=mine, backend="numpy"))
    with pytest.raises(XpnetValueError, match="uses the activation 'tanh' defined in your code"):
        checkpoint.load(tmp_path / "m.npz")
    assert checkpoint.load(tmp_path / "m.npz", activations=[mine]).model.spec.hidden[0] is mine


def test_bad_activations_arguments(tmp_path):
    checkpoint.save(tmp_path / "m.npz", xpnet.MLP([2, 4, 2], activation=softsign, backend="numpy"))
    for bad in ("softsign", [softsign_forward], {"other": softsign}, [softsign, softsign._replace(forward=abs)]):
        with pytest.raises(xpnet.XpnetError, match="activations="):
            checkpoint.load(tmp_path / "m.npz", activations=bad)
    twins = xpnet.MLP([2, 4, 4, 2], activation=[softsign, softsign._replace(forward=softsign_backward)],
                      backend="numpy")
    with pytest.raises(XpnetValueError, match="two different activations are called 'softsign'"):
        checkpoint.save(tmp_path / "twins.npz", twins)


# -- the training configuration (issue 20) ----------------------------------------------------

def configs():
    """Two TrainConfigs that between them change every field from its default."""
    from xpnet.training.schedules import Schedule

    sgd = xpnet.TrainConfig(epochs=7, learning_rate=0.25, l2=0.01, reduction="sum", batch_size=16, shuffle=False,
                            momentum=0.5, nesterov=True, schedule=Schedule("adaptive"), clip_value=2.0,
                            clip_norm=3.0, early_stopping=True, validation_fraction=0.2, patience=4, tol=1e-3,
                            n_iter_no_change=float("inf"), l2_scaling="batch", seed=5, log_every=3, kernels="numpy",
                            divergence_factor=None)
    adam = xpnet.TrainConfig(optimizer="adam", beta1=0.8, beta2=0.99, epsilon=1e-6,
                             schedule=Schedule("step", decay=0.1, step=5, gamma=0.3, min_rate=0.01, power_t=0.25))
    return sgd, adam


def test_every_train_config_field_is_in_the_checkpoints_record(tmp_path):
    from xpnet.training.schedules import Schedule

    defaults = xpnet.TrainConfig()
    changed = {f.name for config in configs() for f in dataclasses.fields(config)
               if getattr(config, f.name) != getattr(defaults, f.name)}
    changed |= {f"schedule.{f.name}" for config in configs() for f in dataclasses.fields(Schedule)
                if getattr(config.schedule, f.name) != getattr(Schedule(), f.name)}
    for config in configs():
        path = tmp_path / "m.npz"
        checkpoint.save(path, trained("numpy", "float64", epochs=2), train_config=config)
        record = json.loads(np.load(path)["meta"].tobytes())["train_config"]
        for f in dataclasses.fields(xpnet.TrainConfig):  # every field, the ones added later too
            assert f.name in record, f.name
        assert sorted(record["schedule"]) == sorted(f.name for f in dataclasses.fields(Schedule))
        assert checkpoint.load(path).train_config == config
    assert {f.name for f in dataclasses.fields(xpnet.TrainConfig)} - {"schedule"} <= changed  # the walk saw a
    assert {f"schedule.{f.name}" for f in dataclasses.fields(Schedule)} <= changed  # change in every field


def test_a_checkpoint_without_train_config_loads_with_none(tmp_path):
    checkpoint.save(tmp_path / "m.npz", trained("numpy", "float64", epochs=2), config={"learning_rate": 0.5})
    ckpt = checkpoint.load(tmp_path / "m.npz")
    assert ckpt.train_config is None and ckpt.meta["train_config"] is None and ckpt.config == {"learning_rate": 0.5}
    with pytest.raises(xpnet.XpnetTypeError, match="train_config=.*must be an xpnet.TrainConfig"):
        checkpoint.save(tmp_path / "m.npz", trained("numpy", "float64", epochs=2), train_config={"epochs": 5})


def test_import_xpnet_reaches_the_checkpoint_module(tmp_path):
    """``import xpnet; xpnet.checkpoint.save(...)`` as the README writes it (a fresh interpreter)."""
    code = ("import sys, xpnet\nm = xpnet.MLP([2, 3, 2], backend='numpy')\n"
            "xpnet.checkpoint.save(sys.argv[1], m, train_config=xpnet.TrainConfig(epochs=3))\n"
            "c = xpnet.checkpoint.load(sys.argv[1])\nprint(c.train_config.epochs, type(c).__name__)\n"
            "from xpnet.checkpoint import SaveError, atomic_write, check_destination, Checkpoint, save, load\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.npz")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["3", "Checkpoint"]


# -- checkpoints written by the previous version (tests/io/fixtures/README.md) -----------------

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
OLD_RUNS = {  # fixture: the flags that wrote it (20 epochs) with xpnet at commit ac788c6
    "old-moons.npz": ["--dataset", "moons", "--n-samples", "60", "--hidden", "4", "--momentum", "0.9",
                      "--batch-size", "16", "--batch-norm", "--dropout", "0.1"],
    "old-csv-standardize.npz": ["--data", "{data}/old-classes.csv", "--standardize", "--validation-fraction", "0.2",
                                "--hidden", "5", "--dtype", "float64"],
    "old-adam-early-stopping.npz": ["--dataset", "moons", "--noise", "0.4", "--n-samples", "60", "--hidden", "4",
                                    "--optimizer", "adam", "--learning-rate", "0.05", "--early-stopping",
                                    "--validation-fraction", "0.3", "--patience", "8", "--batch-size", "20"],
    "old-regression.npz": ["--data", "{data}/old-regression.csv", "--hidden", "4", "--dtype", "float64",
                           "--schedule", "step", "--lr-step", "5"],
}
# What the old defaults of a data file were, said explicitly for today's command line (which
# standardizes a data file, holds 20% of it out and stops early by default)
OLD_DEFAULTS = {"old-csv-standardize.npz": ["--no-early-stopping"],
                "old-regression.npz": ["--no-standardize", "--validation-fraction", "0", "--no-early-stopping"]}


def old_checkpoint(name, directory):
    """A copy of fixture ``name`` in ``directory``, with the data files it was trained on copied
    there too and the absolute data path in its meta pointed at them; every other member is
    copied byte for byte."""
    for data in ("old-classes.csv", "old-regression.csv"):
        shutil.copy(os.path.join(FIXTURES, data), directory / data)
    target = directory / name
    with zipfile.ZipFile(os.path.join(FIXTURES, name)) as source, zipfile.ZipFile(target, "w") as copy:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "meta.npy":
                meta = json.loads(np.load(io.BytesIO(data)).tobytes())
                if meta["config"].get("data"):
                    meta["config"]["data"] = str(directory / os.path.basename(meta["config"]["data"]))
                buffer = io.BytesIO()
                np.save(buffer, np.frombuffer(json.dumps(meta).encode(), np.uint8))
                data = buffer.getvalue()
            copy.writestr(info, data)
    return target


@pytest.mark.parametrize("name", OLD_RUNS)
def test_checkpoints_of_the_previous_version_load(name):
    path = os.path.join(FIXTURES, name)
    ckpt = checkpoint.load(path, backend="numpy")
    with np.load(path) as archive:
        saved = dict(archive)
    meta = json.loads(saved["meta"].tobytes())
    assert "train_config" not in meta and ckpt.train_config is None  # the old format: no record of it
    assert ckpt.epochs_done == 20 and ckpt.config == meta["config"] and ckpt.history == meta["history"]
    for i, W in enumerate(ckpt.model.W):
        np.testing.assert_array_equal(xpnet.to_numpy(W), saved[f"W{i}"])
    for key, value in ckpt.optimizer_state.items():
        np.testing.assert_array_equal(value, saved[f"optimizer/{key}"])
    assert (ckpt.scaler is not None) == meta["standardize"] and ckpt.feature_names == meta["feature_names"]
    assert (ckpt.model.bn is not None) == meta["architecture"]["batch_norm"]
    assert ckpt.labels is None if meta["classes"] is None else list(ckpt.labels.classes) == meta["classes"]


@pytest.mark.parametrize("name", OLD_RUNS)
def test_checkpoints_of_the_previous_version_resume_like_an_uninterrupted_run(name, tmp_path):
    """20 epochs by the old xpnet, 20 more by this one, equal 40 by this one."""
    path = old_checkpoint(name, tmp_path)
    flags = [flag.replace("{data}", str(tmp_path)) for flag in OLD_RUNS[name]]
    common = ["--backend", "numpy", "--epochs", "40", "--quiet", "--json"]
    resumed = run_cli("train", "--resume", path, *common, "--save", tmp_path / "resumed.npz", check=0)
    whole = run_cli("train", *flags, *OLD_DEFAULTS.get(name, []), *common, "--save", tmp_path / "whole.npz", check=0)
    got, want = json.loads(resumed.stdout), json.loads(whole.stdout)
    assert got["epochs_total"] == want["epochs"] and got["dtype"] == want["dtype"]
    assert got["final_loss"] == pytest.approx(want["final_loss"], rel=rtol_for(want["dtype"]))
    with np.load(tmp_path / "resumed.npz") as a, np.load(tmp_path / "whole.npz") as b:
        for member in b.files:
            if member != "meta":
                np.testing.assert_allclose(a[member], b[member], rtol=rtol_for(want["dtype"]), atol=1e-7)
    assert checkpoint.load(tmp_path / "resumed.npz").epochs_done == want["epochs"]
