"""Analysis functions against brute-force loops."""

import math

import numpy as np
import pytest

from generator import stats


def test_class_means_equal_a_loop():
    rng = np.random.default_rng(0)
    values, labels = rng.random((50, 4)), rng.integers(0, 3, 50)
    got = stats.class_means(values, labels, 3)
    for c in range(4):
        for k in range(3):
            rows = [values[i, c] for i in range(50) if labels[i] == k]
            assert math.isclose(got[c, k], sum(rows) / len(rows), rel_tol=1e-12)


def test_per_class_accuracy_equals_counting():
    predicted = np.array([0, 1, 1, 2, 2, 2, 0])
    labels = np.array([0, 1, 2, 2, 2, 1, 1])
    np.testing.assert_allclose(stats.per_class_accuracy(predicted, labels, 3), [1 / 1, 1 / 3, 2 / 3])


def test_typical_example_is_nearest_to_the_mean():
    images = np.array([[0.0, 0.0], [1.0, 1.0], [0.4, 0.6], [5.0, 5.0], [5.1, 5.0]])
    labels = np.array([0, 0, 0, 1, 1])
    means = np.array([[0.5, 0.5], [5.0, 5.0]])
    assert stats.typical_examples(images, labels, means) == [2, 3]


def test_extremes_equal_sorting_each_column():
    rng = np.random.default_rng(2)
    A = rng.random((40, 3))
    A[5, 0] = A[6, 0] = 2.0  # a tie: the lower index comes first
    top, bottom = stats.extremes(A, 4)
    for j in range(3):
        col = [(A[i, j], i) for i in range(40)]
        assert top[j].tolist() == [i for _, i in sorted(col, key=lambda t: (-t[0], t[1]))[:4]]
        assert bottom[j].tolist() == [i for _, i in sorted(col, key=lambda t: (t[0], t[1]))[:4]]
    assert top[0, :2].tolist() == [5, 6]


def test_histograms_equal_a_loop():
    rng = np.random.default_rng(3)
    A = rng.random((200, 4))
    A[0, 0], A[1, 0], A[2, 0] = 1.0, 0.0, 0.5  # edges: 1 goes to the last bin, 0.5 starts bin 10
    labels = rng.integers(0, 3, 200)
    got = stats.histograms(A, labels, 3, 20)
    want = np.zeros((4, 3, 20), int)
    for n in range(200):
        for j in range(4):
            b = min(int(A[n, j] * 20), 19)
            want[j, labels[n], b] += 1
    np.testing.assert_array_equal(got, want)
    assert got.sum() == 800 and got[0, labels[2], 10] >= 1


def test_saturation_and_flags():
    A = np.array([[0.995, 0.001, 0.5, 0.005], [0.999, 0.002, 0.2, 0.004], [0.5, 0.003, 0.995, 0.2]])
    above, below = stats.saturation(A)
    np.testing.assert_allclose(above, [2 / 3, 0, 1 / 3, 0])
    np.testing.assert_allclose(below, [0, 1, 0, 2 / 3])


def pearson(x, y):
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / math.sqrt((x * x).sum() * (y * y).sum()))


def test_most_similar_equals_pearson_by_hand():
    rng = np.random.default_rng(4)
    M = rng.standard_normal((7, 30))
    M[3] = 2 * M[1] + 1 + 0.01 * rng.standard_normal(30)  # almost perfectly correlated with row 1
    M[5] = 0.0  # no variance: never listed, lists nothing
    got = stats.most_similar(M, 3)
    for j in range(7):
        if j == 5:
            assert got[j] == []
            continue
        scores = sorted(((pearson(M[j], M[i]), i) for i in range(7) if i not in (j, 5)), key=lambda t: (-t[0], t[1]))
        assert [i for i, _ in got[j]] == [i for _, i in scores[:3]]
        for (i, r), (r_want, _) in zip(got[j], scores):
            assert r == pytest.approx(r_want, abs=1e-12)
    assert got[1][0][0] == 3 and got[1][0][1] == pytest.approx(1.0, abs=1e-3)


def test_patterns_equal_a_loop():
    rng = np.random.default_rng(5)
    X, A = rng.random((30, 6)), rng.random((30, 2))
    top, _ = stats.extremes(A, 4)
    got = stats.patterns(A, X, top)
    for j in range(2):
        chosen = sorted(range(30), key=lambda n: -A[n, j])[:4]
        want = sum(X[n] for n in chosen) / 4 - sum(X) / 30
        np.testing.assert_allclose(got[j], want, atol=1e-12)


def test_ablation_counts_match_a_full_reevaluation():
    from generator.effects import pinned_each

    rng = np.random.default_rng(6)
    N, H, K = 300, 12, 4
    A1, W2, b2 = rng.random((N, H)), rng.standard_normal((K, H)) * 3, rng.standard_normal(K)
    y = rng.integers(0, K, N)
    Z2 = A1 @ W2.T + b2
    fill = A1.mean(axis=0)
    got = pinned_each(Z2, A1, W2, fill, y, K)[1]
    assert got.dtype == np.int64 and got.shape == (H, K)
    for j in range(H):
        ablated = A1.copy()
        ablated[:, j] = fill[j]
        predicted = (ablated @ W2.T + b2).argmax(axis=1)
        for k in range(K):
            assert got[j, k] == sum(1 for n in range(N) if y[n] == k and predicted[n] == k)
