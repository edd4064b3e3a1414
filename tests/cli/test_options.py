"""Issue 20, the command line's side of "options declared once": every TrainConfig and Schedule
field has its generated flag, its --print-config key, its place in the checkpoint's record and,
where scikit-learn has it, the estimators' parameter; --resume reads the record back (and the
flags' dictionary of older checkpoints)."""

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import run_cli

from xpnet.cli import build_parser
from xpnet.cli.args import command_parser, long_options
from xpnet.cli.options import flag_values, train_config, training_options
from xpnet.training.config import TrainConfig
from xpnet.training.schedules import Schedule

FIELDS = [(owner.__name__, f.name, opt) for owner, f, opt in training_options()]
IDS = [f"{owner}.{name}" for owner, name, _ in FIELDS]


def train_parser():
    return command_parser(build_parser(), ["train"])


def test_every_option_is_walked():
    names = {(owner, name) for owner, name, _ in FIELDS}
    import dataclasses

    assert names == {("TrainConfig", f.name) for f in dataclasses.fields(TrainConfig) if f.name != "schedule"} | \
        {("Schedule", f.name) for f in dataclasses.fields(Schedule)}


@pytest.mark.parametrize("owner, name, opt", FIELDS, ids=IDS)
def test_every_option_has_its_flag_with_its_help(owner, name, opt):
    flags = long_options(train_parser())
    assert opt.flag in flags, opt.flag
    action = flags[opt.flag]
    assert action.dest == opt.public_name and "(default: " in action.help


@pytest.fixture(scope="module")
def printed():
    return run_cli("train", "--print-config", check=0).stdout


@pytest.mark.parametrize("owner, name, opt", FIELDS, ids=IDS)
def test_every_option_is_in_print_config(printed, owner, name, opt):
    key = opt.toml_key
    assert f"\n{key} = " in printed or f"\n# {key} is not set" in printed, key


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    path = tmp_path_factory.mktemp("record") / "run.npz"
    run_cli("train", "--backend", "numpy", "--n-samples", "60", "--epochs", "3", "--quiet", "--save", path,
            "--schedule", "cosine", "--min-rate", "0.01", "--l2-scaling", "batch", "--no-shuffle", "--batch-size", "20",
            check=0)
    return json.loads(bytes(np.load(path)["meta"]).decode())


@pytest.mark.parametrize("owner, name, opt", FIELDS, ids=IDS)
def test_every_option_is_in_the_checkpoints_record(record, owner, name, opt):
    saved = record["train_config"]
    assert name in (saved["schedule"] if owner == "Schedule" else saved)


def test_the_record_is_the_runs_config(record):
    config = TrainConfig.from_dict(record["train_config"])
    assert config.schedule == Schedule("cosine", min_rate=0.01) and config.l2_scaling == "batch"
    assert config.shuffle is False and config.batch_size == 20 and config.epochs == 3
    assert "learning_rate" not in record["config"] and "lr_decay" not in record["config"]  # no flag dictionary
    assert record["config"]["hidden"] == [32] and record["config"]["dataset"] == "moons"


@pytest.mark.parametrize("owner, name, opt", [f for f in FIELDS if f[2].sklearn], ids=[i for i, f in zip(IDS, FIELDS)
                                                                                     if f[2].sklearn])
def test_scikit_learn_names_are_the_estimators_parameters(owner, name, opt):
    pytest.importorskip("sklearn")
    import xpnet.sklearn

    assert opt.sklearn in xpnet.sklearn.MLPClassifier().get_params()
    assert opt.sklearn in xpnet.sklearn.MLPRegressor().get_params()


def argv_of(config: TrainConfig, parser) -> list:
    """The command-line flags that say ``config``."""
    by_dest = {action.dest: (flag, action) for flag, action in long_options(parser).items()
               if flag == action.option_strings[0]}
    argv = []
    for dest, value in flag_values(config).items():
        flag, action = by_dest[dest]
        if isinstance(action, argparse.BooleanOptionalAction):
            argv.append(flag if value else "--no-" + flag[2:])
        elif action.nargs == 0:
            argv += [flag] if value else []
        elif value is None:
            argv += [] if action.default is None else [flag, "none"]
        else:
            argv += [flag, str(value)]
    return argv


