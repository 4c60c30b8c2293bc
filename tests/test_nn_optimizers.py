"""The optimizers of bpcli/nn/optimizers.py against numbers worked out by hand from the
update rules in their docstrings (SGD with momentum and Nesterov, Adam, Adagrad, RMSprop,
AdamW, Nadam and iRprop-); state round trips, dtypes, allocations and validation.

Throughout: w = [1.0, -2.0], gradients G1 = [0.5, 0.25] then G2 = [-1.0, 0.5], learning
rate lr = 0.1.
"""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import Callable

import numpy as np
import pytest
from numpy.typing import NDArray

from bpcli.nn import OPTIMIZERS, Optimizer
from bpcli.nn.optimizers import SGD, Adagrad, Adam, AdamW, Nadam, RMSprop, Rprop

Floats = NDArray[np.floating]

W0 = [1.0, -2.0]
G1 = [0.5, 0.25]
G2 = [-1.0, 0.5]


def run(optimizer: Optimizer, gradients: list[list[float]], w0: list[float] = W0) -> list[Floats]:
    """The weights after each step, starting from ``w0``."""
    w: Floats = np.array(w0)
    history = []
    for g in gradients:
        optimizer.step([w], [np.array(g)])
        history.append(w.copy())
    return history


def close(actual: Floats, expected: list[float], atol: float = 1e-9) -> None:
    np.testing.assert_allclose(actual, expected, rtol=0, atol=atol)


def test_the_table_lists_every_optimizer() -> None:
    assert sorted(OPTIMIZERS) == ["adagrad", "adam", "adamw", "nadam", "rmsprop", "rprop", "sgd"]
    for name, cls in OPTIMIZERS.items():
        assert cls.name == name
        assert cls.__doc__ and "<-" in cls.__doc__  # the update rule is written down


# -- SGD -----------------------------------------------------------------------------
def test_plain_sgd() -> None:
    opt = SGD(learning_rate=0.1)
    w1, w2 = run(opt, [G1, G1])
    # w <- w - lr g:  1 - 0.05 = 0.95;  -2 - 0.025 = -2.025
    np.testing.assert_allclose(w1, [0.95, -2.025], rtol=0, atol=1e-12)
    # again:          0.95 - 0.05 = 0.9;  -2.025 - 0.025 = -2.05
    np.testing.assert_allclose(w2, [0.9, -2.05], rtol=0, atol=1e-12)
    assert opt.iterations == 2


def test_sgd_momentum() -> None:
    opt = SGD(learning_rate=0.1, momentum=0.9)
    w1, w2 = run(opt, [G1, G1])
    # v1 = 0.9*0 - 0.1*g = [-0.05, -0.025];  w1 = w + v1 = [0.95, -2.025]
    np.testing.assert_allclose(w1, [0.95, -2.025], rtol=0, atol=1e-12)
    # v2 = 0.9*v1 - 0.1*g = [-0.045 - 0.05, -0.0225 - 0.025] = [-0.095, -0.0475]
    # w2 = w1 + v2 = [0.95 - 0.095, -2.025 - 0.0475] = [0.855, -2.0725]
    np.testing.assert_allclose(w2, [0.855, -2.0725], rtol=0, atol=1e-12)
    np.testing.assert_allclose(opt.velocities[0], [-0.095, -0.0475], rtol=0, atol=1e-12)


def test_sgd_nesterov() -> None:
    opt = SGD(learning_rate=0.1, momentum=0.9, nesterov=True)
    w1, w2 = run(opt, [G1, G1])
    # v1 = [-0.05, -0.025]
    # w1 = w + 0.9*v1 - 0.1*g = [1 - 0.045 - 0.05, -2 - 0.0225 - 0.025] = [0.905, -2.0475]
    np.testing.assert_allclose(w1, [0.905, -2.0475], rtol=0, atol=1e-12)
    # v2 = [-0.095, -0.0475]
    # w2 = w1 + 0.9*v2 - 0.1*g = [0.905 - 0.0855 - 0.05, -2.0475 - 0.04275 - 0.025]
    #    = [0.7695, -2.11525]
    np.testing.assert_allclose(w2, [0.7695, -2.11525], rtol=0, atol=1e-12)


def test_sgd_with_different_gradients() -> None:
    opt = SGD(learning_rate=0.1, momentum=0.5)
    _, w2 = run(opt, [G1, G2])
    # v1 = [-0.05, -0.025], w1 = [0.95, -2.025]
    # v2 = 0.5*v1 - 0.1*G2 = [-0.025 + 0.1, -0.0125 - 0.05] = [0.075, -0.0625]
    # w2 = [0.95 + 0.075, -2.025 - 0.0625] = [1.025, -2.0875]
    np.testing.assert_allclose(w2, [1.025, -2.0875], rtol=0, atol=1e-12)


