"""`xpnet` through a subprocess, as a user runs it."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

import xpnet

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "docs")
FLOWERS, NEW_FLOWERS = os.path.join(DOCS, "flowers.csv"), os.path.join(DOCS, "new-flowers.csv")
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


def test_held_out_rows_report_loss_beside_accuracy():
    proc = run_cli("train", "--backend", "numpy", "--epochs", "100", "--n-samples", "200", "--validation-fraction",
                   "0.25", "--json", check=0)
    data = json.loads(proc.stdout)
    assert data["task"] == "classification" and data["validation_samples"] == 50
    assert 0 <= data["validation_accuracy"] <= 1 and 0 < data["validation_loss"] < 1
    text = run_cli("train", "--backend", "numpy", "--epochs", "100", "--n-samples", "200", "--validation-fraction",
                   "0.25", "--quiet", check=0).stdout
    assert f"loss      {data['validation_loss']:.6f} (validation, mean data loss)" in text
    assert f"accuracy  {data['validation_accuracy']:.4f} (validation, 50 samples)" in text


def test_digits_report_their_test_split():
    pytest.importorskip("sklearn")
    data = json.loads(run_cli("train", "--backend", "numpy", "--dataset", "digits", "--epochs", "50", "--json",
                              "--quiet", check=0).stdout)
    assert data["test_samples"] == 449 and 0 < data["test_accuracy"] <= 1 and data["test_loss"] > 0
    assert "validation_samples" not in data
    # early stopping watches validation rows from the training part; the test rows are only reported
    data = json.loads(run_cli("train", "--backend", "numpy", "--dataset", "digits", "--epochs", "50",
                              "--early-stopping", "--json", "--quiet", check=0).stdout)
    assert data["test_samples"] == 449 and data["validation_samples"] == 135 and data["n_samples"] == 1213
    assert data["validation_loss"] > 0 and data["test_loss"] > 0


def flowers_model(tmp_path):
    path = tmp_path / "flowers.npz"
    run_cli("train", "--backend", "numpy", "--data", FLOWERS, "--target", "species", "--standardize",
            "--validation-fraction", "0.2", "--epochs", "300", "--quiet", "--save", path, check=0)
    return path


def test_evaluate_reports_per_class_scores_and_the_confusion_matrix(tmp_path):
    model = flowers_model(tmp_path)
    data = json.loads(run_cli("evaluate", "--model", model, "--data", FLOWERS, "--json", check=0).stdout)
    assert data["classes"] == ["setosa", "versicolor", "virginica"] and data["n_samples"] == 90
    matrix = np.array(data["confusion_matrix"])
    assert matrix.shape == (3, 3) and matrix.sum() == 90 and list(matrix.sum(axis=1)) == [30, 30, 30]
    assert data["accuracy"] == np.trace(matrix) / 90
    for k, name in enumerate(data["classes"]):
        scores = data["per_class"][name]
        assert scores["support"] == 30
        assert scores["precision"] == pytest.approx(matrix[k, k] / matrix[:, k].sum())
        assert scores["recall"] == pytest.approx(matrix[k, k] / 30)
    text = run_cli("evaluate", "--model", model, "--data", FLOWERS, check=0).stdout
    assert "precision  recall  f1      support" in text and "confusion matrix (rows: true class" in text
    assert any(line.startswith("versicolor") and line.rstrip().endswith("30") for line in text.splitlines())


@pytest.mark.parametrize("args, hint", [
    (["train", "--learning_rate", "0.5"], "did you mean --learning-rate?"),
    (["train", "--hiden", "8"], "did you mean --hidden?"),
    (["trian"], "did you mean 'train'?"),
    (["train", "--dataset", "moon"], "did you mean 'moons'?"),
])
def test_mistyped_flags_get_a_suggestion(args, hint):
    proc = run_cli(*args, check=2)
    assert proc.stderr.count("\n") == 1 and hint in proc.stderr


def test_config_file_sets_flags_and_the_command_line_wins(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('learning_rate = 0.2\nhidden = [8, 4]\nepochs = 30\nbackend = "numpy"\njson = true\n'
                      'n-samples = 100\nvalidation-fraction = 0.2\n')
    data = json.loads(run_cli("train", "--config", config, "--epochs", "20", "--quiet", check=0).stdout)
    assert data["layer_sizes"] == [2, 8, 4, 2] and data["learning_rate"] == 0.2 and data["epochs"] == 20
    assert data["n_samples"] == 80 and data["backend"] == "numpy"


def test_print_config_writes_toml_that_reads_back(tmp_path):
    first = run_cli("train", "--hidden", "16,16", "--learning-rate", "0.25", "--standardize", "--data", FLOWERS,
                    "--no-header", "--print-config", check=0).stdout
    assert "hidden = [16, 16]" in first and "learning-rate = 0.25" in first and "standardize = true" in first
    assert first.count("header = false") == 1 and "no-header" not in first
    assert f'data = "{FLOWERS}"' in first and "# epochs is not set" in first
    path = tmp_path / "effective.toml"
    path.write_text(first)
    assert run_cli("train", "--config", path, "--print-config", check=0).stdout == first


def test_print_config_shows_only_the_data_source_in_use():
    builtin = run_cli("train", "--print-config", check=0).stdout
    assert 'dataset = "moons"' in builtin and "n-samples = 1000" in builtin and "standardize = false" in builtin
    assert "data " not in builtin and "target" not in builtin and "header" not in builtin
    own = run_cli("train", "--data", FLOWERS, "--print-config", check=0).stdout
    assert f'data = "{FLOWERS}"' in own and "standardize = true" in own and "# target is not set" in own
    assert "dataset" not in own and "n-samples" not in own and "noise" not in own and "classes" not in own


@pytest.mark.parametrize("text, words", [
    ("learning-rat = 0.1\n", "unknown key 'learning-rat' (did you mean learning-rate?)"),
    ("hidden = [[1]]\n", "non-empty array"),
    ("json = 1\n", "--json is a switch"),
    ("seed = -1\n", "--seed"),
    ("epochs = \n", "not valid TOML"),
])
def test_config_file_errors_are_one_line(tmp_path, text, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    proc = run_cli("train", "--config", path, check=2)
    assert proc.stderr.startswith("xpnet: error:") and proc.stderr.count("\n") == 1 and words in proc.stderr


def test_help_gives_the_reason_for_the_defaults_and_what_ctrl_c_saves():
    text = " ".join(run_cli("train", "--help", check=0).stdout.split())
    assert "xpnet.fit's defaults are a rate of 0.1 and 1,000 epochs" in text
    assert "the epoch in progress is finished and saved" in text and "last logged" not in text
    for flag in ("--task", "--config", "--print-config", "--save-every", "--debug"):
        assert flag in text


def test_install_hints_point_to_a_clone_not_a_package_index():
    import xpnet.cli

    package = Path(xpnet.cli.__file__).parent.parent  # all of xpnet, its docs and README
    for path in [*package.rglob("*.py"), *(package.parent / "docs").glob("*.md"), package.parent / "README.md"]:
        text = path.read_text()
        assert "pip install 'xpnet[" not in text and "pip install -U xpnet" not in text, path


def test_readme_proba_example_is_the_real_output(tmp_path):
    readme = (Path(FLOWERS).parent.parent / "README.md").read_text()
    block = readme.split("$ xpnet predict --model flowers.npz --data docs/new-flowers.csv --proba\n")[1]
    shown = [line for line in block.split("```")[0].splitlines() if line and line != "..."]
    command = readme.split("xpnet train --data docs/flowers.csv")[1].split("\n")[0].split()
    model = tmp_path / "flowers.npz"
    run_cli("train", "--data", FLOWERS, *[a for a in command if a != "flowers.npz" and a != "--save"], "--save", model,
            "--quiet", check=0)
    got = run_cli("predict", "--model", model, "--data", NEW_FLOWERS, "--proba", check=0).stdout.splitlines()
    assert len(shown) >= 2
    for want, line in zip(shown, got):
        assert want.split(",")[0] == line.split(",")[0]
        np.testing.assert_allclose([float(v) for v in want.split(",")[1:]], [float(v) for v in line.split(",")[1:]],
                                   rtol=1e-3, atol=1e-6)


def regression_csv(path, n, seed):
    """A CSV whose target, price = 3 sin(a) + b^2 + 50, holds fractional numbers: --task auto picks regression."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, size=(n, 2))
    y = 3 * np.sin(X[:, 0]) + X[:, 1] ** 2 + 50
    path.write_text("a,b,price\n" + "".join(f"{float(a)!r},{float(b)!r},{float(v)!r}\n" for (a, b), v in zip(X, y)))
    return X, y


