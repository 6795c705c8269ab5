"""Analysis functions against brute-force loops."""

import math

import numpy as np

from generator import analysis


def test_class_means_equal_a_loop():
    rng = np.random.default_rng(0)
    values, labels = rng.random((50, 4)), rng.integers(0, 3, 50)
    got = analysis.class_means(values, labels, 3)
    for c in range(4):
        for k in range(3):
            rows = [values[i, c] for i in range(50) if labels[i] == k]
            assert math.isclose(got[c, k], sum(rows) / len(rows), rel_tol=1e-12)


def test_contributions_and_top_k_equal_a_loop():
    rng = np.random.default_rng(1)
    W2, means = rng.standard_normal((10, 30)), rng.random((30, 10))
    got = analysis.contributions(W2, means)
    for d in range(10):
        pairs = [(W2[d, j] * means[j, d], j) for j in range(30)]
        for j in range(30):
            assert math.isclose(got[d, j], pairs[j][0], rel_tol=1e-12)
        best = [j for c, j in sorted(pairs, key=lambda p: -p[0]) if c > 0][:5]
        worst = [j for c, j in sorted(pairs, key=lambda p: p[0]) if c < 0][:5]
        assert analysis.top_positive(got[d], 5) == best
        assert analysis.top_negative(got[d], 5) == worst


def test_top_k_keeps_only_the_right_sign_and_breaks_ties_by_index():
    row = np.array([0.5, -1.0, 0.5, 0.0, 2.0])
    assert analysis.top_positive(row, 10) == [4, 0, 2]
    assert analysis.top_negative(row, 10) == [1]
    assert analysis.top_positive(row, 2) == [4, 0]


def test_per_class_accuracy_equals_counting():
    predicted = np.array([0, 1, 1, 2, 2, 2, 0])
    labels = np.array([0, 1, 2, 2, 2, 1, 1])
    np.testing.assert_allclose(analysis.per_class_accuracy(predicted, labels, 3), [1 / 1, 1 / 3, 2 / 3])


def test_typical_example_is_nearest_to_the_mean():
    images = np.array([[0.0, 0.0], [1.0, 1.0], [0.4, 0.6], [5.0, 5.0], [5.1, 5.0]])
    labels = np.array([0, 0, 0, 1, 1])
    means = np.array([[0.5, 0.5], [5.0, 5.0]])
    assert analysis.typical_examples(images, labels, means) == [2, 3]
