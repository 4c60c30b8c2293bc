"""The gradient checker of bpcli/nn/gradcheck.py itself: it catches a wrong backward pass,
samples at most max_entries of a tensor, and its directional (fast) mode costs the same at
any size and still catches errors. (Its use on every layer, activation and loss is in
test_nn_gradients.py.)"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from bpcli.nn import Activation, Dense, Network
from bpcli.nn.gan import Gan
from bpcli.nn.gradcheck import check_generator_gradients, check_gradients
from bpcli.nn.losses import MeanSquaredError, SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy
from tests.test_nn_gradients import build


def wide_network() -> Network:
    layers = [Dense(300), Activation("tanh"), Dense(5), Activation("softmax")]
    return Network(layers, SoftmaxCrossEntropy(), (200,), np.random.default_rng(0), np.float64)


def test_directional_check_passes_and_counts_directions() -> None:
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(6, 200)), rng.integers(0, 5, 6)
    results = check_gradients(wide_network(), X, Y, directions=4, rng=rng)
    assert all(r.passed and r.directional for r in results)
    first = results[0]
    assert (first.checked, first.total, first.shape) == (4, 200 * 300, (200, 300))


def test_directional_check_catches_a_small_error(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Dense.backward

    def wrong(self: Dense, dY: np.ndarray) -> np.ndarray | None:
        dX = original(self, dY)
        self.grads["W"] *= 1.001  # a 0.1% error
        return dX

    monkeypatch.setattr(Dense, "backward", wrong)
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(6, 200)), rng.integers(0, 5, 6)
    results = check_gradients(wide_network(), X, Y, directions=2, rng=rng)
    assert [r.passed for r in results] == [False, True, False, True, True]


@pytest.fixture
def wrong_dense_backward(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dense layers whose weight gradient is 1% too large (biases and dX stay right)."""
    original = Dense.backward

    def slightly_wrong(self: Dense, dY: NDArray) -> NDArray | None:
        dX = original(self, dY)
        self.grads["W"] *= 1.01
        return dX
    monkeypatch.setattr(Dense, "backward", slightly_wrong)


@pytest.mark.usefixtures("wrong_dense_backward")
def test_checker_catches_a_wrong_dense_backward() -> None:
    rng = np.random.default_rng(13)
    network = build([Dense(4), Activation("tanh"), Dense(2)], MeanSquaredError(), 3, seed=14)
    checks = check_gradients(network, rng.normal(size=(5, 3)), rng.normal(size=(5, 2)))
    by_name = {(c.layer, c.name): c for c in checks}
    assert not by_name[("0 dense", "W")].passed
    assert not by_name[("1 dense", "W")].passed
    assert by_name[("0 dense", "W")].max_rel_error == pytest.approx(0.01 / 1.01, rel=1e-3)
    # Only W was tampered with: biases and the input gradient are still right.
    assert by_name[("0 dense", "b")].passed
    assert by_name[("1 dense", "b")].passed
    assert by_name[("input", "X")].passed


def test_checker_samples_at_most_max_entries() -> None:
    rng = np.random.default_rng(15)
    network = build([Dense(7), Activation("tanh"), Dense(2)], MeanSquaredError(), 5, seed=16)
    X = rng.normal(size=(4, 5))
    Y = rng.normal(size=(4, 2))
    checks = check_gradients(network, X, Y, max_entries=6, rng=np.random.default_rng(0))
    sizes = {("0 dense", "W"): 35, ("0 dense", "b"): 7, ("1 dense", "W"): 14,
             ("1 dense", "b"): 2, ("input", "X"): 20}
    assert {(c.layer, c.name): c.total for c in checks} == sizes
    for c in checks:
        assert c.checked == min(6, c.total), c
        assert int(np.prod(c.shape)) == c.total
        assert c.passed, c
    # check_gradients restores the first layer's training setting and the parameters.
    assert network.layers[0].needs_input_grad is False
    again = check_gradients(network, X, Y, max_entries=6, rng=np.random.default_rng(0))
    assert again == checks


def test_progress_is_told_before_each_tensor() -> None:
    """What ``bp gradcheck`` shows while it works: "3/5", with the tensor's name."""
    rng = np.random.default_rng(17)
    network = build([Dense(3), Activation("tanh"), Dense(2)], MeanSquaredError(), 2, seed=18)
    told: list[tuple[int, int, str]] = []
    checks = check_gradients(network, rng.normal(size=(3, 2)), rng.normal(size=(3, 2)),
                             on_tensor=lambda i, n, name: told.append((i, n, name)))
    assert told == [(1, 5, "0 dense W"), (2, 5, "0 dense b"), (3, 5, "1 dense W"),
                    (4, 5, "1 dense b"), (5, 5, "input X")]
    assert [f"{c.layer} {c.name}" for c in checks] == [name for _, _, name in told]


# -- a GAN's generator, checked through its discriminator ---------------------------------
def small_gan() -> Gan:
    rng = np.random.default_rng(19)
    generator = Network([Dense(4), Activation("tanh"), Dense(3)], MeanSquaredError(), (2,),
                        rng, np.float64)
    discriminator = Network([Dense(4), Activation("tanh"), Dense(1), Activation("sigmoid")],
                            SigmoidBinaryCrossEntropy(), (3,), rng, np.float64)
    return Gan(generator, discriminator, noise_size=2)


GENERATOR_TENSORS = [("generator 0 dense", "W", (2, 4)), ("generator 0 dense", "b", (4,)),
                     ("generator 1 dense", "W", (4, 3)), ("generator 1 dense", "b", (3,))]


def test_generator_check_passes_and_names_the_generators_tensors() -> None:
    gan = small_gan()
    noise = gan.draw_noise(5, np.random.default_rng(20)).astype(np.float32)
    told: list[tuple[int, int, str]] = []
    checks = check_generator_gradients(gan, noise,
                                       on_tensor=lambda i, n, name: told.append((i, n, name)))
    assert [(c.layer, c.name, c.shape) for c in checks] == GENERATOR_TENSORS
    assert told == [(i, 4, f"{layer} {key}")
                    for i, (layer, key, _) in enumerate(GENERATOR_TENSORS, 1)]
    for c in checks:
        assert c.passed and not c.directional, c
        assert c.checked == c.total == int(np.prod(c.shape))
        assert c.max_abs_error < 1e-8
    sampled = check_generator_gradients(gan, noise, max_entries=3)
    assert [c.checked for c in sampled] == [3, 3, 3, 3] and all(c.passed for c in sampled)
    fast = check_generator_gradients(gan, noise, directions=2)
    assert all(c.passed and c.directional and c.checked == 2 for c in fast)


@pytest.mark.usefixtures("wrong_dense_backward")
def test_generator_check_catches_a_wrong_backward() -> None:
    gan = small_gan()
    noise = gan.draw_noise(5, np.random.default_rng(21))
    for checks in (check_generator_gradients(gan, noise),
                   check_generator_gradients(gan, noise, directions=2)):
        assert [c.passed for c in checks] == [False, True, False, True]
