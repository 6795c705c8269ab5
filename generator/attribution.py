"""Pixel-level explanations of the output units: gradients, integrated gradients, templates, preferred inputs.

All in float64 on one network given as a dict of W1 (H, D), b1 (H,), W2 (K, H), b2 (K,), or of any depth
(W1, b1, ..., W{L+1}, b{L+1}: network.py does the passes; one hidden layer keeps its own closed forms, so its
numbers keep their bits). The output explained is an output unit's pre-activation z2[d] (its logit), which
the sigmoid only squashes.
"""

from __future__ import annotations

import numpy as np

from . import activations, network


def as64(params: dict[str, np.ndarray], activation: str = "sigmoid") -> dict:
    """The params in float64, plus "activation": the hidden layer's (activations.HIDDEN), which every
    function here applies."""
    return {**{k: np.asarray(v, np.float64) for k, v in params.items()}, "activation": activation}


def weights(p: dict) -> dict[str, np.ndarray]:
    """The parameters alone, without the "activation" entry."""
    return {k: v for k, v in p.items() if k != "activation"}


def deep(p: dict) -> bool:
    return network.depth(weights(p)) > 1


def n_outputs(p: dict) -> int:
    return p[f"W{network.depth(weights(p)) + 1}"].shape[0]


def logits(p: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    """(N, D) inputs -> (N, K) output pre-activations."""
    if deep(p):
        return network.from_layer(weights(p), X, 0, p.get("activation", "sigmoid"))[2]
    return activations.apply(p.get("activation", "sigmoid"), X @ p["W1"].T + p["b1"]) @ p["W2"].T + p["b2"]


def sigma_prime(p: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    """(N, D) -> (N, H) derivative of each hidden unit's activation at each input (sigma' for sigmoid units)."""
    return activations.derivative(p.get("activation", "sigmoid"), X @ p["W1"].T + p["b1"])


def input_gradient(p: dict[str, np.ndarray], X: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """(N, D) gradient of direction . z2 with respect to each input: W1^T (sigma'(z1) * (direction @ W2)).

    direction (K,) picks the output combination: one-hot e_d for z2[d], e_d - e_r for a contrast.
    """
    if deep(p):
        return network.input_gradient(weights(p), X, direction, p.get("activation", "sigmoid"))
    return (sigma_prime(p, X) * (direction @ p["W2"])) @ p["W1"]


def linearised_map(p: dict[str, np.ndarray], direction: np.ndarray, mean_sigma_prime: np.ndarray) -> np.ndarray:
    """(D,) (direction @ W2) . diag(mean sigma') . W1: the mean input gradient over the images whose
    sigma' was averaged (the gradient is linear in sigma'). The template of d uses direction e_d,
    the contrast of d against r uses e_d - e_r."""
    return ((direction @ p["W2"]) * mean_sigma_prime) @ p["W1"]


def integrated_gradients(p: dict[str, np.ndarray], x: np.ndarray, d: int, steps: int = 256) -> np.ndarray:
    """(D,) integrated gradients of z2[d] at x from a black (all-zero) baseline, midpoint rule.

    Completeness: the attributions sum to z2[d](x) - z2[d](0) up to the quadrature error.
    """
    alphas = (np.arange(steps) + 0.5) / steps
    path = alphas[:, None] * x[None, :]  # (steps, D)
    direction = np.eye(n_outputs(p))[d]
    return x * input_gradient(p, path, direction).mean(axis=0)


def laplacian(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(..., D) graph Laplacian of images on their 4-neighbour grid: the gradient of
    1/2 * sum over neighbouring pixel pairs of (x_i - x_j)^2, for each image."""
    img = x.reshape(*x.shape[:-1], *shape)
    out = np.zeros_like(img)
    dv = img[..., 1:, :] - img[..., :-1, :]  # vertical neighbour differences
    dh = img[..., :, 1:] - img[..., :, :-1]
    out[..., 1:, :] += dv
    out[..., :-1, :] -= dv
    out[..., :, 1:] += dh
    out[..., :, :-1] -= dh
    return out.reshape(x.shape)


def preferred_inputs(p: dict[str, np.ndarray], start: np.ndarray, shape: tuple[int, int],
                     penalty: float = 0.5, smooth: float = 2.0, steps: int = 400, rate: float = 0.05) -> np.ndarray:
    """(K, D) for each output d, the input in [0, 1] that maximises `objective`, by projected gradient
    ascent from `start`; all outputs at once, so each step reads the weights once.

    The pull towards the mean image and the smoothness term keep the result image-like; the box
    [0, 1] keeps it a valid image. Deterministic: no randomness anywhere.
    """
    K = n_outputs(p)
    x = np.tile(start.astype(np.float64), (K, 1))  # (K, D) one image per output
    for _ in range(steps):
        if deep(p):
            pull = network.input_gradient(weights(p), x, np.eye(K), p.get("activation", "sigmoid"))
        else:
            pull = (sigma_prime(p, x) * p["W2"]) @ p["W1"]  # (K, D) row d: d z2[d] / dx at x[d]
        grad = pull - penalty * (x - start) - smooth * laplacian(x, shape)
        x = np.clip(x + rate * grad, 0.0, 1.0)
    return x


def objective(p: dict[str, np.ndarray], d: int, x: np.ndarray, start: np.ndarray, shape: tuple[int, int],
              penalty: float = 0.5, smooth: float = 2.0) -> float:
    """z2[d](x) - penalty/2 |x - start|^2 - smooth/2 * sum over neighbouring pixels of (x_i - x_j)^2."""
    img = x.reshape(shape)
    roughness = ((img[1:] - img[:-1]) ** 2).sum() + ((img[:, 1:] - img[:, :-1]) ** 2).sum()
    return float(logits(p, x[None, :])[0, d] - penalty / 2 * ((x - start) ** 2).sum() - smooth / 2 * roughness)
