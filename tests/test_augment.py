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


# Every parameter a draw makes: uniform over its whole declared range, centred
# where it should be (a one-sided draw turns every digit the same way), and
# independent of the others (a field whose columns reuse the rows' numbers
# moves every pixel along a diagonal).
# The ranges docs and STRENGTH promise, written out here so that a changed
# constant fails too: +-12 degrees, +-12% scale, +-8% width, +-0.25 shear,
# +-2.5 pixels shift, +-1.5 pixels at each elastic grid point, a blend from
# 0.4 of the way to thinner to all the way to thicker, and up to 0.7 blur.
RANGES = {"angle": (-np.radians(12), np.radians(12)), "scale": (0.88, 1.12),
          "aspect": (0.92, 1.08), "shear": (-0.25, 0.25), "shift": (-2.5, 2.5),
          "elastic": (-1.5, 1.5), "thicken": (-0.4, 1.0), "blur": (0.0, 0.7)}


def test_every_parameter_is_drawn_uniformly_over_its_whole_range():
    n = 20_000
    p = augment.draw(np.random.default_rng(11), n)
    assert set(p) == set(RANGES)
    assert p["shift"].shape == (2, n) and p["elastic"].shape == (2, augment.GRID ** 2, n)
    blurred = p["blur"] > 0
    assert abs(blurred.mean() - 0.5) < 0.02  # half the digits are blurred at all
    for name, (low, high) in RANGES.items():
        values = p[name][blurred] if name == "blur" else p[name]
        for v in values.reshape(-1, values.shape[-1]):  # each axis and grid point alone
            width = high - low
            assert low <= v.min() < low + 0.01 * width and high - 0.01 * width < v.max() <= high, name
            for q in (0.25, 0.5, 0.75):  # a uniform's quartiles
                assert abs(np.mean(v < low + q * width) - q) < 0.025, (name, q)
    scalars = [p[k] for k in ("angle", "scale", "aspect", "shear", "thicken", "blur")]
    columns = np.stack(scalars + list(p["shift"]) + list(p["elastic"].reshape(-1, n)))
    corr = np.corrcoef(columns)
    np.fill_diagonal(corr, 0)
    assert np.abs(corr).max() < 0.05  # 20,000 independent draws: |r| ~ 0.007


def coordinates(**changes):
    p = still(3)
    for key, value in changes.items():
        p[key] = np.broadcast_to(value, p[key].shape).copy()
    rows, cols = augment.source_coordinates(np, p, 28, np.float64)
    r0, c0, field = augment.grid(28)
    return rows - 13.5, cols - 13.5, r0, c0, field, p


def test_each_geometric_parameter_moves_the_source_as_it_says():
    """Where each output pixel samples from (about the centre), parameter
    by parameter, against its own formula: the elastic field's row and
    column displacements each from their own numbers, the scale and aspect
    from their own factors, rotation about the centre."""
    rng = np.random.default_rng(2)
    elastic = rng.uniform(-1.5, 1.5, (2, augment.GRID ** 2, 3))
    rows, cols, r0, c0, field, _ = coordinates(elastic=elastic)
    np.testing.assert_allclose(rows - r0, field @ elastic[0], atol=1e-12)
    np.testing.assert_allclose(cols - c0, field @ elastic[1], atol=1e-12)
    rows, cols, r0, c0, _, _ = coordinates(scale=1.25)
    np.testing.assert_allclose(rows, r0 / 1.25 + 0 * rows, atol=1e-12)
    np.testing.assert_allclose(cols, c0 / 1.25 + 0 * cols, atol=1e-12)
    rows, cols, r0, c0, _, _ = coordinates(aspect=1.1)  # the width alone
    np.testing.assert_allclose(rows, r0 + 0 * rows, atol=1e-12)
    np.testing.assert_allclose(cols, c0 / 1.1 + 0 * cols, atol=1e-12)
    rows, cols, r0, c0, _, _ = coordinates(shift=np.array([[1.5], [-2.0]]))
    np.testing.assert_allclose(rows, r0 - 1.5 + 0 * rows, atol=1e-12)
    np.testing.assert_allclose(cols, c0 + 2.0 + 0 * cols, atol=1e-12)
    angle = np.radians(10)
    rows, cols, r0, c0, _, _ = coordinates(angle=angle)
    np.testing.assert_allclose(np.hypot(rows, cols), np.hypot(r0, c0) + 0 * rows, atol=1e-12)
    turned = np.arctan2(rows, cols) - np.arctan2(r0, c0)
    far = (np.hypot(r0, c0) > 1)[:, 0]
    assert np.allclose(np.angle(np.exp(1j * turned[far])), -angle) or np.allclose(
        np.angle(np.exp(1j * turned[far])), angle)
    rows, cols, r0, c0, _, _ = coordinates(shear=0.2)  # rows stay, columns lean by row
    np.testing.assert_allclose(rows, r0 + 0 * rows, atol=1e-12)
    np.testing.assert_allclose(np.abs(cols - c0), np.abs(0.2 * r0) + 0 * cols, atol=1e-12)


