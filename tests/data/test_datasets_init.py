"""Datasets (moons equal to scikit-learn's) and the tutorials' weight draws."""

import numpy as np
import pytest

import xpnet
from xpnet.core.init import initial_weights
from xpnet.data import datasets


@pytest.mark.parametrize("n, noise, seed", [(200, 0.2, 0), (201, 0.0, 5), (1000, 0.3, 123), (1, 0.1, 2)])
def test_moons_equals_scikit_learn(n, noise, seed):
    sk = pytest.importorskip("sklearn.datasets")
    X, y = datasets.moons(n, noise=noise, seed=seed)
    Xs, ys = sk.make_moons(n, noise=noise, random_state=seed)
    np.testing.assert_array_equal(X, Xs)
    np.testing.assert_array_equal(y, ys)


@pytest.mark.parametrize("name", ["moons", "circles", "spirals", "blobs"])
def test_generated_sets_are_seeded_and_shaped(name):
    X, y = datasets.load(name, n_samples=90, noise=0.1, seed=3)
    X2, y2 = datasets.load(name, n_samples=90, noise=0.1, seed=3)
    X3, _ = datasets.load(name, n_samples=90, noise=0.1, seed=4)
    assert X.shape == (90, 2) and y.shape == (90,) and X.dtype == np.float64
    assert np.array_equal(X, X2) and np.array_equal(y, y2) and not np.array_equal(X, X3)
    assert set(np.unique(y)) == set(range(int(y.max()) + 1))


def test_spirals_have_k_classes():
    _, y = datasets.load("spirals", n_samples=300, seed=0, classes=5)
    assert np.bincount(y).tolist() == [60] * 5


def test_tutorial_tables():
    X, y = datasets.xor()
    assert X[:, 2].tolist() == [1, 1, 1, 1] and y[:, 0].tolist() == [0, 1, 1, 0]
    assert datasets.first_column()[1][:, 0].tolist() == X[:, 0].tolist()


@pytest.mark.parametrize("bad", [dict(name="mnist"), dict(name="moons", n_samples=0), dict(name="moons", noise=-1.0)])
def test_bad_dataset_arguments(bad):
    with pytest.raises(xpnet.XpnetValueError):
        datasets.load(**bad)


def test_tutorial_inits_draw_the_tutorials_numbers():
    np.random.seed(1)
    syn0 = 2 * np.random.random((3, 4)) - 1
    syn1 = 2 * np.random.random((4, 1)) - 1
    got = initial_weights("trask", (3, 4, 1), 1)
    assert np.array_equal(got[0], syn0) and np.array_equal(got[1], syn1)
    np.random.seed(0)
    W1 = np.random.randn(2, 3) / np.sqrt(2)
    np.random.randn(3)  # WildML draws nothing between W1 and W2 -- b1 is zeros
    got = initial_weights("wildml", (2, 3, 2), 0)
    assert np.array_equal(got[0], W1)
    cavar = initial_weights("cavar", (3, 1), 1)[0]
    assert np.round(cavar[:, 0], 8).tolist() == [0.34049704, 0.58814249, 0.00009339]  # printed by Cavar


def test_other_schemes_have_the_documented_scale():
    he = initial_weights("he", (1000, 500), 0)[0]
    xavier = initial_weights("xavier", (300, 300), 0)[0]
    assert he.std() == pytest.approx(np.sqrt(2 / 1000), rel=0.02)
    assert np.abs(xavier).max() <= np.sqrt(6 / 600)
    assert initial_weights("auto", (3, 3), 0, "relu")[0].tolist() == initial_weights("he", (3, 3), 0)[0].tolist()
