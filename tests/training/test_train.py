"""xpnet.training: TrainConfig, Adam, the stall rule and the adaptive rate, exact resume, signals."""

import math
import os
import signal

import numpy as np
import pytest

import xpnet
from xpnet.training import optim
from xpnet.training.config import TrainConfig


def moons(n=120, seed=0):
    return xpnet.datasets.load("moons", n_samples=n, noise=0.2, seed=seed)


def model(backend="numpy", dtype="float64", sizes=(2, 6, 2), **kw):
    return xpnet.MLP(list(sizes), backend=backend, dtype=dtype, seed=1, **kw)


def host(arrays):
    return [np.asarray(xpnet.to_numpy(a)) for a in arrays]


# -- TrainConfig ---------------------------------------------------------------------------------
def test_config_is_checked_in_one_place_and_options_override_it():
    config = TrainConfig(epochs=5, learning_rate=0.3)
    with pytest.raises(xpnet.XpnetValueError, match="momentum"):
        TrainConfig(momentum=1.0)
    with pytest.raises(xpnet.XpnetTypeError, match="unknown option.*learning_rat\\b"):
        xpnet.fit(model(), *moons(), learning_rat=0.1)
    with pytest.raises(xpnet.XpnetValueError, match="adaptive.*tol"):
        TrainConfig(schedule="adaptive")
    X, y = moons()
    a, b = model(), model()
    xpnet.fit(a, X, y, config, epochs=7)
    xpnet.fit(b, X, y, epochs=7, learning_rate=0.3)
    for p, q in zip(host(a.parameters()), host(b.parameters())):
        np.testing.assert_array_equal(p, q)
    assert TrainConfig(l2=np.float64(0.5), epochs=np.int64(3)).epochs == 3  # NumPy scalars are numbers
    assert TrainConfig(schedule="annealing").to_dict()["schedule"]["name"] == "annealing"


# -- Adam ----------------------------------------------------------------------------------------
def adam_by_hand(params, grads_seq, lr, b1=0.9, b2=0.999, eps=1e-8):
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for t, grads in enumerate(grads_seq, start=1):
        m = [b1 * mi + (1 - b1) * g for mi, g in zip(m, grads)]
        v = [b2 * vi + (1 - b2) * g * g for vi, g in zip(v, grads)]
        rate = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        params = [p - rate * mi / (np.sqrt(vi) + eps) for p, mi, vi in zip(params, m, v)]
    return params


def test_adam_two_steps_by_hand():
    rng = np.random.default_rng(0)
    params = [rng.normal(size=(3, 2)), rng.normal(size=2)]
    grads = [[rng.normal(size=(3, 2)), rng.normal(size=2)] for _ in range(2)]
    adam = optim.Adam(np, 1)
    got = params
    for g in grads:
        got = adam.step(got, g, 0.01)
    for a, b in zip(got, adam_by_hand(params, grads, 0.01)):
        np.testing.assert_allclose(a, b, rtol=1e-13)
    assert int(adam.state()["t"]) == 2


@pytest.mark.parametrize("batch_size", [None, 40])
def test_adam_trains_and_resumes_exactly(backend, dtype, batch_size):
    X, y = moons()
    options = dict(optimizer="adam", learning_rate=0.01, batch_size=batch_size, l2=1e-3)
    whole = model(backend, dtype)
    result = whole.fit(X, y, epochs=30, **options)
    assert result.history[-1] < result.history[0]
    first = model(backend, dtype)
    half = first.fit(X, y, epochs=12, **options)
    first.fit(X, y, epochs=18, initial_epoch=12, optimizer_state=half.optimizer_state, **options)
    for p, q in zip(host(first.parameters()), host(whole.parameters())):
        np.testing.assert_array_equal(p, q)


# -- schedules and the stall rule ----------------------------------------------------------------
def test_invscaling_is_scikit_learns():
    schedule = optim.Schedule("invscaling", power_t=0.5)
    assert schedule.rate(0.1, 0, 100, samples=50) == 0.1
    assert schedule.rate(0.1, 3, 100, samples=50) == pytest.approx(0.1 / (150 + 1) ** 0.5)


def test_stall_stops_after_n_iter_no_change_epochs_without_progress():
    X, y = moons()
    net = model()
    result = net.fit(X, y, epochs=500, learning_rate=1e-6, batch_size=30, tol=1e-3, n_iter_no_change=4)
    # a rate this small never improves the loss by tol: epochs 2..6 count, the 5th count is > 4
    assert result.stopped_early and result.epochs == 6 == len(result.epoch_losses)