# -- Adam ----------------------------------------------------------------------------
def test_adam_first_step_moves_each_weight_by_about_lr() -> None:
    opt = Adam(learning_rate=0.1)  # beta1 0.9, beta2 0.999, epsilon 1e-8
    (w1,) = run(opt, [G1])
    # m = 0.1 g, v = 0.001 g^2; bias-corrected: m_hat = g, v_hat = g^2, sqrt(v_hat) = |g|
    # step = lr * g / (|g| + 1e-8) = 0.1 * sign(g) * (1 - 1e-8/|g|)
    #   w1[0] = 1 - 0.1 * 0.5 / (0.5 + 1e-8)    = 0.900000002
    #   w1[1] = -2 - 0.1 * 0.25 / (0.25 + 1e-8) = -2.099999996
    np.testing.assert_allclose(w1, [0.900000002, -2.099999996], rtol=0, atol=1e-12)
    np.testing.assert_allclose(opt.m[0], [0.05, 0.025], rtol=1e-12)
    np.testing.assert_allclose(opt.v[0], [0.00025, 0.0000625], rtol=1e-12)
    assert opt.iterations == 1


def test_adam_second_step_same_gradient() -> None:
    (_, w2) = run(Adam(learning_rate=0.1), [G1, G1])
    # With a constant gradient the bias-corrected moments stay m_hat = g, v_hat = g^2:
    #   m2 = 0.9*0.05 + 0.1*0.5 = 0.095, m2 / (1 - 0.81) = 0.5
    #   v2 = 0.999*0.00025 + 0.001*0.25 = 0.00049975, / (1 - 0.998001) = 0.25
    # so again each weight moves by ~0.1: [0.8, -2.2] (to within 1e-8 of epsilon effects)
    np.testing.assert_allclose(w2, [0.8, -2.2], rtol=0, atol=1e-7)


def test_adam_second_step_different_gradient() -> None:
    opt = Adam(learning_rate=0.1)
    (_, w2) = run(opt, [G1, G2])
    # entry 0: m2 = 0.9*0.05 + 0.1*(-1) = -0.055;        m_hat = -0.055 / 0.19 = -0.2894737
    #          v2 = 0.999*0.00025 + 0.001*1 = 0.00124975; v_hat = v2 / 0.001999 = 0.6251876
    #          sqrt(v_hat) = 0.7906881; step = 0.1 * -0.2894737 / 0.7906881 = -0.0366104
    #          w2 = 0.900000002 + 0.0366104 = 0.9366104
    # entry 1: m2 = 0.9*0.025 + 0.1*0.5 = 0.0725;        m_hat = 0.0725 / 0.19 = 0.3815789
    #          v2 = 0.999*0.0000625 + 0.001*0.25 = 0.0003124375; v_hat = 0.1562969
    #          sqrt(v_hat) = 0.3953440; step = 0.1 * 0.3815789 / 0.3953440 = 0.0965182
    #          w2 = -2.099999996 - 0.0965182 = -2.1965182
    np.testing.assert_allclose(w2, [0.9366104, -2.1965182], rtol=0, atol=2e-7)
    np.testing.assert_allclose(opt.m[0], [-0.055, 0.0725], rtol=1e-12)
    np.testing.assert_allclose(opt.v[0], [0.00124975, 0.0003124375], rtol=1e-12)


def test_updates_are_in_place_on_every_tensor() -> None:
    w: Floats = np.array(W0)
    b: Floats = np.array([0.0])
    w_id, b_id = id(w), id(b)
    opt = Adam(learning_rate=0.1)
    opt.step([w, b], [np.array(G1), np.array([-3.0])])
    assert (id(w), id(b)) == (w_id, b_id)
    np.testing.assert_allclose(w, [0.9, -2.1], atol=1e-7)
    np.testing.assert_allclose(b, [0.1], atol=1e-7)  # -3 < 0: b moves up by ~lr


# -- Adagrad -------------------------------------------------------------------------
def test_adagrad_defaults() -> None:
    opt = Adagrad()
    assert (opt.learning_rate, opt.epsilon, opt.initial_accumulator) == (0.01, 1e-7, 0.1)


def test_adagrad_two_steps() -> None:
    opt = Adagrad(learning_rate=0.1)  # epsilon 1e-7, accumulator from 0.1
    w1, w2 = run(opt, [G1, G2])
    # a1 = 0.1 + g^2 = [0.1 + 0.25, 0.1 + 0.0625] = [0.35, 0.1625]
    # sqrt(a1) = [0.5916079783, 0.4031128874]
    # w1 = [1 - 0.1 * 0.5 / (0.5916079783 + 1e-7), -2 - 0.1 * 0.25 / (0.4031128874 + 1e-7)]
    #    = [1 - 0.0845154112, -2 - 0.0620173519] = [0.9154845888, -2.0620173519]
    close(w1, [0.9154845888, -2.0620173519])
    # a2 = a1 + G2^2 = [0.35 + 1, 0.1625 + 0.25] = [1.35, 0.4125]
    # sqrt(a2) = [1.1618950039, 0.6422616289]
    # steps = [0.1 * -1 / 1.1618951039, 0.1 * 0.5 / 0.6422617289] = [-0.0860662892, 0.0778498823]
    # w2 = [0.9154845888 + 0.0860662892, -2.0620173519 - 0.0778498823]
    close(w2, [1.0015508780, -2.1398672342])
    close(opt.accumulators[0], [1.35, 0.4125], atol=1e-15)
    assert opt.iterations == 2