CONFIGS = [
    TrainConfig(seed=0),
    TrainConfig(epochs=7, learning_rate=0.03, l2=1e-4, reduction="sum", batch_size=16, shuffle=False, momentum=0.9,
                nesterov=True, schedule=Schedule("step", step=5, gamma=0.25), clip_value=2.0, clip_norm=1.5,
                early_stopping=True, validation_fraction=0.3, patience=4, tol=1e-3, n_iter_no_change=3,
                l2_scaling="batch", seed=12, log_every=2, kernels="numpy", divergence_factor=None),
    TrainConfig(seed=3, optimizer="adam", beta1=0.8, beta2=0.99, epsilon=1e-6,
                schedule=Schedule("invscaling", power_t=0.25), n_iter_no_change=float("inf"), tol=0.0),
    TrainConfig(seed=4, schedule=Schedule("cosine", min_rate=0.001), kernels="jit", divergence_factor=10.0),
    TrainConfig(seed=2**32 - 1, schedule=Schedule("annealing", decay=0.5)),
]


@pytest.mark.parametrize("config", CONFIGS)
def test_flags_say_any_config_and_give_it_back(config):
    """The generated flags and TrainConfig agree both ways (the command line's --seed is a
    number: it seeds the data too, so a config it says has one)."""
    parser = train_parser()
    args = parser.parse_args(argv_of(config, parser))
    assert train_config(args) == config


@pytest.mark.parametrize("flags, words", [
    (["--momentum", "1"], ["--momentum", ">= 0 and < 1", "e.g. 0.9"]),
    (["--lr-gamma", "0"], ["--lr-gamma", "> 0"]),
    (["--lr-step", "2.5"], ["--lr-step", "whole number"]),
    (["--divergence-factor", "1"], ["--divergence-factor", "> 1"]),
    (["--l2-scaling", "epoch"], ["--l2-scaling", "'epoch'"]),
    (["--min-rate", "-1"], ["--min-rate", ">= 0"]),
    (["--clip-norm", "0"], ["--clip-norm", "> 0"]),
    (["--n-iter-no-change", "many"], ["--n-iter-no-change", "'many'"]),
])
def test_checks_come_from_the_declarations(flags, words):
    proc = run_cli("train", *flags, check=2)
    assert proc.stderr.startswith("xpnet: error:") and proc.stderr.count("\n") == 1
    for word in words:
        assert word in proc.stderr, (word, proc.stderr)


def test_lr_is_the_learning_rate():
    args = train_parser().parse_args(["--lr", "0.02", "--epochs", "9", "--validation-fraction", "0.2",
                                      "--no-early-stopping"])
    assert args.learning_rate == 0.02 and train_config(args).learning_rate == 0.02
    text = run_cli("train", "--lr", "0.02", "--print-config", check=0).stdout
    assert "learning-rate = 0.02" in text and "\nlr " not in text


# -- --resume reads the record, and older checkpoints' flag dictionaries -----------------------

def as_older_checkpoint(path, **config_changes):
    """Rewrite the checkpoint at ``path`` as xpnet wrote it before the training options had their own
    record: every flag's value in ``config`` (the parsed flags' dictionary), no ``train_config``."""
    arrays = dict(np.load(path))
    meta = json.loads(bytes(arrays["meta"]).decode())
    config = TrainConfig.from_dict(meta.pop("train_config"))
    old = {**flag_values(config), **meta["config"], **config_changes}
    for key in ("shuffle", "l2_scaling", "divergence_factor", "min_rate", "epochs", "log_every"):
        old.pop(key)  # flags the command line did not have then
    meta["config"] = old
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


