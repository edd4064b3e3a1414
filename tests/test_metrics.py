"""xpnet.metrics against values worked out by hand, and against scikit-learn where it is installed."""

import numpy as np
import pytest

from xpnet import XpnetValueError, metrics

Y_TRUE = [0, 0, 0, 1, 1, 2, 2, 2, 2]
Y_PRED = [0, 1, 0, 1, 2, 2, 2, 0, 2]


def test_classification_by_hand():
    # class 0: 3 true, predicted 3 times, 2 right; class 1: 2 true, predicted twice, 1 right;
    # class 2: 4 true, predicted 4 times, 3 right
    assert metrics.accuracy(Y_TRUE, Y_PRED) == 6 / 9
    assert metrics.confusion_matrix(Y_TRUE, Y_PRED).tolist() == [[2, 1, 0], [0, 1, 1], [1, 0, 3]]
    scores = metrics.precision_recall_f1(Y_TRUE, Y_PRED)
    np.testing.assert_allclose(scores["precision"], [2 / 3, 1 / 2, 3 / 4])
    np.testing.assert_allclose(scores["recall"], [2 / 3, 1 / 2, 3 / 4])
    np.testing.assert_allclose(scores["f1"], [2 / 3, 1 / 2, 3 / 4])
    assert scores["support"].tolist() == [3, 2, 4] and scores["support"].dtype == np.int64


def test_precision_differs_from_recall_and_empty_classes_score_zero():
    # class 1 is never predicted (precision 0/0 -> 0), class 2 never occurs (recall 0/0 -> 0)
    scores = metrics.precision_recall_f1([0, 0, 1, 1], [0, 0, 0, 2], n_classes=3)
    np.testing.assert_allclose(scores["precision"], [2 / 3, 0, 0])
    np.testing.assert_allclose(scores["recall"], [1, 0, 0])
    np.testing.assert_allclose(scores["f1"], [0.8, 0, 0])  # 2 * (2/3) * 1 / (2/3 + 1)
    assert scores["support"].tolist() == [2, 2, 0]
    assert metrics.confusion_matrix([0], [0], n_classes=3).shape == (3, 3)


def test_regression_by_hand():
    y, p = [1.0, 2.0, 3.0, 4.0], [1.5, 2.0, 2.0, 4.0]
    # residuals 0.5, 0, 1, 0: squares sum 1.25; mean of y 2.5, total 5
    assert metrics.r2(y, p) == pytest.approx(1 - 1.25 / 5)
    assert metrics.rmse(y, p) == pytest.approx(np.sqrt(1.25 / 4))
    assert metrics.mae(y, p) == pytest.approx(1.5 / 4)
    assert metrics.r2(y, y) == 1.0 and metrics.rmse(y, y) == 0.0
    assert metrics.r2(y, [2.5] * 4) == 0.0  # the mean scores 0
    assert metrics.r2([3.0, 3.0], [3.0, 3.0]) == 1.0 and metrics.r2([3.0, 3.0], [3.0, 4.0]) == 0.0


def test_two_outputs_average_the_per_output_scores():
    y = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    p = np.array([[1.0, 10.0], [2.0, 20.0], [4.0, 30.0]])
    assert metrics.r2(y, p) == pytest.approx((1 - 1 / 2 + 1) / 2)
    assert metrics.rmse(y, p) == pytest.approx((np.sqrt(1 / 3) + 0) / 2)


@pytest.mark.parametrize("call, match", [
    (lambda: metrics.accuracy([0, 1], [0]), "must match"),
    (lambda: metrics.confusion_matrix([0.5, 1], [0, 1]), "class indices"),
    (lambda: metrics.confusion_matrix([0, -1], [0, 1]), "class indices"),
    (lambda: metrics.confusion_matrix([0, 3], [0, 1], n_classes=2), "n_classes=2"),
    (lambda: metrics.r2([], []), "no samples"),
    (lambda: metrics.rmse(np.zeros((2, 2, 2)), np.zeros((2, 2, 2))), r"\(N,\) or \(N, K\)"),
])
def test_bad_inputs_are_clear_errors(call, match):
    with pytest.raises(XpnetValueError, match=match):
        call()


def test_agrees_with_scikit_learn():
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    assert metrics.accuracy(y, p) == skm.accuracy_score(y, p)
    assert (metrics.confusion_matrix(y, p) == skm.confusion_matrix(y, p)).all()
    ours = metrics.precision_recall_f1(y, p)
    theirs = skm.precision_recall_fscore_support(y, p, zero_division=0)
    for mine, sk in zip((ours["precision"], ours["recall"], ours["f1"], ours["support"]), theirs):
        np.testing.assert_allclose(mine, sk)
    values, guesses = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    for Y, P in ((values[:, 0], guesses[:, 0]), (values, guesses)):
        assert metrics.r2(Y, P) == pytest.approx(skm.r2_score(Y, P))
        assert metrics.rmse(Y, P) == pytest.approx(skm.root_mean_squared_error(Y, P))
        assert metrics.mae(Y, P) == pytest.approx(skm.mean_absolute_error(Y, P))