def test_regression_trains_predicts_and_evaluates_in_the_targets_units(tmp_path):
    model, data = tmp_path / "reg.npz", tmp_path / "reg.csv"
    regression_csv(data, 400, 0)
    proc = run_cli("train", "--backend", "numpy", "--data", data, "--dtype", "float64", "--hidden", "16", "--epochs",
                   "1500", "--validation-fraction", "0.25", "--save", model, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["task"] == "regression" and data["layer_sizes"] == [2, 16, 1] and "accuracy" not in data
    assert data["r2"] > 0.95 and 0 < data["rmse"] < 0.5 and data["validation_samples"] == 100
    assert data["validation_r2"] > 0.9 and 0 < data["validation_rmse"] < 0.6 and data["validation_loss"] > 0
    assert "val_r2" in proc.stderr and "val_loss" in proc.stderr
    from xpnet.io import checkpoint

    ckpt = checkpoint.load(model, backend="numpy")
    assert ckpt.config["task"] == "regression" and ckpt.model.spec.output == "identity"
    assert 49 < ckpt.config["target_scaling"]["mean"][0] < 53
    X = np.array([[0.0, 0.0], [1.0, -1.0], [-1.5, 1.5]])
    np.save(tmp_path / "X.npy", X)
    truth = 3 * np.sin(X[:, 0]) + X[:, 1] ** 2 + 50
    lines = run_cli("predict", "--model", model, "--data", tmp_path / "X.npy", check=0).stdout.split()
    np.testing.assert_allclose([float(v) for v in lines], truth, atol=0.5)  # numbers, in the target's units
    assert "regressor" in run_cli("predict", "--model", model, "--data", tmp_path / "X.npy", "--proba", check=2).stderr
    test = tmp_path / "test.csv"
    X, y = regression_csv(test, 200, 1)
    report = json.loads(run_cli("evaluate", "--model", model, "--data", test, "--json", check=0).stdout)
    predicted = np.array([float(v) for v in run_cli("predict", "--model", model, "--data", test,
                                                    check=0).stdout.split()])
    assert report["task"] == "regression" and report["n_samples"] == 200
    assert report["rmse"] == pytest.approx(np.sqrt(np.mean((predicted - y) ** 2)), rel=1e-6)
    assert report["mae"] == pytest.approx(np.mean(np.abs(predicted - y)), rel=1e-6)
    assert report["r2"] == pytest.approx(1 - np.sum((predicted - y) ** 2) / np.sum((y - y.mean()) ** 2), rel=1e-6)
    text = run_cli("evaluate", "--model", model, "--data", test, check=0).stdout
    assert f"r2        {report['r2']:.4f}" in text and "rmse" in text and "mae" in text


def test_regression_plot_draws_predicted_against_true(tmp_path):
    pytest.importorskip("matplotlib")
    path, data = tmp_path / "reg.svg", tmp_path / "reg.csv"
    regression_csv(data, 200, 0)
    code = ("import sys, matplotlib; matplotlib.rcParams['svg.fonttype'] = 'none'; from xpnet.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, "train", "--backend", "numpy", "--data", str(data), "--epochs",
                           "200", "--validation-fraction", "0.25", "--quiet", "--plot", str(path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    text = path.read_text()
    for words in (">true price<", ">predicted price<", ">exact prediction<", ">R^2<", ">validation<"):
        assert words in text, words


def test_task_flag_decides_integer_targets(tmp_path):
    data = tmp_path / "counts.csv"
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 3, size=(120, 2))
    counts = np.rint(X.sum(axis=1) * 2).astype(int)  # whole numbers: auto reads class labels
    data.write_text("a,b,count\n" + "".join(f"{a},{b},{c}\n" for (a, b), c in zip(X, counts)))
    auto = json.loads(run_cli("train", "--backend", "numpy", "--data", data, "--epochs", "50", "--json", "--quiet",
                              check=0).stdout)
    forced = json.loads(run_cli("train", "--backend", "numpy", "--data", data, "--epochs", "50", "--task",
                                "regression", "--json", "--quiet", check=0).stdout)
    assert auto["task"] == "classification" and auto["layer_sizes"][-1] == len(set(counts))
    assert forced["task"] == "regression" and forced["layer_sizes"][-1] == 1 and "r2" in forced
    assert forced["learning_rate"] == 0.1 and auto["learning_rate"] == 0.5  # the regression default


def test_docs_cli_names_every_flag_and_json_key(tmp_path):
    from xpnet.cli import build_parser
    from xpnet.cli.args import command_parser, long_options

    docs = (Path(DOCS) / "cli.md").read_text()
    parser = build_parser()
    for command in ("train", "predict", "evaluate", "tutorial", "bench"):
        for flag in long_options(command_parser(parser, [command])):
            assert f"`{flag}" in docs or f"{flag}`" in docs or f"`{flag} " in docs, (command, flag)
    model = tmp_path / "m.npz"
    keys = json.loads(run_cli("train", "--backend", "numpy", "--epochs", "5", "--validation-fraction", "0.2",
                              "--json", "--quiet", "--save", model, check=0).stdout)
    keys.update(json.loads(run_cli("evaluate", "--model", model, "--json", check=0).stdout))
    for key in keys:
        assert f"`{key}`" in docs, key


def test_readme_quick_start_on_your_own_csv_is_the_real_output(tmp_path):
    readme = (Path(FLOWERS).parent.parent / "README.md").read_text()
    command = "$ xpnet train --data docs/flowers.csv --save flowers.npz --quiet\n"
    shown = readme.split(command)[1].split("\n$ ")[0].splitlines()
    got = run_cli("train", "--data", FLOWERS, "--save", tmp_path / "flowers.npz", "--quiet", check=0).stdout
    stable = ("model", "epochs", "loss", "accuracy", "early")  # not the machine's backend, the time or the path
    want = [line for line in shown if line.startswith(stable)]
    assert "accuracy  1.0000 (validation, 18 samples)" in want
    assert [line.split("   time")[0] for line in got.splitlines() if line.startswith(stable)] == \
        [line.split("   time")[0] for line in want]