def scaled_strength(factor):
    """STRENGTH with every range scaled by hand: the reference for `strength`."""
    return {k: tuple(x * factor for x in v) if isinstance(v, tuple) else v * factor
            for k, v in augment.STRENGTH.items()}


@pytest.mark.parametrize("factor", [0.6, 2.0])
def test_strength_scales_every_parameter_of_a_draw(factor, monkeypatch):
    """Each parameter moves by `factor` about its still value (1 for scale
    and aspect, 0 for the rest), from the same random numbers; and the draw
    is bit for bit the one of STRENGTH scaled by hand."""
    n = 2000
    base = augment.draw(np.random.default_rng(7), n)
    got = augment.draw(np.random.default_rng(7), n, factor)
    assert set(got) == set(RANGES)
    for name in RANGES:
        rest = 1.0 if name in ("scale", "aspect") else 0.0
        np.testing.assert_allclose(got[name] - rest, factor * (base[name] - rest),
                                   rtol=1e-12, atol=1e-14, err_msg=name)
    assert not np.allclose(got["angle"], base["angle"])
    monkeypatch.setattr(augment, "STRENGTH", scaled_strength(factor))
    by_hand = augment.draw(np.random.default_rng(7), n)
    for name in RANGES:
        np.testing.assert_array_equal(got[name], by_hand[name], err_msg=name)


def test_the_trainer_draws_with_the_runs_strength(mnist, monkeypatch):
    """augment_strength reaches every mini-batch's draw: a run at 0.6 ends
    bit for bit where a run at 1 with STRENGTH scaled by hand ends, and
    away from a run at 1."""
    training_set, _, _ = mnist
    data = training_set[:200]

    def trained(strength):
        net = Model("fc:30,softmax:10", activation="relu", init="scaled", seed=4,
                    device="cpu", dtype="float64")
        net.sgd(data, 2, 10, 0.1, augment=True, augment_strength=strength, momentum=0.5)
        return net.weights[0].copy()
    mild, full = trained(0.6), trained(1.0)
    monkeypatch.setattr(augment, "STRENGTH", scaled_strength(0.6))
    np.testing.assert_array_equal(trained(1.0), mild)
    assert not np.allclose(mild, full)


def test_the_compiled_distortions_are_the_passes_bit_for_bit(mnist, monkeypatch):
    """jit_augment's two loops against augment.py's NumPy passes on real
    digits, both dtypes, every strength's reach (coordinates far outside
    the picture at 2), and pixels no digit has (negative, above one, both
    signed zeros, NaN): the same bits, and each loop ran."""
    pytest.importorskip("numba")
    from digitnet import jit_augment
    ran = []
    for name in ("_sample", "_thicken_blur"):
        real = getattr(jit_augment, name)
        monkeypatch.setattr(jit_augment, name, lambda *a, real=real, name=name:
                            ran.append(name) or real(*a))
    training_set, _, _ = mnist
    rng = np.random.default_rng(5)
    odd = rng.standard_normal((784, 7)) * 0.8 + 0.3
    odd.flat[::17], odd.flat[5::19], odd.flat[3::23] = -0.0, 0.0, np.nan
    for dtype in (np.float32, np.float64):
        for x, strength in ((training_set.rows[:64].T, 0.4), (training_set.rows[64:77].T, 1.0),
                            (training_set.rows[80:85].T, 2.0), (odd, 2.0)):
            x = x.astype(dtype).T.copy().T  # a transposed view, as the trainer's mini-batch
            params = augment.draw(rng, x.shape[1], strength)
            monkeypatch.setenv("DIGITNET_JIT", "1")
            got = augment.augment(np, x, params)
            monkeypatch.setenv("DIGITNET_JIT", "0")
            want = augment.augment(np, x, params)
            np.testing.assert_array_equal(got, want, strict=True)
            assert np.array_equal(np.signbit(got), np.signbit(want))
            assert np.isnan(want).any() == np.isnan(x).any()
    assert ran == ["_sample", "_thicken_blur"] * 8
    ran.clear()

    def train():
        net = Model("fc:30,softmax:10", activation="relu", init="scaled", seed=4, device="cpu",
                    dtype="float32")
        run = training.Run(net, mini_batch_size=20, eta=0.1, momentum=0.9, augment=True,
                           augment_strength=0.6, epochs=2)
        training.fit(run, training_set[:200], 2)
        return run.state_dict()["arrays"]  # the weights, biases and velocities
    monkeypatch.setenv("DIGITNET_JIT", "1")
    got = train()
    monkeypatch.setenv("DIGITNET_JIT", "0")
    want = train()
    assert ran == ["_sample", "_thicken_blur"] * 20 and got.keys() == want.keys()
    for key in want:  # the trainer's run, every array of its state
        np.testing.assert_array_equal(got[key], want[key], strict=True)
