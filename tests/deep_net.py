"""A small multi-layer network fitted with plain NumPy, saved as Nielsen's network2.save does: for the
deeper-network tests and for building a deeper atlas by hand (python -m tests.deep_net OUT.json)."""

from __future__ import annotations

import json
import sys

import numpy as np


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def fit(sizes, X, y, epochs=3, batch=10, lr=0.5, seed=0):
    """Mini-batch SGD on the cross-entropy of sigmoid outputs, Nielsen's initialiser; float64 lists of (out, in)
    weights and (out, 1) biases, as network2.save writes them."""
    rng = np.random.default_rng(seed)
    W = [rng.standard_normal((b, a)) / np.sqrt(a) for a, b in zip(sizes, sizes[1:])]
    B = [rng.standard_normal((b, 1)) for b in sizes[1:]]
    T = np.eye(sizes[-1])[y]
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for s in range(0, len(y), batch):
            idx = order[s:s + batch]
            acts = [X[idx].T]  # (D, n)
            for w, b in zip(W, B):
                acts.append(sigmoid(w @ acts[-1] + b))
            delta = acts[-1] - T[idx].T  # cross-entropy with sigmoid outputs
            for i in range(len(W) - 1, -1, -1):
                gw, gb = delta @ acts[i].T / len(idx), delta.mean(axis=1, keepdims=True)
                if i:
                    delta = (W[i].T @ delta) * acts[i] * (1 - acts[i])
                W[i] -= lr * gw
                B[i] -= lr * gb
    return {"sizes": list(sizes), "weights": [w.tolist() for w in W], "biases": [b.tolist() for b in B],
            "cost": "CrossEntropyCost"}


def accuracy(net: dict, X, y) -> float:
    """The independent evaluation: float64 forward pass of the JSON's own lists."""
    a = X.T
    for w, b in zip(net["weights"], net["biases"]):
        a = sigmoid(np.array(w) @ a + np.array(b))
    return float((a.argmax(axis=0) == y).mean())


if __name__ == "__main__":
    from generator.config import REPO
    from generator.data import load_dataset
    data = load_dataset(REPO / "data" / "mnist", None, 10000, 0)
    net = fit([784, 30, 30, 10], data.train_images, data.train_labels, epochs=3)
    with open(sys.argv[1], "w") as f:
        json.dump(net, f)
    print("test accuracy", accuracy(net, data.test_images, data.test_labels))
