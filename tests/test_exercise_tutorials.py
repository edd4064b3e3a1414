"""The WildML exercise tutorials and the new `xpnet train` / `xpnet tutorial` flags."""

import json

import pytest
from conftest import run_cli

from xpnet import XpnetValueError, tutorials

EXERCISES = ["wildml-minibatch", "wildml-annealing", "wildml-activations", "wildml-3class", "wildml-4layer"]


@pytest.mark.parametrize("name", EXERCISES)
def test_exercise_defaults_learn(name):
    """Each must end below its starting loss and reach 0.85 training accuracy with its defaults."""
    run = tutorials.run(name, backend="numpy")
    losses = run.data["losses"]
    assert losses[-1] < losses[0] / 2
    assert run.data["accuracy"] >= 0.85
    assert run.lines[-1] == f"Training accuracy: {run.data['accuracy']:.4f}"
    assert len(run.lines) == len(losses) + 1


def test_activations_takes_sigmoid():
    run = tutorials.run("wildml-activations", backend="numpy", iterations=3000, activation="sigmoid")
    relu = tutorials.run("wildml-activations", backend="numpy", iterations=3000)
    assert run.data["activation"] == "sigmoid" and relu.data["activation"] == "relu"
    assert run.data["losses"] != relu.data["losses"]
    assert run.data["losses"][-1] < run.data["losses"][0]


def test_activation_flag_is_refused_elsewhere():
    with pytest.raises(XpnetValueError, match="activation"):
        tutorials.run("wildml-moons", backend="numpy", activation="relu")
    with pytest.raises(XpnetValueError, match="activation"):
        tutorials.run("wildml-activations", backend="numpy", activation="tanh")


def test_cli_tutorial_json_has_losses_and_accuracy():
    proc = run_cli("tutorial", "wildml-activations", "--activation", "sigmoid", "--iterations", "2000",
                   "--backend", "numpy", "--json", check=0)
    lines = proc.stdout.splitlines()
    assert len(lines) == 1
    data = json.loads(lines[0])
    assert data["tutorial"] == "wildml-activations" and data["activation"] == "sigmoid"
    assert isinstance(data["losses"][0], float) and 0 <= data["accuracy"] <= 1
    assert data["epochs"] == list(range(0, 2001, 1000))


def test_cli_train_with_every_option():
    proc = run_cli("train", "--backend", "numpy", "--dataset", "spirals", "--classes", "4", "--n-samples", "120",
                   "--hidden", "16,16", "--epochs", "40", "--learning-rate", "0.1", "--batch-size", "16",
                   "--momentum", "0.9", "--nesterov", "--schedule", "step", "--lr-step", "10", "--lr-gamma", "0.5",
                   "--clip-value", "1", "--clip-norm", "5", "--dropout", "0.1", "--batch-norm",
                   "--early-stopping", "--validation-fraction", "0.2", "--patience", "100", "--json", check=0)
    data = json.loads(proc.stdout)
    assert data["layer_sizes"] == [2, 16, 16, 4]
    assert data["best_epoch"] is not None and len(data["validation_history"]) == 41
    assert data["history"][-1] < data["history"][0]


@pytest.mark.parametrize("args, word", [
    (["--momentum", "1"], "--momentum"), (["--nesterov"], "nesterov"), (["--schedule", "linear"], "--schedule"),
    (["--dropout", "1.5"], "--dropout"), (["--clip-norm", "0"], "--clip-norm"), (["--classes", "3"], "--classes"),
    (["--lr-decay", "-1"], "--lr-decay"), (["--batch-size", "0"], "--batch-size"),
])
def test_cli_train_flag_errors_are_one_line(args, word):
    proc = run_cli("train", "--backend", "numpy", "--epochs", "2", *args, check=2)
    assert proc.stderr.startswith("xpnet: error:") and word in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_cli_train_help_documents_the_flags():
    text = run_cli("train", "--help", check=0).stdout
    for flag in ("--batch-size", "--momentum", "--nesterov", "--schedule", "--lr-decay", "--lr-step", "--lr-gamma",
                 "--clip-value", "--clip-norm", "--dropout", "--batch-norm", "--early-stopping",
                 "--validation-fraction", "--patience", "--classes"):
        assert flag in text
