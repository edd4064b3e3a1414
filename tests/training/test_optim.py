"""xpnet.optim: schedules, momentum / Nesterov steps and clipping, worked out by hand."""

import math

import numpy as np
import pytest
from conftest import rtol_for

from xpnet import XpnetTypeError, XpnetValueError, to_numpy
from xpnet.training import optim


@pytest.mark.parametrize("epoch, expected", [(0, 0.2), (1, 0.2 / 1.5), (10, 0.2 / 6)])
def test_annealing_by_hand(epoch, expected):
    assert optim.Schedule("annealing", decay=0.5).rate(0.2, epoch, 100) == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("epoch, expected", [(0, 1.0), (2, 1.0), (3, 0.1), (5, 0.1), (6, 0.01), (9, 0.001)])
def test_step_decay_by_hand(epoch, expected):
    assert optim.Schedule("step", step=3, gamma=0.1).rate(1.0, epoch, 100) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("epoch, expected",
                         [(0, 1.0), (50, 0.55), (100, 0.1), (25, 0.1 + 0.9 * (1 + math.sqrt(0.5)) / 2)])
def test_cosine_by_hand(epoch, expected):
    assert optim.Schedule("cosine", min_rate=0.1).rate(1.0, epoch, 100) == pytest.approx(expected, rel=1e-12)


def test_constant_returns_the_rate_itself():
    assert optim.get_schedule("constant").rate(0.37, 999, 1000) == 0.37


@pytest.mark.parametrize("kwargs, word", [({"name": "linear"}, "schedule"), ({"decay": -1.0}, "lr_decay"),
                                          ({"step": 0}, "lr_step"), ({"gamma": 0.0}, "lr_gamma")])
def test_schedule_errors_name_the_argument(kwargs, word):
    with pytest.raises(XpnetValueError, match=word):
        optim.Schedule(**kwargs)


def test_get_schedule_rejects_other_types():
    with pytest.raises(XpnetTypeError, match="schedule"):
        optim.get_schedule(0.5)


def _arrays(backend, dtype, *hosts):
    return [backend.asarray(np.asarray(h, dtype=np.float64), dtype) for h in hosts]


def _host(arrays):
    return [np.asarray(to_numpy(a), dtype=np.float64) for a in arrays]


W0, B0 = np.array([[1.0, -2.0], [0.5, 3.0]]), np.array([0.25, -0.5])
G1, GB1 = np.array([[0.1, 0.2], [-0.3, 0.4]]), np.array([1.0, -1.0])
G2, GB2 = np.array([[-0.2, 0.0], [0.1, 0.3]]), np.array([0.5, 0.5])


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_two_steps_by_hand(backend, dtype, nesterov):
    lr, mu, l2 = 0.1, 0.9, 0.01
    sgd = optim.SGD(backend.xp, 1, l2=l2, momentum=mu, nesterov=nesterov)
    params = _arrays(backend, dtype, W0, B0)
    params = sgd.step(params, _arrays(backend, dtype, G1, GB1), lr)
    params = sgd.step(params, _arrays(backend, dtype, G2, GB2), lr)
    # by hand: the weight gets g + l2 * W, the bias not; v1 = g1, v2 = mu * v1 + g2
    gw1 = G1 + l2 * W0
    vw1, vb1 = gw1, GB1
    W1 = W0 - lr * (gw1 + mu * vw1 if nesterov else vw1)
    B1 = B0 - lr * (GB1 + mu * vb1 if nesterov else vb1)
    gw2 = G2 + l2 * W1
    vw2, vb2 = mu * vw1 + gw2, mu * vb1 + GB2
    W2 = W1 - lr * (gw2 + mu * vw2 if nesterov else vw2)
    B2 = B1 - lr * (GB2 + mu * vb2 if nesterov else vb2)
    got = _host(params)
    np.testing.assert_allclose(got[0], W2, rtol=rtol_for(dtype), atol=1e-7)
    np.testing.assert_allclose(got[1], B2, rtol=rtol_for(dtype), atol=1e-7)
    assert not np.allclose(W2, W0 - lr * (G1 + l2 * W0) - lr * (G2 + l2 * W1))  # momentum did something


def test_plain_step_is_p_minus_rate_times_g(backend, dtype):
    sgd = optim.SGD(backend.xp, 1)
    got = _host(sgd.step(_arrays(backend, dtype, W0, B0), _arrays(backend, dtype, G1, GB1), 0.5))
    np.testing.assert_allclose(got[0], W0 - 0.5 * G1, rtol=rtol_for(dtype))
    np.testing.assert_allclose(got[1], B0 - 0.5 * GB1, rtol=rtol_for(dtype))


def test_clip_by_value_by_hand(backend, dtype):
    got = _host(optim.clip_gradients(backend.xp, _arrays(backend, dtype, G1 * 10, GB1), clip_value=0.5))
    np.testing.assert_allclose(got[0], np.clip(G1 * 10, -0.5, 0.5), rtol=rtol_for(dtype))
    np.testing.assert_allclose(got[1], [0.5, -0.5], rtol=rtol_for(dtype))


@pytest.mark.parametrize("limit", [0.5, 100.0])
def test_clip_by_global_norm_by_hand(backend, dtype, limit):
    norm = math.sqrt(np.sum(G1 ** 2) + np.sum(GB1 ** 2))  # sqrt(0.3 + 2) ~ 1.517
    scale = min(1.0, limit / norm)
    got = _host(optim.clip_gradients(backend.xp, _arrays(backend, dtype, G1, GB1), clip_norm=limit))
    np.testing.assert_allclose(got[0], G1 * scale, rtol=rtol_for(dtype))
    np.testing.assert_allclose(got[1], GB1 * scale, rtol=rtol_for(dtype))
    total = math.sqrt(sum(float(np.sum(g ** 2)) for g in got))
    assert total == pytest.approx(min(norm, limit), rel=1e-5)


def test_clip_norm_of_zero_gradients_stays_zero(backend, dtype):
    got = _host(optim.clip_gradients(backend.xp, _arrays(backend, dtype, np.zeros((2, 2))), clip_norm=1.0))
    assert np.all(got[0] == 0)


@pytest.mark.parametrize("kwargs, word", [({"momentum": 1.0}, "momentum"), ({"momentum": -0.1}, "momentum"),
                                          ({"nesterov": True}, "nesterov"), ({"clip_value": 0.0}, "clip_value"),
                                          ({"clip_norm": -1.0}, "clip_norm")])
def test_optimizer_errors_name_the_argument(kwargs, word):
    with pytest.raises(XpnetValueError, match=word):
        optim.SGD(np, 1, **kwargs)


def test_clipping_needs_no_boolean_masks():
    """array-api-compat's ``clip`` indexes with boolean masks on some libraries (CuPy: a wait for
    the device per array per step): clipping is minimum/maximum with Python numbers instead."""
    import array_api_compat.numpy as compat

    class NoClip:
        def __getattr__(self, name):
            if name == "clip":
                raise AssertionError("clip_gradients called xp.clip")
            return getattr(compat, name)

    g = [np.array([-3.0, 0.05, 2.0]), np.array([[0.3]])]
    got = optim.clip_gradients(NoClip(), g, clip_value=0.1, clip_norm=0.12)
    clipped = [np.clip(a, -0.1, 0.1) for a in g]
    norm = np.sqrt(sum(np.sum(a * a) for a in clipped))
    for a, b in zip(got, clipped):
        np.testing.assert_allclose(a, b * (0.12 / max(norm, 0.12)), rtol=1e-15)
