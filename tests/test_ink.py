"""ink.find's two decisions at the paper's noise floor: what is blank paper,
and which faint pieces belong to a digit (clean pictures keep them, as
MNIST's own digits have them)."""

import numpy as np
import pytest

from digitnet import ink


def digit(mnist, k):
    return mnist[2].images[:, k].reshape(28, 28).astype(np.float64)


def box(mask):
    rows, cols = np.nonzero(mask)
    return rows.min(), rows.max(), cols.min(), cols.max()


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("sigma", [0.1, 0.15])
def test_grainy_empty_paper_is_blank(seed, sigma):
    """Light paper with sensor grain and nothing drawn: the grain rises above
    MIN_CONTRAST here and there, but never above twice its own noise floor,
    so it is no digit."""
    rng = np.random.default_rng(seed)
    paper = np.clip(0.8 + sigma * rng.standard_normal((80, 80)), 0, 1)
    with pytest.raises(ink.BlankError):
        ink.find(paper)


@pytest.mark.parametrize("sigma", [0.1, 0.15])
def test_a_digit_on_the_same_grainy_paper_is_found(mnist, sigma):
    rng = np.random.default_rng(0)
    paper = np.full((80, 80), 0.8)
    paper[26:54, 26:54] -= 0.7 * digit(mnist, 0)  # dark pen on light paper
    paper = np.clip(paper + sigma * rng.standard_normal(paper.shape), 0, 1)
    a, _ = ink.find(paper)
    top, bottom, left, right = box(a > 0.5)
    want = box(digit(mnist, 0) > 0.5)
    assert abs(top - 26 - want[0]) <= 2 and abs(bottom - 26 - want[1]) <= 2
    assert abs(left - 26 - want[2]) <= 2 and abs(right - 26 - want[3]) <= 2


@pytest.mark.parametrize("k", range(5))
def test_a_faint_piece_near_a_clean_digit_is_kept(mnist, k):
    """A clean picture (no noise) with a faint piece of ink, apart from the
    strokes but within NEAR of the digit's box: it is part of the digit,
    kept at its own value, and everything else is kept exactly."""
    picture = np.zeros((48, 48))
    picture[10:38, 10:38] = digit(mnist, k)
    top, bottom, left, right = box(picture > 0)
    row = (top + bottom) // 2
    picture[row:row + 2, right + 3:right + 5] = 0.1  # below STRONG of the strongest
    a, guide = ink.find(picture)
    assert guide is a  # a clean picture: decided on itself
    np.testing.assert_allclose(a, picture / picture.max(), atol=1e-12)


def test_less_than_half_a_grey_level_above_clean_paper_is_no_ink(mnist):
    """Rounding-sized rises (0.4/255) around a clean digit's strokes, joined
    to them: below MIN_STEP, so paper, and none of it is ink; the digit
    comes out as it was, but for the paper's level fitted a hair higher."""
    picture = np.zeros((48, 48))
    picture[10:38, 10:38] = digit(mnist, 3)
    inked = picture > 0
    ring = np.zeros_like(inked)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            ring |= np.roll(np.roll(inked, dr, axis=0), dc, axis=1)
    ring &= ~inked
    assert ring.sum() > 50
    want = picture / picture.max()
    picture[ring] = 0.4 / 255
    a, _ = ink.find(picture)
    assert not a[ring].any()
    np.testing.assert_allclose(a, want, atol=1e-3)