def test_adaptive_divides_the_rate_by_five_then_stops():
    X, y = moons()
    net = model()
    result = net.fit(X, y, epochs=500, learning_rate=1e-5, batch_size=30, tol=1e-3, n_iter_no_change=2,
                     schedule="adaptive")
    # 1e-5 -> 2e-6 -> 4e-7 <= 1e-6: three stalls, the last stops; each takes 3 counted epochs
    assert result.stopped_early and math.isclose(float(result.optimizer_state["rate_scale"]), 0.04)
    assert result.epochs == 1 + 3 * 3


def test_epoch_losses_are_the_running_objective_of_each_epoch():
    X, y = moons(60)
    net = model(bias=False)
    start = host(net.W)
    result = net.fit(X, y, epochs=1, batch_size=60, learning_rate=0.5, l2=0.2, tol=0.0, shuffle=False)
    probe = model(bias=False, weights=(start, None))
    assert result.epoch_losses == [pytest.approx(probe.loss(X, y, l2=0.2), rel=1e-12)]


def test_validation_score_watches_and_restores_the_best():
    X, y = moons(200)
    X_val, y_val = moons(80, seed=3)
    net = model(sizes=(2, 8, 2))
    snapshots = []

    def score(m):
        snapshots.append(host(m.parameters()))
        return m.accuracy(X_val, y_val)

    result = net.fit(X, y, epochs=40, learning_rate=2.0, batch_size=50, tol=0.0, n_iter_no_change=5,
                     validation_score=score)
    assert len(result.validation_scores) == len(snapshots) == result.epochs
    best = int(np.argmax(result.validation_scores))
    assert result.best_validation_score == max(result.validation_scores)
    for p, q in zip(host(net.parameters()), snapshots[best]):
        np.testing.assert_array_equal(p, q)
    with pytest.raises(xpnet.XpnetValueError, match="tol"):
        net.fit(X, y, epochs=2, validation_score=score)


# -- exact resume --------------------------------------------------------------------------------
@pytest.mark.parametrize("patience, batch_norm", [(100, False), (4, False), (100, True)])
def test_early_stopping_resumes_exactly(patience, batch_norm):
    """Split after epoch 9: the state carries the best weights (and the last ones the first fit
    replaced by the best); the two fits end where one fit of all the epochs ends."""
    X, y = moons(150)
    options = dict(early_stopping=True, patience=patience, learning_rate=1.5, momentum=0.5, batch_size=50)
    whole = model(batch_norm=batch_norm)
    full = whole.fit(X, y, epochs=25, **options)
    split = model(batch_norm=batch_norm)
    first = split.fit(X, y, epochs=9, **options)
    second = split.fit(X, y, epochs=16, initial_epoch=9, optimizer_state=first.optimizer_state, **options)
    assert second.best_epoch == full.best_epoch
    assert (first.stopped_early or second.stopped_early) == full.stopped_early
    for p, q in zip(host(split.parameters()), host(whole.parameters())):
        np.testing.assert_array_equal(p, q)


def test_divergence_never_leaves_a_non_finite_optimizer_state():
    X, y = moons()
    net = model()
    result = net.fit(X, y, epochs=200, learning_rate=1e6, momentum=0.9, log_every=10)
    assert result.diverged
    assert all(np.all(np.isfinite(xpnet.to_numpy(a))) for a in result.optimizer_state.values())


# -- signals -------------------------------------------------------------------------------------
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_finish_the_epoch_and_say_so(sig):
    if not hasattr(signal, sig):
        pytest.skip(f"no {sig} on this system")
    number = getattr(signal, sig)
    X, y = moons()
    net = model()
    seen = []

    def send(event):
        seen.append(event.epoch)
        if event.epoch == 20:
            os.kill(os.getpid(), number)

    result = net.fit(X, y, epochs=1000, log_every=10, callback=send)
    assert result.interrupted and result.signal == number and not result.stopped_early
    assert result.epochs == 21 and seen[-1] == 21  # epoch 20's update ran; the stop is logged
    assert signal.getsignal(number) in (signal.SIG_DFL, signal.default_int_handler) or callable(
        signal.getsignal(number))


def test_results_say_what_computed_the_gradients():
    X, y = xpnet.datasets.load("moons", n_samples=2000, noise=0.2, seed=0)
    assert model(dtype="float32").fit(X[:200], y[:200], epochs=1).kernels == "plain"
    assert model(dtype="float32", sizes=(2, 30, 2)).fit(X, y, epochs=1, kernels="numpy").kernels == "numpy-gram"
    assert model(dtype="float32", sizes=(2, 8, 8, 2)).fit(X, y, epochs=1, kernels="numpy").kernels == "generic"
    mine = xpnet.activations.Activation("softsign", lambda xp, Z: Z / (1 + xp.abs(Z)),
                                        lambda xp, dY, Y: dY * (1 - xp.abs(Y)) ** 2)
    assert model(dtype="float32", activation=mine).fit(X, y, epochs=1).kernels == "generic"  # any choice
