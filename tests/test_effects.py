"""The measured effects (generator/effects.py), the shown extremes and the summaries, each against a loop."""

import numpy as np
import pytest

from generator import effects, prose
from generator import stats
from generator.atlas import ImageRef, Neuron


def margin_by_loop(z, label):
    return z[label] - max(z[k] for k in range(len(z)) if k != label)


def network(seed=0, N=300, H=12, K=4):
    rng = np.random.default_rng(seed)
    A1, W2, b2 = rng.random((N, H)), rng.standard_normal((K, H)) * 3, rng.standard_normal(K)
    y = rng.integers(0, K, N)
    return A1, W2, b2, y, A1 @ W2.T + b2


def test_margins_equal_a_loop():
    _, _, _, y, Z = network()
    got = effects.margins(Z, y)
    for n in range(len(y)):
        assert got[n] == pytest.approx(margin_by_loop(Z[n], y[n]), abs=1e-12)


def test_margin_effects_equal_re_evaluating_the_network_with_one_neuron_pinned():
    A1, W2, b2, y, Z = network()
    fill = A1.mean(axis=0)
    got = effects.margin_effects(Z, A1, W2, fill, y, 4)
    for j in range(A1.shape[1]):
        pinned = A1.copy()
        pinned[:, j] = fill[j]
        Zp = pinned @ W2.T + b2
        for d in range(4):
            drops = [margin_by_loop(Z[n], d) - margin_by_loop(Zp[n], d) for n in range(len(y)) if y[n] == d]
            assert got[j, d] == pytest.approx(sum(drops) / len(drops), abs=1e-9)


def test_the_ranking_follows_the_effect_not_the_raw_contribution():
    """A neuron that is on for every class has the largest raw contribution to class 0 and no effect on it;
    the ranking must name the neuron that actually tells class 0 apart (the one it would swap back to fails)."""
    N = 200
    y = np.arange(N) % 2
    A1 = np.zeros((N, 2))
    A1[:, 0] = 0.9  # always on: raw contribution W2[0, 0] * 0.9 is large, but pinning it changes nothing
    A1[:, 1] = np.where(y == 0, 0.8, 0.1)  # on for class 0 only
    W2 = np.array([[5.0, 2.0], [0.0, 0.0]])
    Z = A1 @ W2.T
    raw, disc = effects.logit_terms(W2, stats.class_means(A1, y, 2), A1.mean(axis=0))
    assert effects.ranked(raw[0], 2) == [0, 1]  # the naive ranking puts the constant neuron first
    effect = effects.margin_effects(Z, A1, W2, A1.mean(axis=0), y, 2)
    assert effects.ranked(effect[:, 0], 2) == [1]  # the measured one names only the informative neuron
    assert effect[0, 0] == pytest.approx(0.0, abs=1e-12)
    assert disc[0, 1] == pytest.approx(2.0 * (0.8 - 0.45)) and disc[0, 0] == pytest.approx(0.0, abs=1e-12)


def test_raw_and_discriminative_terms_equal_a_loop():
    A1, W2, _, y, _ = network(1)
    means = stats.class_means(A1, y, 4)
    raw, disc = effects.logit_terms(W2, means, A1.mean(axis=0))
    for d in range(4):
        for j in range(A1.shape[1]):
            on_d = [A1[n, j] for n in range(len(y)) if y[n] == d]
            assert raw[d, j] == pytest.approx(W2[d, j] * sum(on_d) / len(on_d), abs=1e-12)
            assert disc[d, j] == pytest.approx(W2[d, j] * (sum(on_d) / len(on_d) - A1[:, j].mean()), abs=1e-12)


def test_ranked_keeps_the_sign_and_breaks_ties_by_index():
    row = np.array([0.5, -1.0, 0.5, 0.0, 2.0])
    assert effects.ranked(row, 10) == [4, 0, 2]
    assert effects.ranked(row, 10, sign=-1) == [1]
    assert effects.ranked(row, 2) == [4, 0]


