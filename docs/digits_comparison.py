"""Digits: xpnet's default configuration against scikit-learn's MLPClassifier, same hidden size.

    python docs/digits_comparison.py

Same data for both: scikit-learn's 8x8 digits, pixels / 16, the 75/25 split that
`xpnet train --dataset digits` uses (xpnet.data.preprocess.split, seed 0: 1348 training, 449 test
rows).
xpnet: the `xpnet train` defaults (32 tanh units, softmax, learning rate 0.5, 2000 full-batch
epochs, float32) for weight seeds 0..4. scikit-learn: MLPClassifier(hidden_layer_sizes=(32,))
with its own defaults (adam, learning rate 0.001, 200 epochs of minibatches of 200) for
random_state 0..4.
"""

import time
import warnings

import numpy as np

import xpnet
from xpnet.data.datasets import load_digits
from xpnet.data.preprocess import split


def main():
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    X, y = load_digits()
    X_train, y_train, X_test, y_test = split(X, y, 0.25, seed=0)
    ours, theirs = [], []
    with xpnet.limit_threads(1):
        for seed in range(5):
            start = time.perf_counter()
            model = xpnet.MLP([64, 32, 10], activation="tanh", backend="numpy", seed=seed)
            model.fit(X_train, y_train, epochs=2000, learning_rate=0.5)
            ours.append(model.accuracy(X_test, y_test))
            middle = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)  # 200 epochs is its default
                clf = MLPClassifier(hidden_layer_sizes=(32,), random_state=seed).fit(X_train, y_train)
            theirs.append(clf.score(X_test, y_test))
            print(f"seed {seed}: xpnet {ours[-1]:.4f} ({middle - start:.1f} s)   "
                  f"scikit-learn {theirs[-1]:.4f} ({time.perf_counter() - middle:.1f} s)")
    for name, accs in (("xpnet", ours), ("scikit-learn", theirs)):
        print(f"{name:<13} mean {np.mean(accs):.4f}  min {np.min(accs):.4f}  max {np.max(accs):.4f}")


if __name__ == "__main__":
    main()