# -- RMSprop -------------------------------------------------------------------------
def test_rmsprop_defaults() -> None:
    opt = RMSprop()
    assert (opt.learning_rate, opt.rho, opt.epsilon, opt.momentum, opt.centered) == (
        0.001, 0.9, 1e-7, 0.0, False)


def test_rmsprop_two_steps() -> None:
    opt = RMSprop(learning_rate=0.1)  # rho 0.9, epsilon 1e-7 inside the root
    w1, w2 = run(opt, [G1, G2])
    # s1 = 0.1 g^2 = [0.025, 0.00625]; sqrt(s1 + 1e-7) = [0.1581141992, 0.0790575740]
    # w1 = [1 - 0.1 * 0.5 / 0.1581141992, -2 - 0.1 * 0.25 / 0.0790575740]
    #    = [1 - 0.3162271336, -2 - 0.3162252362]   (not exactly sqrt(10) / 10: epsilon)
    close(w1, [0.6837728664, -2.3162252362])
    # s2 = 0.9 s1 + 0.1 G2^2 = [0.0225 + 0.1, 0.005625 + 0.025] = [0.1225, 0.030625]
    # sqrt(s2 + 1e-7) = [0.3500001429, 0.1750002857]
    # steps = [0.1 * -1 / 0.3500001429, 0.1 * 0.5 / 0.1750002857] = [-0.2857141691, 0.2857138192]
    close(w2, [0.6837728664 + 0.2857141691, -2.3162252362 - 0.2857138192])
    close(opt.mean_squares[0], [0.1225, 0.030625], atol=1e-15)


def test_rmsprop_momentum() -> None:
    opt = RMSprop(learning_rate=0.1, momentum=0.5)
    w1, w2 = run(opt, [G1, G2])
    # u1 = 0 + the plain step above = [0.3162271336, 0.3162252362]; w1 as before
    close(w1, [0.6837728664, -2.3162252362])
    # u2 = 0.5 u1 + [-0.2857141691, 0.2857138192] = [-0.1276006023, 0.4438264374]
    close(opt.velocities[0], [-0.1276006023, 0.4438264374])
    # w2 = w1 - u2 = [0.6837728664 + 0.1276006023, -2.3162252362 - 0.4438264374]
    close(w2, [0.8113734687, -2.7600516736])


def test_rmsprop_centered() -> None:
    opt = RMSprop(learning_rate=0.1, centered=True)
    w1, w2 = run(opt, [G1, G2])
    # s1 = [0.025, 0.00625], a1 = 0.1 g = [0.05, 0.025]
    # d1 = s1 - a1^2 + 1e-7 = [0.025 - 0.0025, 0.00625 - 0.000625] + 1e-7
    #    = [0.0225001, 0.0056251]; sqrt(d1) = [0.1500003333, 0.0750006667]
    # w1 = [1 - 0.05 / 0.1500003333, -2 - 0.025 / 0.0750006667]
    #    = [1 - 0.3333325926, -2 - 0.3333303704]
    close(w1, [0.6666674074, -2.3333303704])
    # s2 = [0.1225, 0.030625], a2 = 0.9 a1 + 0.1 G2 = [0.045 - 0.1, 0.0225 + 0.05]
    #    = [-0.055, 0.0725]
    # d2 = s2 - a2^2 + 1e-7 = [0.1225 - 0.003025, 0.030625 - 0.00525625] + 1e-7
    #    = [0.1194751, 0.02536885]; sqrt(d2) = [0.3456517033, 0.1592760183]
    # steps = [-0.1 / 0.3456517033, 0.05 / 0.1592760183] = [-0.2893085700, 0.3139204542]
    close(w2, [0.6666674074 + 0.2893085700, -2.3333303704 - 0.3139204542])
    close(opt.mean_grads[0], [-0.055, 0.0725], atol=1e-15)


def test_rmsprop_centered_variance_is_clipped_at_zero() -> None:
    """s - a^2 is never negative in exact arithmetic; if rounding makes it so, the root
    must not turn into NaN. A state with s < a^2 forces the case."""
    opt = RMSprop(learning_rate=0.1, centered=True)
    opt.load_state({"iterations": np.array(5), "learning_rate": np.array(0.1),
                    "mean_square/0": np.array([1.0]), "mean_grad/0": np.array([1.1])})
    (w1,) = run(opt, [[1.0]], w0=[0.0])
    # s = 0.9 + 0.1 = 1.0; a = 0.99 + 0.1 = 1.09; s - a^2 = 1 - 1.1881 < 0, clipped to 0
    # w1 = 0 - 0.1 * 1 / sqrt(0 + 1e-7) = -316.2277660
    close(w1, [-316.2277660168], atol=1e-6)


# -- AdamW ---------------------------------------------------------------------------
def test_adamw_defaults() -> None:
    opt = AdamW()
    assert (opt.learning_rate, opt.beta1, opt.beta2, opt.epsilon, opt.weight_decay) == (
        0.001, 0.9, 0.999, 1e-8, 0.01)
    assert opt.decay_mask is None


