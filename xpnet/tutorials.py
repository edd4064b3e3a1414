"""The tutorial programs, expressed through the library (no copies of their scripts).

Each tutorial builds an :class:`~xpnet.MLP` with the tutorial's architecture, init and
seed, trains it with :func:`~xpnet.fit` in float64 with the tutorial's summed gradient,
and returns a :class:`TutorialResult`: ``data`` (the ``--json`` keys) and ``lines``
(what the tutorial prints).

    >>> from xpnet import tutorials
    >>> run = tutorials.run("trask-2layer", backend="numpy")
    >>> [round(row[0], 8) for row in run.data["output"]]
    [0.00966449, 0.00786506, 0.99358898, 0.99211957]

Logging follows each text: Trask and Cavar print the error of the forward pass BEFORE
that iteration's update; WildML prints the loss AFTER it (``calculate_loss`` runs after
the update), so its "iteration i" is the weights after i + 1 updates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .backend import to_numpy
from .data import datasets
from .engine.plan import CHOICES as KERNEL_CHOICES
from .errors import XpnetValueError, check_choice, check_positive
from .mlp import MLP
from .training import optim

TRASK_ALPHAS = (0.001, 0.01, 0.1, 1, 10, 100, 1000)


@dataclass
class TutorialResult:
    name: str
    data: dict = field(default_factory=dict)  # the --json object
    lines: list = field(default_factory=list)  # what the tutorial prints
    models: dict = field(default_factory=dict)  # trained models by hidden size (for pictures; not in --json)
    inputs: tuple = ()  # the training data (X, y) (for pictures; not in --json)


@dataclass(frozen=True)
class Tutorial:
    name: str
    summary: str
    run: Callable
    hidden: int | None  # default hidden size, None when --hidden does not apply
    iterations: int
    activations: tuple = ()  # choices of --activation (the first is the default); () when it does not apply


def _table_net(X, hidden, init, seed, backend, kernels="auto"):
    sizes = [X.shape[1]] + ([hidden] if hidden else []) + [1]
    return MLP(sizes, activation="sigmoid", output="sigmoid", loss="squared", bias=False, init=init,
               dtype="float64", backend=backend, seed=seed, kernels=kernels)


def _mean_abs_error(model, X, y) -> float:
    xp = model.xp
    return float(xp.mean(xp.abs(model.as_targets(y, X.shape[0]) - model.predict_proba(X))))


def _train_logging_errors(model, X, y, iterations, every, learning_rate=1.0):
    """Train, recording Trask's printed error (mean |y - out|) before iterations 0, every, ..."""
    errors = []
    for done in range(0, iterations, every):
        errors.append(_mean_abs_error(model, X, y))
        model.fit(X, y, epochs=min(every, iterations - done), learning_rate=learning_rate, reduction="sum")
    return errors


def _output_of_last_pass(model, X, y, iterations):
    """Train ``iterations`` passes; return the output of the last pass's forward (what gets printed)."""
    if iterations > 1:
        model.fit(X, y, epochs=iterations - 1, learning_rate=1.0, reduction="sum")
    output = to_numpy(model.predict_proba(X))
    model.fit(X, y, epochs=1, learning_rate=1.0, reduction="sum")
    return output


def _rows(a) -> list:
    return np.asarray(to_numpy(a), dtype=np.float64).tolist()


def _two_layer(name, init, dataset, header, backend, hidden, iterations, kernels="auto"):
    X, y = dataset()
    model = _table_net(X, None, init, 1, backend, kernels)
    output = _output_of_last_pass(model, X, y, iterations)
    return TutorialResult(name, {"output": output.tolist()}, [header, str(output)])


def trask_2layer(backend=None, kernels="auto", hidden=None, iterations=10_000):
    """Trask part 1: 3 -> 1 sigmoid net on the first-column table, seed 1."""
    return _two_layer("trask-2layer", "trask", datasets.first_column, "Output After Training:", backend, hidden,
                      iterations, kernels)