FLAGS = ["--backend", "numpy", "--dtype", "float64", "--n-samples", "120", "--hidden", "8", "--quiet"]


def test_resume_rebuilds_the_config_from_the_record(tmp_path):
    # the --save-every checkpoint of epoch 12 of a 30-epoch run (the cosine schedule spans the 30)
    keep = ("import shutil, sys, xpnet.checkpoint as c\nsave = c.save\n"
            "def keep(path, model, **kw):\n    save(path, model, **kw)\n"
            f"    if kw['epochs_done'] == 12:\n        shutil.copy(path, {str(tmp_path / 'at12.npz')!r})\n"
            "c.save = keep\nfrom xpnet.cli import main\nsys.exit(main(sys.argv[1:]))")
    flags = FLAGS + ["--optimizer", "adam", "--lr", "0.01", "--batch-size", "40", "--schedule", "cosine",
                     "--min-rate", "0.001", "--l2-scaling", "batch", "--l2", "0.01", "--epochs", "30"]
    proc = subprocess.run([sys.executable, "-c", keep, "train", *map(str, flags), "--save-every", "12", "--save",
                           str(tmp_path / "whole.npz")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    run_cli("train", "--resume", tmp_path / "at12.npz", "--quiet", check=0)  # --epochs: the saved run's 30
    whole, part = np.load(tmp_path / "whole.npz"), np.load(tmp_path / "at12.npz")
    for name in whole.files:
        if name != "meta":
            np.testing.assert_array_equal(whole[name], part[name], err_msg=name)
    proc = run_cli("train", "--resume", tmp_path / "at12.npz", "--epochs", "40", "--min-rate", "0.002", check=2)
    assert "--min-rate 0.002 differs from the 0.001 saved" in proc.stderr


def test_an_older_checkpoint_resumes_exactly(tmp_path):
    # an older data-file run: no validation rows and raw features were the defaults then (None, False)
    data = tmp_path / "data.csv"
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 3))
    data.write_text("a,b,c,label\n" + "".join(f"{a},{b},{c},{'yes' if a + b > 0 else 'no'}\n" for a, b, c in X))
    flags = FLAGS + ["--data", data, "--momentum", "0.5", "--batch-size", "20", "--validation-fraction", "0",
                     "--no-standardize", "--no-early-stopping"]
    run_cli("train", *flags, "--epochs", "30", "--save", tmp_path / "whole.npz", check=0)
    run_cli("train", *flags, "--epochs", "10", "--save", tmp_path / "part.npz", check=0)
    as_older_checkpoint(tmp_path / "part.npz", validation_fraction=None, standardize=False)
    meta = json.loads(bytes(np.load(tmp_path / "part.npz")["meta"]).decode())
    assert "train_config" not in meta and meta["config"]["momentum"] == 0.5
    run_cli("train", "--resume", tmp_path / "part.npz", "--epochs", "30", "--quiet", check=0)
    whole, part = np.load(tmp_path / "whole.npz"), np.load(tmp_path / "part.npz")
    for name in ("W0", "W1", "b0", "b1", "optimizer/velocity_0"):
        if name in whole.files:
            np.testing.assert_array_equal(whole[name], part[name], err_msg=name)
    assert "train_config" in json.loads(bytes(part["meta"]).decode())  # saved back with its record now


def test_an_older_checkpoint_refuses_a_flag_against_the_default_it_ran_with(tmp_path):
    run_cli("train", *FLAGS, "--epochs", "5", "--save", tmp_path / "old.npz", check=0)
    as_older_checkpoint(tmp_path / "old.npz")
    proc = run_cli("train", "--resume", tmp_path / "old.npz", "--epochs", "9", "--no-shuffle", check=2)
    assert "--shuffle False differs from the True saved" in proc.stderr
    evaluated = json.loads(run_cli("evaluate", "--model", tmp_path / "old.npz", "--json", check=0).stdout)
    assert evaluated["split"] == "training" and evaluated["n_samples"] == 120