def test_adamw_decays_then_takes_the_adam_step() -> None:
    opt = AdamW(learning_rate=0.1, weight_decay=0.5)
    w1, w2 = run(opt, [G1, G1])
    # decay: w <- w (1 - 0.1 * 0.5) = 0.95 w = [0.95, -1.9]
    # Adam's first step moves each weight by 0.1 g / (|g| + 1e-8):
    #   [0.1 / (1 + 2e-8), 0.1 / (1 + 4e-8)] = [0.099999998, 0.099999996]
    # w1 = [0.95 - 0.099999998, -1.9 - 0.099999996] = [0.850000002, -1.999999996]
    close(w1, [0.850000002, -1.999999996])
    # decay: 0.95 w1 = [0.8075000019, -1.8999999962]; the same Adam step again (constant g)
    # w2 = [0.8075000019 - 0.099999998, -1.8999999962 - 0.099999996]
    close(w2, [0.7075000039, -1.9999999922])


def test_adamw_with_different_gradients() -> None:
    opt = AdamW(learning_rate=0.1, weight_decay=0.5)
    _, w2 = run(opt, [G1, G2])
    # decay: 0.95 w1 = [0.8075000019, -1.8999999962]
    # Adam's second step for G1 then G2 (see test_adam_second_step_different_gradient):
    #   [-0.0366104, 0.0965182], more exactly [-0.0366103522, 0.0965182001]
    close(w2, [0.8075000019 + 0.0366103522, -1.8999999962 - 0.0965182001])


def test_adamw_decay_mask() -> None:
    opt = AdamW(learning_rate=0.1, weight_decay=0.5, decay_mask=np.array([True, False]))
    w1, w2 = run(opt, [G1, G1])
    # entry 0 decays as above; entry 1 takes plain Adam steps: -2 - 0.099999996, twice
    close(w1, [0.850000002, -2.099999996])
    close(w2, [0.7075000039, -2.199999992])


def test_adamw_mask_everywhere_is_no_mask_and_no_decay_is_adam() -> None:
    rng = np.random.default_rng(3)
    w0 = rng.normal(size=7).astype(np.float32)
    grads = [rng.normal(size=7).astype(np.float32) for _ in range(4)]

    def final(opt: Optimizer) -> Floats:
        w = w0.copy()
        for g in grads:
            opt.step([w], [g])
        return w

    unmasked = final(AdamW(learning_rate=0.1, weight_decay=0.3))
    masked = final(AdamW(learning_rate=0.1, weight_decay=0.3, decay_mask=np.ones(7, bool)))
    assert np.array_equal(unmasked, masked)
    assert np.array_equal(final(AdamW(learning_rate=0.1, weight_decay=0.0)),
                          final(Adam(learning_rate=0.1)))
    nothing = final(AdamW(learning_rate=0.1, weight_decay=0.3, decay_mask=np.zeros(7, bool)))
    assert np.array_equal(nothing, final(Adam(learning_rate=0.1)))


def test_adamw_one_mask_per_parameter() -> None:
    w: Floats = np.array(W0)
    b: Floats = np.array([1.0])
    opt = AdamW(learning_rate=0.1, weight_decay=0.5,
                decay_mask=[np.array([True, True]), np.array([False])])
    opt.step([w, b], [np.array(G1), np.array([0.5])])
    close(w, [0.850000002, -1.999999996])
    close(b, [0.900000002])  # no decay: 1 - 0.1 * 0.5 / (0.5 + 1e-8)


@pytest.mark.parametrize("mask", [
    np.array([1, 0]),                      # not boolean
    np.array([True, False, True]),         # wrong length
    [np.array([True, False])] * 2,         # two masks for one parameter
])
def test_adamw_rejects_a_bad_mask(mask: NDArray | list[NDArray]) -> None:
    opt = AdamW(learning_rate=0.1, decay_mask=mask)
    with pytest.raises(ValueError, match="mask"):
        run(opt, [G1])


# -- Nadam ---------------------------------------------------------------------------
def test_nadam_defaults() -> None:
    opt = Nadam()
    assert (opt.learning_rate, opt.beta1, opt.beta2, opt.epsilon, opt.momentum_decay) == (
        0.001, 0.9, 0.999, 1e-8, 0.004)