def cavar_2layer(backend=None, kernels="auto", hidden=None, iterations=10_000):
    """Cavar: the same net with U(0,1)*sqrt(2/n_in) weights (his printed output is 10,110 passes)."""
    return _two_layer("cavar-2layer", "cavar", datasets.first_column, "l1:", backend, hidden, iterations, kernels)


def trask_3layer(backend=None, kernels="auto", hidden=4, iterations=60_000):
    """Trask part 1: 3 -> 4 -> 1 sigmoid net on XOR; "Error:" every 10,000 iterations."""
    X, y = datasets.xor()
    model = _table_net(X, hidden, "trask", 1, backend, kernels)
    errors = _train_logging_errors(model, X, y, iterations, 10_000)
    return TutorialResult("trask-3layer", {"errors": errors}, [f"Error:{e}" for e in errors])


def cavar_3layer(backend=None, kernels="auto", hidden=4, iterations=100_000):
    """Cavar: XOR with his init, 100,000 iterations; errors every 10,000, then the weights."""
    X, y = datasets.xor()
    model = _table_net(X, hidden, "cavar", 1, backend, kernels)
    errors = _train_logging_errors(model, X, y, iterations, 10_000)
    Wh, Wo = (to_numpy(w) for w in model.W)
    lines = [f"Error: {e}" for e in errors] + ["Wo:", str(Wo), "Wh:", str(Wh)]
    return TutorialResult("cavar-3layer", {"errors": errors, "weights": {"Wh": Wh.tolist(), "Wo": Wo.tolist()}}, lines)


def trask_alpha(backend=None, kernels="auto", hidden=4, iterations=60_000, alphas=TRASK_ALPHAS):
    """Trask part 2: the XOR net for alpha in 0.001 ... 1000 (hidden 4; the text also shows 32)."""
    X, y = datasets.xor()
    runs, lines = [], []
    for alpha in alphas:
        model = _table_net(X, hidden, "trask", 1, backend, kernels)
        errors = _train_logging_errors(model, X, y, iterations, 10_000, learning_rate=alpha)
        runs.append({"alpha": alpha, "errors": errors})
        lines.append(f"\nTraining With Alpha:{alpha}")
        lines += [f"Error after {10_000 * k} iterations:{e}" for k, e in enumerate(errors)]
    return TutorialResult("trask-alpha", {"hidden": hidden, "runs": runs}, lines)


def wildml_moons(backend=None, kernels="auto", hidden=3, iterations=20_000):
    """WildML: make_moons(200, noise=0.2) after seed 0; 2 -> H tanh -> 2 softmax, L2 0.01, rate 0.01."""
    X, y = datasets.moons(200, noise=0.2, seed=0)
    model = MLP([2, hidden, 2], activation="tanh", output="softmax", bias=True, init="wildml",
                dtype="float64", backend=backend, seed=0, numerics="tutorial", kernels=kernels)
    train = dict(learning_rate=0.01, l2=0.01, reduction="sum")
    losses, done = [], 0
    for i in range(0, iterations, 1000):  # "Loss after iteration i" = after update i
        result = model.fit(X, y, epochs=i + 1 - done, **train)
        losses.append(result.final_loss)
        done = i + 1
    if iterations > done:
        model.fit(X, y, epochs=iterations - done, **train)
    accuracy = model.accuracy(X, y)
    lines = [f"Loss after iteration {1000 * k}: {loss:f}" for k, loss in enumerate(losses)]  # WildML's print
    lines.append(f"Training accuracy: {accuracy:.4f}")
    return TutorialResult("wildml-moons", {"hidden": hidden, "losses": losses, "accuracy": accuracy}, lines,
                          models={hidden: model}, inputs=(X, y))


WILDML_HIDDEN_SIZES = (1, 2, 3, 4, 5, 20, 50)


