"""On-the-fly augmentation: each transform against a plain NumPy picture
operation, shapes and range, determinism under a seed, namespace parity,
and the trainer's use of it."""

import numpy as np
import pytest

from digitnet import Model, Network, augment, backend, training
from conftest import blobs


def digits(mnist, k=6):
    training_set, _, _ = mnist
    return training_set.images[:, :k].astype(np.float64)


def still(m):
    """Parameters that change nothing."""
    p = augment.draw(np.random.default_rng(0), m)
    return {k: (np.ones_like(v) if k in ("scale", "aspect") else np.zeros_like(v))
            for k, v in p.items()}


def pictures(x):
    return backend.to_numpy(x).T.reshape(-1, 28, 28)


def test_nothing_drawn_changes_nothing(mnist, xp):
    x = digits(mnist)
    np.testing.assert_array_equal(backend.to_numpy(augment.augment(xp, xp.asarray(x), still(6))), x)


def test_shift_and_rotation_move_pixels_exactly(mnist):
    x = digits(mnist)
    p = still(6)
    p["shift"][0] = 2.0   # two rows down
    p["shift"][1] = -3.0  # three columns left
    got = pictures(augment.augment(np, x, p))
    want = np.zeros_like(got)
    want[:, 2:, :-3] = pictures(x)[:, :-2, 3:]
    np.testing.assert_allclose(got, want, atol=1e-12)
    p = still(6)
    p["shift"][0] = 0.25  # a quarter row down: bilinear weights 3/4 and 1/4
    got = pictures(augment.augment(np, x, p))
    above = np.pad(pictures(x), ((0, 0), (1, 0), (0, 0)))[:, :-1, :]
    np.testing.assert_allclose(got, 0.75 * pictures(x) + 0.25 * above, atol=1e-12)
    p = still(6)
    p["angle"][:] = np.pi / 2
    got = pictures(augment.augment(np, x, p))
    rotated = np.rot90(pictures(x), k=1, axes=(1, 2))  # counter-clockwise on screen
    assert (np.allclose(got, rotated, atol=1e-9)
            or np.allclose(got, np.rot90(pictures(x), k=-1, axes=(1, 2)), atol=1e-9))


def test_scale_above_one_enlarges_the_digit(mnist):
    x = digits(mnist)
    p = still(6)
    p["scale"][:] = 1.2
    bigger = pictures(augment.augment(np, x, p))
    rows = lambda pics: [np.ptp(np.flatnonzero(pic.max(axis=1) > 0.3)) for pic in pics]
    assert all(b > a for a, b in zip(rows(pictures(x)), rows(bigger)))


def test_thickness_is_dilation_or_erosion_and_blur_keeps_the_ink(mnist):
    x = digits(mnist)
    pics = pictures(x)
    padded = np.pad(pics, ((0, 0), (1, 1), (1, 1)))
    shifts = [padded[:, i:i + 28, j:j + 28] for i in range(3) for j in range(3)]
    for amount, want in ((1.0, np.max(shifts, axis=0)), (-1.0, np.min(shifts, axis=0))):
        p = still(6)
        p["thicken"][:] = amount
        np.testing.assert_allclose(pictures(augment.augment(np, x, p)), want, atol=1e-12)
    p = still(6)
    p["blur"][:] = 1.0
    blurred = pictures(augment.augment(np, x, p))
    assert np.allclose(blurred.sum(axis=(1, 2)), pics.sum(axis=(1, 2)), rtol=1e-6)
    assert (blurred > 0).sum() > (pics > 0).sum()  # spread out


def test_a_seed_fixes_the_distortions_on_every_namespace(mnist, xp):
    x = digits(mnist)
    runs = [augment.augment(xp, xp.asarray(x), augment.draw(np.random.default_rng(s), 6))
            for s in (5, 5, 6)]
    a, b, c = (backend.to_numpy(r) for r in runs)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    want = augment.augment(np, x, augment.draw(np.random.default_rng(5), 6))
    np.testing.assert_allclose(a, want, rtol=1e-12, atol=1e-12)
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert 0.02 < np.abs(a - x).mean() < 0.3  # distorted, not destroyed


def test_draws_stay_in_their_ranges():
    p = augment.draw(np.random.default_rng(0), 5000)
    s = augment.STRENGTH
    assert np.abs(p["angle"]).max() <= np.radians(s["rotate"])
    assert np.abs(p["shift"]).max() <= s["shift"] and np.abs(p["elastic"]).max() <= s["elastic"]
    assert s["thicken"][0] <= p["thicken"].min() and p["thicken"].max() <= s["thicken"][1]
    assert 0.4 < np.mean(p["blur"] == 0) < 0.6


def test_the_trainer_augments_every_mini_batch_reproducibly(mnist):
    training_set, _, test = mnist
    data = training_set[:400]
    runs = []
    for augmented, seed in ((True, 1), (True, 1), (False, 1)):
        net = Model("fc:30,softmax:10", activation="relu", init="scaled", seed=seed,
                    device="cpu", dtype="float64")
        net.sgd(data, 2, 10, 0.1, augment=augmented, momentum=0.5)
        runs.append(net.weights[0].copy())
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], runs[2])
    nets = []
    for engine in ("batched", "per-example"):
        net = Network([784, 20, 10], seed=2, device="cpu", dtype="float64")
        net.sgd(data[:60], 1, 10, 1.0, augment=True, engine=engine)
        nets.append(net.weights[0])
    np.testing.assert_allclose(nets[0], nets[1], rtol=1e-10, atol=1e-12)


def test_augmentation_needs_square_pictures():
    with pytest.raises(ValueError, match="square pictures"):
        Network([12, 4], device="cpu").sgd(blobs(20), 1, 10, 0.1, augment=True)