def test_nadam_constant_momentum_two_steps() -> None:
    # momentum_decay = 0: mu_t = 0.9 (1 - 0.5 * 0.96^0) = 0.45 for every t
    opt = Nadam(learning_rate=0.1, momentum_decay=0.0)
    w1, w2 = run(opt, [G1, G2])
    # t = 1: P1 = 0.45, P1 mu2 = 0.2025
    #   m1 = 0.1 g = [0.05, 0.025]; v1 = 0.001 g^2; d = sqrt(v1 / 0.001) + 1e-8 = |g| + 1e-8
    #   g coefficient: 0.1 (1 - 0.45) / (1 - 0.45) = 0.1
    #   m coefficient: 0.1 * 0.45 / (1 - 0.2025) = 0.045 / 0.7975 = 0.0564263323
    #   step = 0.1 g / d + 0.0564263323 m / d
    #     entry 0: 0.1 * 0.5 / 0.50000001 + 0.0564263323 * 0.05 / 0.50000001
    #            = 0.0999999980 + 0.0056426331 = 0.1056426311
    #     entry 1: 0.1 * 0.25 / 0.25000001 + 0.0564263323 * 0.025 / 0.25000001
    #            = 0.0999999960 + 0.0056426330 = 0.1056426290
    close(w1, [1 - 0.1056426311, -2 - 0.1056426290])
    # t = 2: P2 = 0.2025, P2 mu3 = 0.091125
    #   m2 = [-0.055, 0.0725]; v2 = [0.00124975, 0.0003124375]
    #   d = sqrt(v2 / (1 - 0.999^2)) + 1e-8 = sqrt(v2 / 0.001999) + 1e-8
    #     = [0.7906880609, 0.3953440354]
    #   g coefficient: 0.1 * 0.55 / 0.7975 = 0.0689655172
    #   m coefficient: 0.1 * 0.45 / (1 - 0.091125) = 0.045 / 0.908875 = 0.0495117590
    #   entry 0: 0.0689655172 * -1 / 0.7906880609 + 0.0495117590 * -0.055 / 0.7906880609
    #          = -0.0872221558 - 0.0034440216 = -0.0906661774
    #   entry 1: 0.0689655172 * 0.5 / 0.3953440354 + 0.0495117590 * 0.0725 / 0.3953440354
    #          = 0.0872221547 + 0.0090796932 = 0.0963018479
    close(w2, [1 - 0.1056426311 + 0.0906661774, -2 - 0.1056426290 - 0.0963018479])
    assert opt.mu_product == pytest.approx(0.2025, rel=1e-15)


def test_nadam_momentum_schedule_first_step() -> None:
    opt = Nadam(learning_rate=0.1)  # momentum_decay 0.004
    (w1,) = run(opt, [G1])
    # 0.96^0.004 = 0.9998367254;  0.96^0.008 = 0.9996734774
    # mu1 = 0.9 (1 - 0.5 * 0.9998367254) = 0.4500734736
    # mu2 = 0.9 (1 - 0.5 * 0.9996734774) = 0.4501469352
    # g coefficient: 0.1 (1 - mu1) / (1 - mu1) = 0.1
    # m coefficient: 0.1 mu2 / (1 - mu1 mu2) = 0.04501469352 / (1 - 0.2025991947)
    #              = 0.0564517784
    # entry 0: 0.0999999980 + 0.0564517784 * 0.05 / 0.50000001 = 0.0999999980 + 0.0056451777
    # entry 1: 0.0999999960 + 0.0564517784 * 0.025 / 0.25000001 = 0.0999999960 + 0.0056451776
    close(w1, [1 - 0.1056451757, -2 - 0.1056451736])
    assert opt.mu_product == pytest.approx(0.4500734736, abs=1e-10)


# -- iRprop- -------------------------------------------------------------------------
def test_rprop_defaults_and_full_batch_flag() -> None:
    opt = Rprop()
    assert (opt.delta0, opt.eta_plus, opt.eta_minus, opt.delta_min, opt.delta_max) == (
        0.1, 1.2, 0.5, 1e-6, 50.0)
    assert Rprop.full_batch and opt.full_batch
    assert not any(cls.full_batch for name, cls in OPTIMIZERS.items() if name != "rprop")


def test_rprop_grows_on_same_sign_and_shrinks_and_skips_on_a_sign_change() -> None:
    opt = Rprop()
    w: Floats = np.array(W0)

    def step(g: list[float]) -> None:
        opt.step([w], [np.array(g)])

    # step 1: no previous gradient (0): delta stays 0.1; w <- w - sign(g) 0.1
    step([0.5, 0.25])
    close(w, [0.9, -2.1], atol=1e-15)
    # step 2: entry 0 same sign: delta = 0.1 * 1.2 = 0.12, w = 0.9 - 0.12 = 0.78
    #         entry 1 sign change: delta = 0.1 * 0.5 = 0.05, g <- 0: no move
    step([0.5, -0.25])
    close(w, [0.78, -2.1], atol=1e-15)
    close(opt.deltas[0], [0.12, 0.05], atol=1e-15)
    close(opt.previous_grads[0], [0.5, 0.0], atol=0)
    # step 3: entry 0 again: delta = 0.144, w = 0.78 - 0.144 = 0.636
    #         entry 1: previous gradient forgotten (0): delta stays 0.05, w = -2.1 + 0.05
    step([0.5, -0.25])
    close(w, [0.636, -2.05], atol=1e-15)
    close(opt.deltas[0], [0.144, 0.05], atol=1e-15)
    close(opt.previous_grads[0], [0.5, -0.25], atol=0)
    # step 4: entry 1 keeps its sign: now it grows, 0.05 * 1.2 = 0.06, w = -2.05 + 0.06
    step([0.5, -0.25])
    close(w, [0.636 - 0.1728, -1.99], atol=1e-15)
    close(opt.deltas[0], [0.1728, 0.06], atol=1e-15)