def wildml_hidden_sweep(backend=None, kernels="auto", hidden=None, iterations=20_000, sizes=WILDML_HIDDEN_SIZES):
    """WildML's "varying the hidden layer size": the moons net for hidden sizes 1, 2, 3, 4, 5, 20, 50."""
    runs, lines, models, inputs = [], [], {}, ()
    for size in sizes:
        result = wildml_moons(backend=backend, kernels=kernels, hidden=size, iterations=iterations)
        runs.append({"hidden": size, "losses": result.data["losses"], "accuracy": result.data["accuracy"]})
        last = 1000 * (len(result.data["losses"]) - 1)
        lines.append(f"Hidden Layer size {size}: loss after iteration {last} {result.data['losses'][-1]:f}, "
                     f"training accuracy {result.data['accuracy']:.4f}")
        models.update(result.models)
        inputs = result.inputs
    return TutorialResult("wildml-hidden-sweep", {"runs": runs}, lines, models=models, inputs=inputs)


# -- WildML's exercises: new programs, not reproductions (stable numerics) -------------------
WILDML_TRAIN = dict(learning_rate=0.01, l2=0.01, reduction="sum")  # epsilon, reg_lambda, summed gradient


def _exercise(name, X, y, sizes, activation, iterations, every, extra=None, **train):
    """Train a WildML-style net (wildml init, seed 0, float64), logging the loss every ``every`` epochs.

    The loss printed at epoch e is the objective of the weights after e passes (e = 0: the
    initial weights), as :func:`xpnet.fit` logs it.
    """
    model = MLP(sizes, activation=activation, output="softmax", bias=True, init="wildml", dtype="float64",
                backend=train.pop("backend"), seed=0, kernels=train.pop("kernels"))
    losses = []
    result = model.fit(X, y, epochs=iterations, log_every=every, callback=lambda e: losses.append(e.loss), **train)
    accuracy = model.accuracy(X, y)
    lines = [f"Loss after epoch {epoch}: {loss:f}" for epoch, loss in zip(result.logged_epochs, losses)]
    lines.append(f"Training accuracy: {accuracy:.4f}")
    data = {"layer_sizes": list(sizes), "activation": activation, **(extra or {}),
            "epochs": result.logged_epochs, "losses": losses, "accuracy": accuracy}
    return TutorialResult(name, data, lines)


def wildml_minibatch(backend=None, kernels="auto", hidden=3, iterations=2000):
    """WildML exercise 1: minibatches of 20 (reshuffled every epoch), same net and rates; 2,000 epochs."""
    X, y = datasets.moons(200, noise=0.2, seed=0)
    return _exercise("wildml-minibatch", X, y, [2, hidden, 2], "tanh", iterations, 100, {"batch_size": 20},
                     batch_size=20, backend=backend, kernels=kernels, **WILDML_TRAIN)


def wildml_annealing(backend=None, kernels="auto", hidden=3, iterations=20_000):
    """WildML exercise 2: annealed rate 0.03 / (1 + 0.001 t), full batch, 20,000 passes."""
    X, y = datasets.moons(200, noise=0.2, seed=0)
    train = dict(WILDML_TRAIN, learning_rate=0.03, schedule=optim.Schedule("annealing", decay=0.001))
    return _exercise("wildml-annealing", X, y, [2, hidden, 2], "tanh", iterations, 1000,
                     {"learning_rate": 0.03, "decay": 0.001}, backend=backend, kernels=kernels, **train)


def wildml_activations(backend=None, kernels="auto", hidden=3, iterations=20_000, activation="relu"):
    """WildML exercise 3: the moons net with ReLU (or sigmoid) hidden units instead of tanh."""
    X, y = datasets.moons(200, noise=0.2, seed=0)
    return _exercise("wildml-activations", X, y, [2, hidden, 2], activation, iterations, 1000,
                     backend=backend, kernels=kernels, **WILDML_TRAIN)


def wildml_3class(backend=None, kernels="auto", hidden=50, iterations=1000):
    """WildML exercise 4: three classes (spirals, 300 points); minibatches of 30 with momentum 0.9."""
    X, y = datasets.spirals(300, noise=0.2, seed=0, classes=3)
    train = dict(learning_rate=0.1, l2=1e-3, reduction="mean", batch_size=30, momentum=0.9)
    return _exercise("wildml-3class", X, y, [2, hidden, 3], "tanh", iterations, 50,
                     {k: train[k] for k in ("batch_size", "momentum")}, backend=backend, kernels=kernels, **train)


