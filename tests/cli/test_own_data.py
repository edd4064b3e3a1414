"""Issue 23: a data file trains well with no flags. scikit-learn's bundled sets as CSV files,
standardization and a held-out part by default, the task guessed as a person would, columns
matched by name, warnings that name the cause, no silent substitutes, and the smaller items
(--lr, config paths, --print-config, plots, malformed configs)."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from xpnet.engine.kernels import numba_support

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLOWERS = os.path.join(ROOT, "docs", "flowers.csv")

# The bundled sets, split once: 25% test rows (stratified for the classifiers), random_state 0,
# written with a header and the target last. scikit-learn's reference is its documented
# pipeline, make_pipeline(StandardScaler(), MLPClassifier(random_state=0)) (or MLPRegressor)
# with every other setting its default (adam, 200 iterations), fitted on the same training file.
SPLIT_SEED, SKLEARN_SEED = 0, 0
MARGIN = 0.03  # xpnet's held-out accuracy may be at most 3 points below scikit-learn's


def write_csv(path, names, X, y, integer_target):
    target = [str(int(v)) for v in y] if integer_target else [repr(float(v)) for v in y]
    rows = (",".join(repr(float(v)) for v in row) + "," + t for row, t in zip(X, target))
    path.write_text(",".join([*names, "target"]) + "\n" + "\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    """``{name: (train.csv, test.csv, scikit-learn's held-out score)}``."""
    pytest.importorskip("sklearn")
    from sklearn import datasets
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folder = tmp_path_factory.mktemp("bundled")
    sets = {}
    for name in ("breast_cancer", "wine", "diabetes"):
        bunch = getattr(datasets, f"load_{name}")()
        regression = name == "diabetes"  # its targets are whole numbers written as 151.0: 214 distinct values
        X, Xt, y, yt = train_test_split(bunch.data, bunch.target, test_size=0.25, random_state=SPLIT_SEED,
                                        stratify=None if regression else bunch.target)
        names = [n.replace(" ", "_") for n in bunch.feature_names]
        train, test = folder / f"{name}_train.csv", folder / f"{name}_test.csv"
        write_csv(train, names, X, y, not regression)
        write_csv(test, names, Xt, yt, not regression)
        estimator = (MLPRegressor if regression else MLPClassifier)(random_state=SKLEARN_SEED)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            reference = make_pipeline(StandardScaler(), estimator).fit(X, y).score(Xt, yt)
        sets[name] = (train, test, reference)
    return sets


@pytest.mark.parametrize("name, task", [("breast_cancer", "classification"), ("wine", "classification"),
                                        ("diabetes", "regression")])
def test_bundled_sets_train_well_with_default_flags(bundled, tmp_path, name, task):
    train, test, reference = bundled[name]
    model = tmp_path / "model.npz"
    proc = run_cli("train", "--data", train, "--save", model, "--json", check=0)
    summary = json.loads(proc.stdout)
    assert summary["task"] == task and summary["standardized"] is True
    rows = len(train.read_text().splitlines()) - 1
    assert summary["validation_samples"] == round(0.2 * rows)  # 20% held out
    assert ("validation_accuracy" if task == "classification" else "validation_r2") in summary
    assert "RuntimeWarning" not in proc.stderr and "warning" not in summary
    scores = json.loads(run_cli("evaluate", "--model", model, "--data", test, "--json", check=0).stdout)
    if task == "classification":
        assert scores["accuracy"] >= reference - MARGIN, (scores["accuracy"], reference)
    else:
        assert scores["r2"] >= reference and scores["r2"] > 0.2, (scores["r2"], reference)
        assert "distinct whole numbers" in summary["task_reason"] and "--task classification" in summary["task_reason"]


# -- defaults of a data file -------------------------------------------------------------------

def blobs_csv(path, n=200, scale=(1.0, 1.0), seed=0):
    """Two well separated classes in two columns, the columns multiplied by ``scale``."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, 2)) + 3 * y[:, None]
    X = X * np.asarray(scale)
    path.write_text("height,weight,kind\n"
                    + "".join(f"{float(a)!r},{float(b)!r},{'ab'[k]}\n" for (a, b), k in zip(X, y)))
    return X, y


def test_a_data_file_is_standardized_and_held_out_by_default(tmp_path):
    data = tmp_path / "d.csv"
    blobs_csv(data, scale=(1000.0, 0.001))
    out = run_cli("train", "--data", data, "--epochs", "200", "--quiet", check=0).stdout
    assert "accuracy  " in out and "(validation, 40 samples)" in out and "(training)" in out
    model = tmp_path / "m.npz"
    summary = json.loads(run_cli("train", "--data", data, "--epochs", "200", "--save", model, "--json",
                                 check=0).stdout)
    assert summary["standardized"] and summary["validation_samples"] == 40 and summary["n_samples"] == 160
    assert summary["validation_accuracy"] > 0.9
    from xpnet.io import checkpoint

    ckpt = checkpoint.load(model, backend="numpy")
    assert ckpt.scaler is not None and ckpt.config["standardize"] is True
    assert ckpt.config["validation_fraction"] == 0.2 and ckpt.config["early_stopping"] is True
    # the scaler travels: predict standardizes the raw columns as training did
    predicted = run_cli("predict", "--model", model, "--data", data, check=0).stdout.split()
    assert np.mean(np.array(predicted) == np.array(["ab"[k] for k in np.arange(200) % 2])) > 0.9
    raw = json.loads(run_cli("train", "--data", data, "--epochs", "5", "--no-standardize", "--validation-fraction",
                             "0", "--json", "--quiet", check=0).stdout)
    assert raw["standardized"] is False and "validation_samples" not in raw and raw["n_samples"] == 200
    assert "best_epoch" not in raw or raw["best_epoch"] is None  # no validation rows: no early stopping


def test_built_in_datasets_keep_their_defaults():
    summary = json.loads(run_cli("train", "--epochs", "20", "--json", "--quiet", check=0).stdout)
    assert summary["standardized"] is False and "validation_samples" not in summary and summary["n_samples"] == 1000
    assert summary["best_epoch"] is None and summary["task_reason"] == "a built-in dataset of class labels"
    assert "--standardize, --no-standardize" in run_cli("train", "--help", check=0).stdout


def test_a_tiny_file_keeps_every_row_for_training(tmp_path):
    data = tmp_path / "xor.csv"
    data.write_text("a,b,y\n0,0,0\n0,1,1\n1,0,1\n1,1,0\n")
    summary = json.loads(run_cli("train", "--data", data, "--epochs", "5", "--json", "--quiet", check=0).stdout)
    assert summary["n_samples"] == 4 and "validation_samples" not in summary
    proc = run_cli("train", "--data", data, "--epochs", "5", "--early-stopping", check=2)
    assert "--early-stopping watches validation rows" in proc.stderr and proc.stderr.count("\n") == 1


# -- the summary names the likely cause; no NumPy warning reaches the user -----------------------

def test_unscaled_columns_are_named_when_the_model_predicts_one_class(bundled):
    # issue 23's case: breast_cancer's raw columns (areas in the thousands) leave the model at the majority class
    train = bundled["breast_cancer"][0]
    proc = run_cli("train", "--data", train, "--no-standardize", "--epochs", "300", "--json")
    summary = json.loads(proc.stdout)
    warning = summary["warning"]
    assert "share of the most common class" in warning and "not standardized" in warning
    assert "worst_area (" in warning and "mean_area (" in warning and "drop --no-standardize" in warning
    assert proc.stderr.count("xpnet: warning:") == 1 and "RuntimeWarning" not in proc.stderr
    assert "encountered" not in proc.stderr


def test_divergence_names_the_unscaled_columns_without_numpy_warnings(tmp_path):
    data = tmp_path / "r.csv"
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1e3, size=(100, 2))
    y = X @ np.array([0.5, -0.25]) + 0.5
    data.write_text("area,price_cents,value\n" + "".join(f"{float(a)!r},{float(b)!r},{float(v)!r}\n"
                                                         for (a, b), v in zip(X, y)))
    proc = run_cli("train", "--data", data, "--no-standardize", "--activation", "relu", "--epochs", "200", "--json")
    assert proc.returncode == 1
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith("xpnet: error: training diverged") and "likely cause" in error and "area (" in error
    assert "RuntimeWarning" not in proc.stderr and "encountered" not in proc.stderr
    assert json.loads(proc.stdout)["diverged"] is True


def test_divergence_of_scaled_data_names_the_rate():
    proc = run_cli("train", "--learning-rate", "1e30", "--epochs", "50")
    assert proc.returncode == 1 and "RuntimeWarning" not in proc.stderr and "encountered" not in proc.stderr
    assert "try a smaller learning rate than 1e+30" in proc.stderr.strip().splitlines()[-1]


# -- the task ------------------------------------------------------------------------------------

def counts_csv(path, n, distinct, seed=0):
    """``n`` rows whose target holds ``distinct`` whole numbers (written as 101.0, as pandas writes them)."""
    rng = np.random.default_rng(seed)
    y = 100 + rng.permutation(np.arange(n) % distinct)
    X = np.c_[y / distinct + rng.normal(scale=0.1, size=n), rng.normal(size=n)]
    path.write_text("a,b,count\n" + "".join(f"{float(a)!r},{float(b)!r},{float(v)!r}\n" for (a, b), v in zip(X, y)))
    return len(set(y.tolist()))


def test_many_whole_numbers_are_a_regression_said_once(tmp_path):
    data = tmp_path / "c.csv"
    distinct = counts_csv(data, 200, 60)
    proc = run_cli("train", "--data", data, "--epochs", "20", "--json")
    summary = json.loads(proc.stdout)
    assert summary["task"] == "regression" and summary["layer_sizes"][-1] == 1
    assert f"{distinct} distinct whole numbers in 200 rows" in summary["task_reason"]
    notes = [line for line in proc.stderr.splitlines() if line.startswith("xpnet: note:")]
    assert len(notes) == 1 and "--task classification" in notes[0]
    forced = json.loads(run_cli("train", "--data", data, "--epochs", "5", "--task", "classification", "--json",
                                "--quiet", check=0).stdout)
    assert forced["task"] == "classification" and forced["layer_sizes"][-1] == distinct
    assert forced["task_reason"] == "--task classification"


@pytest.mark.parametrize("n, distinct, task", [(200, 20, "classification"),  # not more than 20 values
                                               (1000, 40, "classification"),  # 40 values in 1000 rows: classes
                                               (200, 21, "regression"), (400, 30, "regression")])
def test_the_rule_for_whole_numbers(tmp_path, n, distinct, task):
    from xpnet.data.labels import explain_task, task_of

    data = tmp_path / "c.csv"
    found = counts_csv(data, n, distinct)
    assert found == distinct
    assert task_of("i", distinct, n)[0] == task
    from xpnet.io.tables import load_file

    assert explain_task(load_file(data).y)[0] == task


# -- columns by name in predict and evaluate ------------------------------------------------------

@pytest.fixture(scope="module")
def flowers_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("flowers") / "flowers.npz"
    run_cli("train", "--data", FLOWERS, "--target", "species", "--epochs", "300", "--quiet", "--save", path, check=0)
    return path


def flower_rows():
    lines = Path(FLOWERS).read_text().splitlines()
    return lines[0].split(","), [line.split(",") for line in lines[1:]]


def test_columns_are_matched_by_name_in_any_order_and_extra_ones_ignored(tmp_path, flowers_model):
    header, rows = flower_rows()
    want = run_cli("predict", "--model", flowers_model, "--data", FLOWERS, check=0).stdout
    order = [2, "id", 1, 0]  # the label first, a column the model never saw, then the features reversed
    shuffled = tmp_path / "shuffled.csv"
    shuffled.write_text(",".join(header[k] if k != "id" else "id" for k in order) + "\n" + "".join(
        ",".join(row[k] if k != "id" else str(i) for k in order) + "\n" for i, row in enumerate(rows)))
    assert run_cli("predict", "--model", flowers_model, "--data", shuffled, check=0).stdout == want
    a = json.loads(run_cli("evaluate", "--model", flowers_model, "--data", FLOWERS, "--json", check=0).stdout)
    b = json.loads(run_cli("evaluate", "--model", flowers_model, "--data", shuffled, "--json", check=0).stdout)
    assert a["accuracy"] == b["accuracy"] and a["confusion_matrix"] == b["confusion_matrix"]


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_a_missing_training_column_is_an_error_naming_the_closest(tmp_path, flowers_model, command):
    header, rows = flower_rows()
    renamed = tmp_path / "renamed.csv"
    first = header[0]
    renamed.write_text(",".join([first.capitalize(), *header[1:]]) + "\n" + "".join(",".join(r) + "\n" for r in rows))
    proc = run_cli(command, "--model", flowers_model, "--data", renamed, check=2)
    assert proc.stderr.startswith("xpnet: error:") and proc.stderr.count("\n") == 1
    assert f"has no column {first!r} (closest: {first.capitalize()!r})" in proc.stderr


def test_headers_without_the_training_columns_are_refused(tmp_path, flowers_model):
    header, rows = flower_rows()
    other = tmp_path / "xy.csv"
    other.write_text("x,y\n" + "".join(f"{r[0]},{r[1]}\n" for r in rows))
    proc = run_cli("predict", "--model", flowers_model, "--data", other, check=2)
    assert f"has no column {header[0]!r}" in proc.stderr


def test_without_a_header_columns_are_taken_by_position_and_counted(tmp_path, flowers_model):
    header, rows = flower_rows()
    plain = tmp_path / "plain.csv"
    plain.write_text("".join(f"{r[0]},{r[1]}\n" for r in rows))
    want = run_cli("predict", "--model", flowers_model, "--data", FLOWERS, check=0).stdout
    assert run_cli("predict", "--model", flowers_model, "--data", plain, check=0).stdout == want
    three = tmp_path / "three.csv"
    three.write_text("".join(f"{r[0]},{r[1]},{r[0]}\n" for r in rows))
    proc = run_cli("predict", "--model", flowers_model, "--data", three, check=2)
    assert "has 3 feature columns" in proc.stderr and "the model expects 2" in proc.stderr


# -- no silent substitutes ------------------------------------------------------------------------

WITHOUT_NUMBA = "import sys; sys.modules['numba'] = None; from xpnet.cli import main; sys.exit(main(sys.argv[1:]))"


def test_jit_kernels_without_numba_are_an_error_naming_the_extra():
    proc = subprocess.run([sys.executable, "-c", WITHOUT_NUMBA, "train", "--kernels", "jit", "--epochs", "3"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "--kernels jit" in proc.stderr and "pip install '.[jit]'" in proc.stderr


def test_auto_kernels_without_numba_fall_back_and_say_so():
    proc = subprocess.run([sys.executable, "-c", WITHOUT_NUMBA, "train", "--backend", "numpy", "--epochs", "3",
                           "--json"], capture_output=True, text=True, timeout=120)
    summary = json.loads(proc.stdout)
    assert summary["kernels"] in ("numpy-gram", "generic") and "not installed" in summary["kernels_reason"]
    text = subprocess.run([sys.executable, "-c", WITHOUT_NUMBA, "train", "--backend", "numpy", "--epochs", "3",
                           "--quiet"], capture_output=True, text=True, timeout=120).stdout
    assert "\nkernels   " in text and "pip install '.[jit]'" in text
    plain = json.loads(run_cli("train", "--epochs", "3", "--json", "--quiet", check=0).stdout)
    assert ("kernels_reason" in plain) is not numba_support.available()  # said only when numba is missing


# -- the smaller items ----------------------------------------------------------------------------

def test_paths_in_a_config_file_are_read_from_its_directory(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    blobs_csv(folder / "d.csv", n=60)
    (folder / "run.toml").write_text('data = "d.csv"\nsave = "out/model.npz"\nepochs = 5\n')
    (folder / "out").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run([sys.executable, "-m", "xpnet", "train", "--config", "../project/run.toml", "--quiet"],
                          capture_output=True, text=True, cwd=elsewhere, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (folder / "out" / "model.npz").is_file()
    printed = subprocess.run([sys.executable, "-m", "xpnet", "train", "--config", "../project/run.toml",
                              "--print-config"], capture_output=True, text=True, cwd=elsewhere, timeout=120).stdout
    assert f'data = "{folder / "d.csv"}"' in printed


@pytest.mark.parametrize("text, words", [
    ("hidden = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    ("a = " + "{b = " * 3000 + "1" + "}" * 3000 + "\n", "nested too deeply"),
    ("[train]\nepochs = 3\n", "unknown key 'train'"),
    ("epochs = {n = 3}\n", "give a number or a string"),
    ("epochs = 3\nepochs = 4\n", "not valid TOML"),
    ("\x00\x01binary", "not valid TOML"),
])
def test_a_malformed_config_is_a_toml_error_naming_the_file(tmp_path, text, words):
    path = tmp_path / "bad.toml"
    path.write_text(text) if isinstance(text, str) else path.write_bytes(text)
    proc = run_cli("train", "--config", path, check=2)
    line = proc.stderr.strip()
    assert line.startswith("xpnet: error:") and proc.stderr.count("\n") == 1 and "unexpected" not in line
    assert str(path) in line and words in line, line


def test_a_config_file_that_is_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "latin.toml"
    path.write_bytes('data = "caf\xe9.csv"\n'.encode("latin-1"))
    proc = run_cli("train", "--config", path, check=2)
    assert str(path) in proc.stderr and "not valid TOML" in proc.stderr


def test_the_early_stopping_plot_draws_every_validation_loss(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from xpnet import plot
    from xpnet.cli import main

    drawn = {}

    def capture(curves, **panel):
        drawn.update(curves)
        return plot.new_figure(1, 1)

    monkeypatch.setattr(plot, "training_figure", capture)
    path = tmp_path / "run.png"
    code = main(["train", "--backend", "numpy", "--n-samples", "200", "--epochs", "2000", "--early-stopping",
                 "--patience", "5", "--quiet", "--plot", str(path), "--save", str(tmp_path / "m.npz")])
    assert code == 0 and path.is_file()
    from xpnet.io import checkpoint

    meta = checkpoint.load(tmp_path / "m.npz", backend="numpy").meta
    epochs, losses = drawn["loss"]["validation"]
    assert len(losses) == meta["epochs_done"] + 1 > 5  # one per epoch, the initial weights' included
    assert epochs == list(range(len(losses)))