def test_rprop_step_sizes_are_clipped() -> None:
    opt = Rprop(delta_min=0.08, delta_max=0.13)
    run(opt, [[0.5, 0.25], [0.5, -0.25]])
    # entry 0: min(0.1 * 1.2, 0.13) = 0.12; entry 1: max(0.1 * 0.5, 0.08) = 0.08
    close(opt.deltas[0], [0.12, 0.08], atol=1e-15)
    run(opt, [[0.5, -0.25], [0.5, 0.25]])  # restart from W0, state carries on
    # entry 0: min(0.12 * 1.2 = 0.144, 0.13) = 0.13, then min(0.13 * 1.2, 0.13) = 0.13
    # entry 1: previous 0: stays 0.08; then sign change again: max(0.04, 0.08) = 0.08
    close(opt.deltas[0], [0.13, 0.08], atol=1e-15)


def test_rprop_does_not_move_a_weight_with_zero_gradient() -> None:
    opt = Rprop()
    w1, w2 = run(opt, [[0.0, 0.5], [0.0, 0.5]])
    close(w1, [1.0, -2.1], atol=1e-15)
    close(w2, [1.0, -2.22], atol=1e-15)  # entry 1: 0.1 then 0.12
    close(opt.deltas[0], [0.1, 0.12], atol=1e-15)


def test_rprop_ignores_the_learning_rate() -> None:
    gradients = [G1, G2, G2, G1]
    slow, fast = run(Rprop(learning_rate=1e-3), gradients), run(Rprop(learning_rate=9.0),
                                                                   gradients)
    for a, b in zip(slow, fast, strict=True):
        assert np.array_equal(a, b)


# -- state round trip ----------------------------------------------------------------
OPTIMIZER_FACTORIES = {
    "sgd": lambda: SGD(learning_rate=0.1),
    "momentum": lambda: SGD(learning_rate=0.1, momentum=0.9),
    "nesterov": lambda: SGD(learning_rate=0.1, momentum=0.9, nesterov=True),
    "adam": lambda: Adam(learning_rate=0.1),
}


@pytest.mark.parametrize("kind", sorted(OPTIMIZER_FACTORIES))
def test_state_round_trip(kind: str) -> None:
    rng = np.random.default_rng(0)
    gradients: list[list[Floats]] = [
        [rng.normal(size=(3, 2)), rng.normal(size=2)] for _ in range(5)
    ]
    params: list[Floats] = [rng.normal(size=(3, 2)), rng.normal(size=2)]

    original = OPTIMIZER_FACTORIES[kind]()
    for g in gradients[:2]:
        original.step(params, g)
    # As a checkpoint would: copies of the arrays, not the live ones.
    saved = {key: np.array(value) for key, value in original.state().items()}
    assert int(saved["iterations"]) == 2

    restored = OPTIMIZER_FACTORIES[kind]()
    restored.load_state(saved)
    assert restored.iterations == 2
    restored_params: list[Floats] = [p.copy() for p in params]
    for g in gradients[2:]:
        original.step(params, g)
        restored.step(restored_params, g)
    for a, b in zip(params, restored_params, strict=True):
        np.testing.assert_array_equal(a, b)
    assert restored.iterations == original.iterations == 5


def test_state_contents() -> None:
    adam = Adam(learning_rate=0.1)
    run(adam, [G1])
    assert sorted(adam.state()) == ["iterations", "learning_rate", "m/0", "v/0"]
    momentum = SGD(learning_rate=0.1, momentum=0.9)
    run(momentum, [G1])
    assert sorted(momentum.state()) == ["iterations", "learning_rate", "velocity/0"]
    assert sorted(SGD(learning_rate=0.1).state()) == ["iterations", "learning_rate"]


def test_learning_rate_travels_with_the_state() -> None:
    """A rate lowered by a divergence rollback survives a checkpoint."""
    source = SGD(learning_rate=0.1)
    source.learning_rate = 0.025
    restored = SGD(learning_rate=0.1)
    restored.load_state(source.state())
    assert restored.learning_rate == 0.025


def test_loaded_state_is_not_shared_with_the_source() -> None:
    source = Adam(learning_rate=0.1)
    run(source, [G1])
    state = source.state()
    restored = Adam(learning_rate=0.1)
    restored.load_state(state)
    source.step([np.array(W0)], [np.array(G2)])  # mutates source's moments in place
    np.testing.assert_allclose(restored.m[0], [0.05, 0.025], rtol=1e-12)


def test_optimizer_state_without_a_learning_rate_keeps_the_configured_one() -> None:
    params: list[Floats] = [np.zeros(2)]
    adam = Adam(learning_rate=0.01)
    adam.step(params, [np.ones(2)])
    state = adam.state()
    lowered = {**state, "learning_rate": np.array(0.001)}
    plain = {k: v for k, v in state.items() if k != "learning_rate"}
    restored = Adam(learning_rate=0.01)
    restored.load_state(lowered)
    assert restored.learning_rate == 0.001 and restored.iterations == 1
    restored = Adam(learning_rate=0.01)
    restored.load_state(plain)
    assert restored.learning_rate == 0.01 and restored.iterations == 1


