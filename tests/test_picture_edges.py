"""The edges of pictures: augmentation's bilinear sampling at the last row
and column (and just past them) against the formula, and the ink finder's
noise estimate when a stroke touches one edge of the picture."""

import math

import numpy as np
import pytest

from digitnet import augment, backend, ink

SIDE = 5


def bilinear(picture, r, c):
    """The formula, one point at a time: the four pixels around (r, c),
    each weighted by its nearness, black outside the picture."""
    r0, c0 = math.floor(r), math.floor(c)
    total = 0.0
    for rr, wr in ((r0, 1 - (r - r0)), (r0 + 1, r - r0)):
        for cc, wc in ((c0, 1 - (c - c0)), (c0 + 1, c - c0)):
            if 0 <= rr < SIDE and 0 <= cc < SIDE:
                total += wr * wc * picture[rr, cc]
    return total


# points on, between and past the last row and column (and the first)
EDGE = [SIDE - 1, SIDE - 1.25, SIDE - 1.5, SIDE - 0.75, SIDE - 2 + 0.4, 0.0, -0.5, 2.3]


def test_sampling_at_the_last_row_and_column_is_the_formula(xp):
    rng = np.random.default_rng(3)
    pictures = rng.random((SIDE * SIDE, 2)) + 0.5  # no zeros: every pixel counts
    points = [(r, c) for r in EDGE for c in EDGE]
    # sample maps one point per pixel: go through the points SIDE*SIDE at a time
    got, want = [], []
    for k in range(0, len(points), SIDE * SIDE):
        chunk = points[k:k + SIDE * SIDE]
        chunk += [(0.0, 0.0)] * (SIDE * SIDE - len(chunk))
        r = np.array([[p[0]] * 2 for p in chunk])
        c = np.array([[p[1]] * 2 for p in chunk])
        out = backend.to_numpy(augment.sample(xp, xp.asarray(pictures), xp.asarray(r),
                                              xp.asarray(c), SIDE))
        got.append(out)
        want.append(np.array([[bilinear(pictures[:, j].reshape(SIDE, SIDE), pr, pc)
                               for j in range(2)] for pr, pc in chunk]))
    np.testing.assert_allclose(np.concatenate(got), np.concatenate(want), rtol=1e-12,
                               atol=1e-15)


def test_the_last_pixel_is_itself_and_half_a_pixel_past_it_is_half():
    pictures = np.arange(1.0, SIDE * SIDE + 1)[:, None]
    at = np.full((SIDE * SIDE, 1), SIDE - 1.0)
    out = augment.sample(np, pictures, at, at, SIDE)
    assert out[0, 0] == SIDE * SIDE  # the bottom-right pixel
    past = np.full((SIDE * SIDE, 1), SIDE - 0.5)
    last_row = augment.sample(np, pictures, past, at, SIDE)[0, 0]
    assert last_row == pytest.approx(SIDE * SIDE / 2, rel=1e-12)
    last_col = augment.sample(np, pictures, at, past, SIDE)[0, 0]
    assert last_col == pytest.approx(SIDE * SIDE / 2, rel=1e-12)


def stroke_along_top(paper, rng):
    """A 7's bar running along the whole top edge, anti-aliased."""
    p = paper.copy()
    p[0, :] = 0.4 + 0.5 * rng.random(p.shape[1])
    p[1, :] = 0.7
    return p


@pytest.mark.parametrize("turn", range(4))
def test_a_stroke_along_one_edge_of_clean_paper_is_no_noise(turn):
    """Flat grey paper (not clipped: each edge tells) with a bar along one
    edge: the bar makes steps there, the other edges tell 0."""
    p = stroke_along_top(np.full((28, 28), 0.2), np.random.default_rng(turn))
    assert ink.noise(np.rot90(p, turn)) == 0.0


@pytest.mark.parametrize("turn", range(4))
def test_a_stroke_along_one_edge_of_grainy_paper_leaves_the_papers_noise(turn):
    rng, sigma = np.random.default_rng(10 + turn), 0.03
    paper = 0.5 + sigma * rng.standard_normal((80, 80))
    p = np.rot90(stroke_along_top(paper, rng), turn)
    assert ink.noise(p) == pytest.approx(sigma, rel=0.3)
    assert ink.noise(np.rot90(paper, turn)) == pytest.approx(sigma, rel=0.3)


@pytest.mark.parametrize("turn", range(4))
def test_a_stroke_crossing_one_edge_of_clipped_paper_is_no_noise(turn):
    """Black paper (white paper, once ink is made bright): clipped, no steps;
    a stroke crossing one edge makes a few steps there, too few to tell."""
    p = np.zeros((28, 28))
    p[0:10, 12:17] = [0.3, 0.8, 1.0, 0.8, 0.3]
    assert ink.noise(np.rot90(p, turn)) == 0.0
    found, _ = ink.find(1.0 - np.rot90(p, turn))  # dark ink on white paper
    assert found.max() == 1.0 and np.count_nonzero(found) == 50