def test_pinning_several_neurons_equals_a_loop():
    A1, W2, b2, y, Z = network(2)
    fill = A1.mean(axis=0)
    for neurons in ([3], [0, 5, 7], []):
        got = effects.pin(Z, A1, W2, fill, y, 2, neurons)
        pinned = A1.copy()
        pinned[:, neurons] = fill[neurons]
        Zp = pinned @ W2.T + b2
        mine = [n for n in range(len(y)) if y[n] == 2]
        change = sum(margin_by_loop(Zp[n], 2) - margin_by_loop(Z[n], 2) for n in mine) / len(mine)
        assert got.margin_change == pytest.approx(change, abs=1e-9)
        assert got.accuracy == pytest.approx(sum(int(np.argmax(Zp[n]) == 2) for n in mine) / len(mine))


def test_random_baseline_draws_outside_the_top_k_and_reports_percentiles():
    A1, W2, b2, y, Z = network(3)
    fill = A1.mean(axis=0)
    top = [1, 4, 6]
    drawn, pool, margin, accuracy = effects.random_baseline(Z, A1, W2, fill, y, 1, top, 3, 50, [7, 1])
    assert drawn == 50 and pool == 9
    rng = np.random.default_rng([7, 1])
    outside = [j for j in range(12) if j not in top]
    changes, accs = [], []
    for _ in range(50):
        chosen = sorted(rng.choice(outside, size=3, replace=False).tolist())
        assert not set(chosen) & set(top)
        r = effects.pin(Z, A1, W2, fill, y, 1, chosen)
        changes.append(r.margin_change)
        accs.append(r.accuracy)
    np.testing.assert_allclose(margin, np.percentile(changes, [5, 50, 95]))
    np.testing.assert_allclose(accuracy, np.percentile(accs, [5, 50, 95]))
    assert margin[0] <= margin[1] <= margin[2]
    assert effects.random_baseline(Z, A1, W2, fill, y, 1, list(range(10)), 3, 50, 0)[:2] == (0, 2)  # too few: no draws
    assert not effects.random_baseline(Z, A1, W2, fill, y, 1, list(range(10)), 3, 50, 0)[2].any()


def test_net_pushes_add_up_to_the_logit_gap():
    A1, W2, b2, y, Z = network(4)
    for n in range(20):
        a, label = A1[n], int(y[n])
        predicted = int(np.argmax(Z[n]))
        other = (label + 1) % 4 if predicted == label else predicted
        to_pred, to_true, net = effects.net_pushes(a, W2, other, label)
        for j in range(12):
            assert to_pred[j] == pytest.approx(W2[other, j] * a[j]) and to_true[j] == pytest.approx(W2[label, j] * a[j])
        assert net.sum() + b2[other] - b2[label] == pytest.approx(Z[n, other] - Z[n, label], abs=1e-9)


def test_largest_remainder_by_hand():
    np.testing.assert_array_equal(stats.largest_remainder(np.array([10, 5, 1]), 4), [3, 1, 0])
    np.testing.assert_array_equal(stats.largest_remainder(np.array([1, 1, 1]), 2), [1, 1, 0])  # ties: lower index
    np.testing.assert_array_equal(stats.largest_remainder(np.array([0, 2, 0]), 16), [0, 2, 0])
    counts = np.array([734, 209, 100, 3, 0])
    seats = stats.largest_remainder(counts, 16)
    assert seats.sum() == 16 and all(abs(s - 16 * c / counts.sum()) < 1 for s, c in zip(seats, counts))