# -- every optimizer: dtypes, allocations, state ---------------------------------------
FACTORIES: dict[str, Callable[[], Optimizer]] = {
    "sgd": lambda: SGD(learning_rate=0.1),
    "sgd-nesterov": lambda: SGD(learning_rate=0.1, momentum=0.9, nesterov=True),
    "adam": lambda: Adam(learning_rate=0.1),
    "adamw": lambda: AdamW(learning_rate=0.1, weight_decay=0.1),
    "adamw-mask": lambda: AdamW(learning_rate=0.1, weight_decay=0.1,
                                decay_mask=[np.arange(6).reshape(3, 2) % 2 == 0,
                                            np.zeros(2, bool)]),
    "adagrad": lambda: Adagrad(learning_rate=0.1),
    "rmsprop": lambda: RMSprop(learning_rate=0.1),
    "rmsprop-momentum-centered": lambda: RMSprop(learning_rate=0.1, momentum=0.9,
                                                 centered=True),
    "nadam": lambda: Nadam(learning_rate=0.1),
    "rprop": lambda: Rprop(),
}


def test_every_optimizer_has_a_factory() -> None:
    assert {type(make()).name for make in FACTORIES.values()} == set(OPTIMIZERS)


def gradients_for(seed: int, steps: int, dtype: type[np.floating]) -> list[list[Floats]]:
    rng = np.random.default_rng(seed)
    return [[rng.normal(size=(3, 2)).astype(dtype), rng.normal(size=2).astype(dtype)]
            for _ in range(steps)]


@pytest.mark.parametrize("kind", sorted(FACTORIES))
def test_state_round_trip_is_bit_exact(kind: str) -> None:
    """A runs 3 steps; B takes A's state after step 1 (through an .npz file, as a
    checkpoint does) and runs steps 2 and 3: the weights agree bit for bit."""
    gradients = gradients_for(0, 3, np.float32)
    rng = np.random.default_rng(1)
    params: list[Floats] = [rng.normal(size=(3, 2)).astype(np.float32),
                            rng.normal(size=2).astype(np.float32)]
    a = FACTORIES[kind]()
    a.step(params, gradients[0])
    buffer = io.BytesIO()
    np.savez(buffer, **a.state())  # type: ignore[arg-type]  # numpy's stub: allow_pickle
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as saved:
        state = {key: saved[key] for key in saved.files}
    b_params = [p.copy() for p in params]

    b = FACTORIES[kind]()
    b.load_state(state)
    for g in gradients[1:]:
        a.step(params, g)
        b.step(b_params, g)
    for p, q in zip(params, b_params, strict=True):
        assert p.dtype == q.dtype == np.float32
        assert np.array_equal(p, q)
    for key, value in a.state().items():
        assert np.array_equal(value, b.state()[key]), key
    assert a.iterations == b.iterations == 3


@pytest.mark.parametrize("kind", sorted(FACTORIES))
def test_state_holds_iterations_learning_rate_and_one_array_per_parameter(kind: str) -> None:
    opt = FACTORIES[kind]()
    opt.step([np.ones((3, 2)), np.ones(2)], gradients_for(0, 1, np.float64)[0])
    state = opt.state()
    assert {"iterations", "learning_rate"} <= set(state)
    arrays = sorted(key for key in state if "/" in key)
    prefixes = {key.split("/")[0] for key in arrays}
    assert arrays == sorted(f"{p}/{i}" for p in prefixes for i in range(2))


def test_state_contents_of_the_new_optimizers() -> None:
    def keys(opt: Optimizer) -> list[str]:
        run(opt, [G1])
        return sorted(opt.state())

    base = ["iterations", "learning_rate"]
    assert keys(Adagrad(learning_rate=0.1)) == ["accumulator/0", *base]
    assert keys(RMSprop(learning_rate=0.1)) == [*base, "mean_square/0"]
    assert keys(RMSprop(learning_rate=0.1, momentum=0.5, centered=True)) == [
        *base, "mean_grad/0", "mean_square/0", "velocity/0"]
    assert keys(AdamW(learning_rate=0.1)) == [*base, "m/0", "v/0"]
    assert keys(Nadam(learning_rate=0.1)) == [*base, "m/0", "mu_product", "v/0"]
    assert keys(Rprop()) == ["delta/0", *base, "previous_grad/0"]


@pytest.mark.parametrize("kind", sorted(FACTORIES))
def test_float32_stays_float32(kind: str) -> None:
    params: list[Floats] = [np.ones((3, 2), np.float32), np.ones(2, np.float32)]
    opt = FACTORIES[kind]()
    for grads in gradients_for(2, 3, np.float32):
        opt.step(params, grads)
    assert all(p.dtype == np.float32 for p in params)
    for key, value in opt.state().items():
        if "/" in key:
            assert value.dtype == np.float32, key