def wildml_4layer(backend=None, kernels="auto", hidden=3, iterations=20_000):
    """WildML exercise 5: four layers, 2 -> H -> H -> 2 tanh, on the moons; 20,000 passes."""
    X, y = datasets.moons(200, noise=0.2, seed=0)
    return _exercise("wildml-4layer", X, y, [2, hidden, hidden, 2], "tanh", iterations, 1000,
                     backend=backend, kernels=kernels, **WILDML_TRAIN)


TUTORIALS = {
    t.name: t
    for t in (
        Tutorial("trask-2layer",
                 "Trask part 1: 3->1 sigmoid net, 10,000 iterations, output after training",
                 trask_2layer, None, 10_000),
        Tutorial("trask-3layer",
                 "Trask part 1: XOR 3->4->1, 60,000 iterations, error every 10,000",
                 trask_3layer, 4, 60_000),
        Tutorial("trask-alpha",
                 "Trask part 2: XOR for alpha 0.001 ... 1000 (--hidden 4 or 32)",
                 trask_alpha, 4, 60_000),
        Tutorial("cavar-2layer",
                 "Cavar: 3->1 net with U(0,1)*sqrt(2/n) init, 10,000 iterations",
                 cavar_2layer, None, 10_000),
        Tutorial("cavar-3layer",
                 "Cavar: XOR 3->4->1, 100,000 iterations, errors and final weights",
                 cavar_3layer, 4, 100_000),
        Tutorial("wildml-moons",
                 "WildML: make_moons, tanh + softmax + L2, 20,000 passes",
                 wildml_moons, 3, 20_000),
        Tutorial("wildml-hidden-sweep",
                 "WildML: the moons net for hidden sizes 1, 2, 3, 4, 5, 20, 50 (--plot draws the grid)",
                 wildml_hidden_sweep, None, 20_000),
        Tutorial("wildml-minibatch",
                 "WildML exercise: minibatches of 20, 2,000 epochs",
                 wildml_minibatch, 3, 2000),
        Tutorial("wildml-annealing",
                 "WildML exercise: annealed rate 0.03/(1+0.001t), 20,000 passes",
                 wildml_annealing, 3, 20_000),
        Tutorial("wildml-activations",
                 "WildML exercise: ReLU (--activation relu|sigmoid) in place of tanh",
                 wildml_activations, 3, 20_000, ("relu", "sigmoid")),
        Tutorial("wildml-3class",
                 "WildML exercise: 3-class spirals, 2->50->3, minibatch + momentum",
                 wildml_3class, 50, 1000),
        Tutorial("wildml-4layer",
                 "WildML exercise: four layers 2->3->3->2 on the moons, 20,000 passes",
                 wildml_4layer, 3, 20_000),
    )
}


def run(name: str, backend=None, hidden: int | None = None, iterations: int | None = None,
        activation: str | None = None, kernels: str = "auto") -> TutorialResult:
    """Run the tutorial called ``name`` (see :data:`TUTORIALS`); ``activation`` only where it applies.

    ``kernels`` is the models' choice of whole-pass kernels (:class:`xpnet.MLP`); a gradient pass
    of at most ``xpnet.core.ops.SMALL`` (256) rows never uses one and no tutorial's pass is larger, so
    their printed digits stay the tutorials' own whatever the choice.
    """
    check_choice("tutorial", name, tuple(TUTORIALS))
    check_choice("kernels", kernels, KERNEL_CHOICES)
    tutorial = TUTORIALS[name]
    options: dict = {}
    if hidden is not None:
        if tutorial.hidden is None:
            raise XpnetValueError(f"tutorial {name!r} does not take a hidden size; drop --hidden")
        check_positive("hidden", hidden, integer=True)
        options["hidden"] = hidden
    if iterations is not None:
        check_positive("iterations", iterations, integer=True)
        options["iterations"] = iterations
    if activation is not None:
        if not tutorial.activations:
            raise XpnetValueError(f"tutorial {name!r} has a fixed activation; drop --activation")
        check_choice("activation", activation, tutorial.activations)
        options["activation"] = activation
    result = tutorial.run(backend=backend, kernels=kernels, **options)
    result.data = {"tutorial": name, **result.data}
    return result