def test_shown_extremes_take_the_strongest_or_sample_a_saturated_set_by_class():
    z = np.array([5.0, 9.0, 1.0, 9.0, 7.0, 3.0])
    labels = np.array([0, 1, 1, 0, 1, 0])
    tied = np.zeros(6, bool)
    assert stats.shown_extremes(z, tied, labels, 2, 3, highest=True) == ([1, 3, 4], False)
    assert stats.shown_extremes(z, tied, labels, 2, 3, highest=False) == ([2, 5, 0], False)
    # 10 images tied at saturation, 7 of class 0 and 3 of class 1; show 4: seats 3 and 1 (2.8 and 1.2)
    z = np.arange(10.0)[::-1] + 20  # image 0 strongest
    labels = np.array([1, 0, 0, 1, 0, 0, 1, 0, 0, 0])
    shown, sampled = stats.shown_extremes(z, np.ones(10, bool), labels, 2, 4, highest=True)
    assert sampled and shown == [0, 1, 2, 4]  # class 1's strongest (0), class 0's three strongest (1, 2, 4)


def test_near_constant_neurons_are_flagged():
    assert stats.saturation_flag(0, 1, True, 0.0) == "dead"
    assert stats.saturation_flag(0, 0, False, 0.003) == "near-constant"
    assert stats.saturation_flag(0, 0.96, False, 0.2) == "nearly always off"
    assert stats.saturation_flag(0.95, 0, False, 0.2) == "nearly always on"
    assert stats.saturation_flag(0.5, 0.4, False, 0.2) == ""


def neuron(**fields):
    base = dict(id=0, bias=0.0, output_weights=[0.0] * 4, mean_activation=[0.76, 0.3, 0.05, 0.2],
                contribution=[0.0] * 4, discriminative=[0.0] * 4, effect=[1.19, -0.2, 0.0, 0.01],
                effect_largest=1.19, effect_largest_digit=0, activation_mean=0.3, activation_std=0.2,
                weights=[[0.0]], weight_max_abs=0.5, fires_most_for=0, fires_for=[0], silent_for=[2],
                promotes=[], suppresses=[], top_contributor_of=[], top_suppressor_of=[],
                top_images=[ImageRef(i, 1 if i else 0, 0.99, 4.0) for i in range(16)], bottom_images=[],
                saturated=[0, 0, 0, 0], silenced=[0, 0, 0, 0], top_images_sampled=False,
                bottom_images_sampled=False, histogram=[], histogram_peak=0, share_above=0.0, share_below=0.0,
                flag="", ablation=[0.0] * 4, ablation_overall=0.0, ablation_cost=0.0, ablation_cost_digit=0,
                similar_by_weights=[], similar_by_activation=[])
    base.update(fields)
    return Neuron(**base)


def test_summaries_say_what_their_claims_rest_on():
    cls = ["a", "b", "c", "d"]
    # mean and top images disagree (neuron 042's case): the sentence says both and marks the contrast
    assert prose.neuron_summary(neuron(), cls, 0.6, "digits") == (
        "On average fires for a (mean 0.76); but 15 of its 16 strongest responses are b; silent on average for c. "
        "Pinning it to its mean lowers the margin of a most (−1.19) and raises that of b most (+0.20).")
    broad = prose.neuron_summary(neuron(fires_for=[0, 1, 3, 2]), cls, 0.6, "digits")
    assert broad.startswith("Fires broadly: mean activation in the upper half of its range on 4 of 4 digits (highest a, b and d)")
    sampled = prose.neuron_summary(neuron(top_images_sampled=True, saturated=[3, 700, 0, 31]), cls, 0.6)
    assert "734 test images saturate it (≥ 0.9995), most of them b (700)" in sampled
    flat = prose.neuron_summary(neuron(flag="near-constant", activation_mean=0.047, activation_std=0.003,
                                       weight_max_abs=0.008), cls, 0.656)
    assert flat.startswith("Near-constant: its activation stays at 0.047 ± 0.003") and "82× below" in flat
    quiet = prose.neuron_summary(neuron(effect=[0.01, -0.01, 0.0, 0.0]), cls, 0.6)
    assert quiet.endswith("Pinning it to its mean changes no class's margin by 0.05 or more.")
    assert prose.neuron_summary(neuron(flag="dead"), cls, 0.6).startswith("Dead: below 0.01 on every test image")