@pytest.mark.parametrize("n", [20_000, 50_000], ids=["numpy", "blas"])  # see blas.SMALL
@pytest.mark.parametrize("kind", sorted(FACTORIES))
def test_a_step_allocates_nothing_parameter_sized(kind: str, n: int) -> None:
    # 80 or 200 kB of float32: SGD's updates of the smaller go through NumPy, with work
    # arrays of its own, of the larger through BLAS
    w = np.zeros(n, np.float32)
    g = np.linspace(-1, 1, n, dtype=np.float32)
    opt = FACTORIES[kind]()
    if isinstance(opt, AdamW) and opt.decay_mask is not None:
        opt.decay_mask = np.arange(n) % 2 == 0
    g_next = -g
    opt.step([w], [g])  # the first step allocates the state and work arrays
    tracemalloc.start()
    try:
        opt.step([w], [g_next])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < n  # a quarter of one parameter-sized float32 array


@pytest.mark.parametrize("kind", sorted(FACTORIES))
def test_the_state_before_the_first_step_round_trips(kind: str) -> None:
    """A checkpoint can be written before any step (a run stopped in its first batch)."""
    fresh = FACTORIES[kind]()
    state = fresh.state()
    assert int(state["iterations"]) == 0
    assert float(state["learning_rate"]) == fresh.learning_rate
    assert not any("/" in key for key in state)  # no per-parameter arrays yet
    params: list[Floats] = [np.ones((3, 2)), np.ones(2)]
    restored_params = [p.copy() for p in params]
    restored = FACTORIES[kind]()
    restored.load_state(state)
    for g in gradients_for(3, 2, np.float64):
        fresh.step(params, g)
        restored.step(restored_params, [a.copy() for a in g])
    for p, q in zip(params, restored_params, strict=True):
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("kind", sorted(FACTORIES))
def test_gradients_that_do_not_match_the_parameters_are_refused(kind: str) -> None:
    """One gradient short would leave a parameter silently untrained."""
    opt = FACTORIES[kind]()
    params: list[Floats] = [np.ones((3, 2)), np.ones(2)]
    grads = gradients_for(4, 1, np.float64)[0]
    opt.step(params, grads)
    with pytest.raises(ValueError, match="zip"):
        opt.step(params, grads[:1])


# -- validation ----------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("learning_rate", [0.0, -0.1])
def test_nonpositive_learning_rate_is_rejected(name: str, learning_rate: float) -> None:
    with pytest.raises(ValueError, match="learning rate"):
        OPTIMIZERS[name](learning_rate=learning_rate)


@pytest.mark.parametrize("momentum", [-0.1, 1.0])
def test_momentum_out_of_range_is_rejected(momentum: float) -> None:
    with pytest.raises(ValueError, match="momentum"):
        SGD(learning_rate=0.1, momentum=momentum)


@pytest.mark.parametrize("kind", ["adam", "adamw", "nadam"])
@pytest.mark.parametrize(("setting", "value"), [("beta1", 1.0), ("beta2", -0.1),
                                                ("epsilon", 0.0)])
def test_adam_family_refuses_settings_that_divide_by_zero(kind: str, setting: str,
                                                          value: float) -> None:
    with pytest.raises(ValueError, match=setting):
        OPTIMIZERS[kind](**{setting: value})


@pytest.mark.parametrize(("make", "match"), [
    (lambda: Adagrad(epsilon=0.0), "epsilon"),
    (lambda: Adagrad(initial_accumulator=-1.0), "accumulator"),
    (lambda: RMSprop(rho=1.0), "rho"),
    (lambda: RMSprop(epsilon=0.0), "epsilon"),
    (lambda: RMSprop(momentum=1.0), "momentum"),
    (lambda: AdamW(weight_decay=-0.1), "weight decay"),
    (lambda: Nadam(beta1=1.0), "beta1"),
    (lambda: Nadam(beta2=-0.1), "beta2"),
    (lambda: Nadam(epsilon=0.0), "epsilon"),
    (lambda: Nadam(momentum_decay=-1.0), "momentum decay"),
    (lambda: Rprop(eta_plus=1.0), "eta_plus"),
    (lambda: Rprop(eta_minus=1.0), "eta_minus"),
    (lambda: Rprop(delta_min=0.0), "delta_min"),
    (lambda: Rprop(delta0=60.0), "delta0"),
])
def test_bad_hyperparameters_are_rejected(make: Callable[[], Optimizer], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("label", ["beta1", "beta2"])
def test_nadam_betas_take_zero_but_not_one(label: str) -> None:
    assert getattr(Nadam(**{label: 0.0}), label) == 0.0
    with pytest.raises(ValueError, match=rf"{label} must be in \[0, 1\), got 1\.0"):
        Nadam(**{label: 1.0})
    with pytest.raises(ValueError, match=rf"{label} must be in \[0, 1\), got -0\.1"):
        Nadam(**{label: -0.1})


def test_rprop_bounds_are_inclusive_where_documented() -> None:
    Rprop(delta_min=0.1, delta0=0.1, delta_max=0.1)  # all three equal is allowed
    for options in ({"eta_minus": 0.0}, {"eta_minus": 1.0}, {"eta_plus": 1.0}):
        with pytest.raises(ValueError, match="need 0 < eta_minus < 1 < eta_plus"):
            Rprop(**options)
    for options in ({"delta_min": 0.0}, {"delta0": 60.0}, {"delta_min": 0.2, "delta0": 0.1}):
        with pytest.raises(ValueError, match="need 0 < delta_min <= delta0 <= delta_max"):
            Rprop(**options)
