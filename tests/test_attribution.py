"""Gradients, templates, integrated gradients and preferred inputs against finite differences."""

import numpy as np
import pytest

from generator import attribution
from generator.train import init_params


@pytest.fixture(scope="module")
def net():
    rng = np.random.default_rng(0)
    p = attribution.as64(init_params(12, 7, 4, rng))
    p["W1"] *= 3  # a less linear network, so the tests can tell gradients from slopes
    return p, rng.random((9, 12))


def finite_difference(f, x, eps=1e-6):
    grad = np.zeros_like(x)
    for i in range(len(x)):
        e = np.zeros_like(x)
        e[i] = eps
        grad[i] = (f(x + e) - f(x - e)) / (2 * eps)
    return grad


def test_input_gradient_equals_finite_differences(net):
    p, X = net
    direction = np.array([0.0, 1.0, -1.0, 0.0])  # z1 - z2: the contrast of output 1 against output 2
    grads = attribution.input_gradient(p, X, direction)
    for x, g in zip(X, grads):
        numeric = finite_difference(lambda v: attribution.logits(p, v[None])[0] @ direction, x)
        np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-9)


def test_linearised_map_is_the_mean_gradient(net):
    """Template and contrast map equal the finite-difference gradient averaged over the images."""
    p, X = net
    for direction in (np.eye(4)[3], np.eye(4)[0] - np.eye(4)[2]):
        mean_sp = attribution.sigma_prime(p, X).mean(axis=0)
        got = attribution.linearised_map(p, direction, mean_sp)
        numeric = np.mean([finite_difference(lambda v: attribution.logits(p, v[None])[0] @ direction, x)
                           for x in X], axis=0)
        np.testing.assert_allclose(got, numeric, rtol=1e-6, atol=1e-9)


def test_integrated_gradients_are_complete(net):
    p, X = net
    for x in X:
        for d in range(4):
            ig = attribution.integrated_gradients(p, x, d)
            z = attribution.logits(p, np.stack([x, np.zeros_like(x)]))[:, d]
            assert ig.sum() == pytest.approx(z[0] - z[1], rel=1e-4, abs=1e-6)


def test_integrated_gradients_of_a_linear_network_are_weight_times_input():
    rng = np.random.default_rng(1)
    p = attribution.as64(init_params(6, 3, 2, rng))
    p["W1"] *= 1e-4  # hidden units stay in the sigmoid's linear middle: the network is nearly affine
    x = rng.random(6)
    grad = attribution.input_gradient(p, x[None], np.eye(2)[1])[0]
    np.testing.assert_allclose(attribution.integrated_gradients(p, x, 1), grad * x, rtol=1e-4)


def test_preferred_input_climbs_and_stays_an_image(net):
    p, X = net
    start = X.mean(axis=0)
    shape = (3, 4)
    preferred = attribution.preferred_inputs(p, start, shape)
    assert preferred.shape == (4, 12)
    for d in range(4):
        x = preferred[d]
        assert x.min() >= 0 and x.max() <= 1
        assert attribution.objective(p, d, x, start, shape) > attribution.objective(p, d, start, start, shape) + 1e-3
        # a local maximum of the box-constrained objective: no coordinate can still climb inside the box
        grad = finite_difference(lambda v: attribution.objective(p, d, v, start, shape), x)
        free = ((x > 1e-6) | (grad > 0)) & ((x < 1 - 1e-6) | (grad < 0))
        assert np.abs(grad[free]).max(initial=0) < 1e-3


def test_laplacian_is_the_gradient_of_the_roughness():
    rng = np.random.default_rng(2)
    x = rng.random(12)

    def roughness(v):
        img = v.reshape(3, 4)
        return 0.5 * (((img[1:] - img[:-1]) ** 2).sum() + ((img[:, 1:] - img[:, :-1]) ** 2).sum())

    np.testing.assert_allclose(attribution.laplacian(x, (3, 4)), finite_difference(roughness, x), atol=1e-8)
