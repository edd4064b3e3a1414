"""The tutorials' programs written out plainly in NumPy, as the references xpnet must match.

These follow the texts in ../shared/seeds line by line (Python 3 syntax, same operations,
same order); they are test oracles, not part of the package.
"""

import numpy as np

TABLE = np.array([[0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1]])
FIRST_COLUMN = np.array([[0, 0, 1, 1]]).T
XOR = np.array([[0, 1, 1, 0]]).T


def sigmoid(x):
    with np.errstate(over="ignore"):  # Trask's alpha=1000 run overflows exp; the result is 0
        return 1 / (1 + np.exp(-x))


def two_layer(init, iterations):
    """Trask part 1 / Cavar: 3 -> 1 sigmoid net; returns the last pass's output."""
    np.random.seed(1)
    if init == "trask":
        syn0 = 2 * np.random.random((3, 1)) - 1
    else:
        syn0 = np.random.random((3, 1)) * np.sqrt(2.0 / 3)
    for _ in range(iterations):
        l1 = sigmoid(np.dot(TABLE, syn0))
        l1_delta = (FIRST_COLUMN - l1) * (l1 * (1 - l1))
        syn0 += np.dot(TABLE.T, l1_delta)
    return l1


def three_layer(init, iterations, alpha=1.0, hidden=4):
    """Trask (parts 1 and 2) / Cavar: XOR 3 -> hidden -> 1; errors every 10,000, final weights."""
    np.random.seed(1)
    if init == "trask":
        syn0 = 2 * np.random.random((3, hidden)) - 1
        syn1 = 2 * np.random.random((hidden, 1)) - 1
    else:
        syn0 = np.random.random((3, hidden)) * np.sqrt(2.0 / 3)
        syn1 = np.random.random((hidden, 1)) * np.sqrt(2.0 / hidden)
    errors = []
    for j in range(iterations):
        l1 = sigmoid(np.dot(TABLE, syn0))
        l2 = sigmoid(np.dot(l1, syn1))
        l2_error = l2 - XOR
        if j % 10000 == 0:
            errors.append(float(np.mean(np.abs(l2_error))))
        l2_delta = l2_error * (l2 * (1 - l2))
        l1_delta = l2_delta.dot(syn1.T) * (l1 * (1 - l1))
        syn1 -= alpha * (l1.T.dot(l2_delta))
        syn0 -= alpha * (TABLE.T.dot(l1_delta))
    return errors, syn0, syn1


def wildml(X, y, hidden, passes=20000, epsilon=0.01, reg_lambda=0.01):
    """WildML's build_model with print_loss: the losses printed every 1,000 passes, and the model."""
    n = len(X)

    def calculate_loss(W1, b1, W2, b2):
        a1 = np.tanh(X.dot(W1) + b1)
        exp_scores = np.exp(a1.dot(W2) + b2)
        probs = exp_scores / np.sum(exp_scores, axis=1, keepdims=True)
        data_loss = np.sum(-np.log(probs[range(n), y]))
        data_loss += reg_lambda / 2 * (np.sum(np.square(W1)) + np.sum(np.square(W2)))
        return 1.0 / n * data_loss

    np.random.seed(0)
    W1 = np.random.randn(2, hidden) / np.sqrt(2)
    b1 = np.zeros((1, hidden))
    W2 = np.random.randn(hidden, 2) / np.sqrt(hidden)
    b2 = np.zeros((1, 2))
    losses = []
    for i in range(passes):
        z1 = X.dot(W1) + b1
        a1 = np.tanh(z1)
        exp_scores = np.exp(a1.dot(W2) + b2)
        probs = exp_scores / np.sum(exp_scores, axis=1, keepdims=True)
        delta3 = probs
        delta3[range(n), y] -= 1
        dW2 = (a1.T).dot(delta3)
        db2 = np.sum(delta3, axis=0, keepdims=True)
        delta2 = delta3.dot(W2.T) * (1 - np.power(a1, 2))
        dW1 = np.dot(X.T, delta2)
        db1 = np.sum(delta2, axis=0)
        dW2 += reg_lambda * W2
        dW1 += reg_lambda * W1
        W1 += -epsilon * dW1
        b1 += -epsilon * db1
        W2 += -epsilon * dW2
        b2 += -epsilon * db2
        if i % 1000 == 0:
            losses.append(float(calculate_loss(W1, b1, W2, b2)))
    a1 = np.tanh(X.dot(W1) + b1)
    accuracy = float(np.mean(np.argmax(a1.dot(W2) + b2, axis=1) == y))
    return losses, accuracy
