"""Finding the ink in a picture: which pixels are the digit, which are paper.

MNIST's digits are white on a perfectly black, noiseless background.  A
photo's paper is neither: it is lit unevenly (a shadow, a lamp to one side),
grainy (sensor noise, JPEG), and has specks and smudges on it.  Taking every
pixel that differs from the border as ink, as a first version did, turns a
shadow into a stroke and a speck far from the digit into part of its box,
so the digit came out shrunk or off-centre and the network misread it.

So, in order (see `find`): make the ink bright (`bright`); on a grainy
picture (`noise`) decide on a 3x3-smoothed copy; fit the paper as a smooth
surface and subtract it (`background`), which takes out lighting gradients
and broad unevenness; call ink only what rises above the paper by more
than its grain could; and keep only the digit's own strokes and what is
joined to them, dropping specks (`label`, `select`).  All of it is NumPy
(connected components by runs, not scipy.ndimage: a digit has few runs).
A clean picture (constant background, no noise) comes through unchanged:
every pixel brighter than the background by half an 8-bit grey level or more
is kept as it was, which is what keeps MNIST's own digits exact.
"""

import math

import numpy as np

# Half an 8-bit grey level: smaller differences are rounding, never ink.
MIN_STEP = 0.5 / 255
# Strong ink, which finds the digit's strokes and sets its box, is at least
# this fraction of the strongest stroke.  MNIST's own boxes are the same at
# this threshold as at zero for 99.6% of its test digits.
STRONG = 0.2
# Less contrast than this between ink and background is a blank picture
# (JPEG noise on an empty page is a few hundredths).
MIN_CONTRAST = 0.1
# Above this noise (about 1.5 grey levels) the picture is smoothed before
# deciding what is ink; below it smoothing would only blur clean strokes.
SMOOTH_ABOVE = 1.5 / 255


class BlankError(ValueError):
    """No ink in the picture."""


def border(a):
    return np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])


def bright(grey):
    """The picture with its ink bright: dark-on-light is inverted.  Which one
    it is comes from the border, the one place a centred drawing leaves
    alone (its median ignores strokes touching up to half of it)."""
    grey = np.asarray(grey, dtype=np.float64)
    return 1.0 - grey if np.median(border(grey)) > 0.5 else grey


def mad_sigma(values):
    """The standard deviation of Gaussian noise, from the median absolute
    deviation: strokes among the values do not inflate it."""
    if values.size == 0:
        return 0.0
    return 1.4826 * float(np.median(np.abs(values - np.median(values))))


def background(x, rounds=12):
    """The paper under the ink, as a smooth quadratic surface, and the
    paper's noise (its standard deviation about that surface).

    A lamp to one side makes a gradient, a curled page or a vignette a bowl;
    a quadratic takes both.  Ink is left out of the fit by fitting only the
    pixels within 3 noise deviations of the surface, starting from a plane
    through the border (see _border_plane) and refitting until the paper
    pixels no longer change.  The fit uses at most ~10,000 pixels, spread
    evenly, so large pictures cost no more.
    """
    edge = border(x)
    h, w = x.shape
    step = max(1, math.ceil(math.sqrt(h * w / 10000)))
    v = x[::step, ::step].ravel()
    rows, cols = np.arange(0, h, step), np.arange(0, w, step)
    u = (rows / max(h - 1, 1) * 2 - 1)[:, None] * np.ones(len(cols))
    t = np.ones((len(rows), 1)) * (cols / max(w - 1, 1) * 2 - 1)
    u, t = u.ravel(), t.ravel()
    terms = np.stack([np.ones_like(u), u, t, u * u, u * t, t * t], axis=1)
    plane = _border_plane(x)
    fitted = terms[:, :3] @ plane
    spread = mad_sigma(edge - _border_terms(h, w) @ plane)
    paper = None
    for _ in range(rounds):
        new = np.abs(v - fitted) <= max(3 * spread, MIN_STEP)
        if paper is not None and np.array_equal(new, paper):
            break
        paper = new
        fit = terms[paper]  # least squares by its 6x6 normal equations (fast)
        coef = np.linalg.lstsq(fit.T @ fit, fit.T @ v[paper], rcond=None)[0]
        fitted = terms @ coef
        spread = mad_sigma((v - fitted)[paper])
    uu = np.linspace(-1, 1, h)[:, None] if h > 1 else np.zeros((1, 1))
    tt = np.linspace(-1, 1, w)[None, :] if w > 1 else np.zeros((1, 1))
    c = coef
    surface = c[0] + c[1] * uu + c[2] * tt + c[3] * uu * uu + c[4] * uu * tt + c[5] * tt * tt
    return surface, spread


def _border_terms(h, w):
    """(1, u, t) at each border pixel, in border()'s order (u down, t across,
    both from -1 to 1)."""
    u = np.linspace(-1, 1, h) if h > 1 else np.zeros(1)
    t = np.linspace(-1, 1, w) if w > 1 else np.zeros(1)
    us = np.concatenate([np.full(w, u[0]), np.full(w, u[-1]), u, u])
    ts = np.concatenate([t, t, np.full(h, t[0]), np.full(h, t[-1])])
    return np.stack([np.ones_like(us), us, ts], axis=1)


def _border_plane(x, rounds=4):
    """A plane through the border's pixels, fitted leaving out strokes that
    touch it (more than 3 deviations off): where the fit of the paper
    starts.  The border is paper, the one place a centred drawing leaves
    alone, so a digit filling most of the picture cannot pull the start
    into its strokes (the border's median alone, on a lighting gradient,
    is so far from the paper at either side that strokes looked like it)."""
    edge, terms = border(x), _border_terms(*x.shape)
    keep = np.ones(edge.size, dtype=bool)
    coef = np.array([np.median(edge), 0.0, 0.0])
    for _ in range(rounds):
        res = edge - terms @ coef
        keep = np.abs(res - np.median(res)) <= max(3 * mad_sigma(res), MIN_STEP)
        fit = terms[keep]
        coef = np.linalg.lstsq(fit.T @ fit, fit.T @ edge[keep], rcond=None)[0]
    return coef


def box3(a):
    """The mean of each pixel's 3x3 neighbourhood (edges repeated)."""
    p = np.pad(a, 1, mode="edge")
    h, w = a.shape
    return sum(p[i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9.0


def dilate(mask, d):
    """`mask` grown by d pixels in every direction (a (2d+1)-square), by
    running sums along each axis: the cost does not grow with d."""
    out = mask
    for axis in (0, 1):
        c = np.cumsum(np.moveaxis(out, axis, 0), axis=0, dtype=np.int64)
        c = np.concatenate([np.zeros((1,) + c.shape[1:], np.int64), c])
        n = c.shape[0] - 1
        i = np.arange(n)
        hi, lo = np.minimum(i + d + 1, n), np.maximum(i - d, 0)
        out = np.moveaxis((c[hi] - c[lo]) > 0, 0, axis)
    return out


def label(mask):
    """8-connected components of a boolean mask: (labels, count), labels 0
    for background and 1..count for the components.

    Works on runs (a row's unbroken stretches of True) rather than pixels:
    a digit is a few runs a row, so even a large picture has few of them.
    Runs in neighbouring rows that touch are joined, and every run takes
    the smallest run number it is joined to, found by repeated minimum and
    pointer jumping (all NumPy, a handful of rounds).
    """
    h, w = mask.shape
    padded = np.zeros((h, w + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    change = np.diff(padded, axis=1)  # +1 where a run starts, -1 after it ends
    run_row, start = np.nonzero(change == 1)
    _, end = np.nonzero(change == -1)  # exclusive; same order as the starts
    n = len(start)
    labels = np.zeros((h, w), dtype=np.int64)
    if n == 0:
        return labels, 0
    # Run b (row y+1) touches run a (row y), 8-connected, when
    # start_a <= end_b and start_b <= end_a.  Runs are sorted by (row, start),
    # so the runs a touching b are a contiguous range: find its ends.
    key_start = run_row * (w + 2) + start
    key_end = run_row * (w + 2) + end
    below = run_row > 0
    b = np.flatnonzero(below)
    lo = np.searchsorted(key_end, (run_row[b] - 1) * (w + 2) + start[b], side="left")
    hi = np.searchsorted(key_start, (run_row[b] - 1) * (w + 2) + end[b], side="right")
    count = np.maximum(hi - lo, 0)
    src = np.repeat(b, count)
    dst = np.repeat(lo - np.cumsum(count) + count, count) + np.arange(count.sum())
    parent = np.arange(n)
    while True:
        low = parent.copy()
        np.minimum.at(low, src, parent[dst])
        np.minimum.at(low, dst, parent[src])
        low = low[low]
        while True:  # pointer jumping: follow parents to their roots
            nxt = low[low]
            if np.array_equal(nxt, low):
                break
            low = nxt
        if np.array_equal(low, parent):
            break
        parent = low
    roots, run_label = np.unique(parent, return_inverse=True)
    lengths = end - start
    flat = np.repeat(run_row * w + start, lengths) + (
        np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths))
    labels.ravel()[flat] = np.repeat(run_label + 1, lengths)
    return labels, len(roots)


# A piece of ink this close to the digit's box (as a fraction of the box's
# longer side) belongs to it.  MNIST's own digits have such pieces, up to
# half their size away (2% of them, measured on 30,000); NIST's boxes
# included them, so they stay.  Farther ink is a speck and is dropped.
NEAR = 0.5


def select(labels, n, strong, weight, faint=True):
    """The component numbers that make up the digit.

    The component with the most strong ink is the digit's body; pieces with
    strong ink within NEAR of the box grown so far join it, round after
    round while any does (so a dotted stroke joins piece by piece).  Faint
    pieces with no strong ink join if they lie that near the finished box
    and `faint` (a clean picture: in a noisy one they are noise).
    """
    ys, xs = np.nonzero(labels)
    which = labels[ys, xs]
    is_strong = strong[ys, xs]
    mass = np.bincount(which[is_strong], weights=weight[ys, xs][is_strong], minlength=n + 1)

    def boxes(sel):  # (4, n + 1): top, bottom, left, right of each component
        b = np.array([[ys.max() + 1] * (n + 1), [-1] * (n + 1),
                      [xs.max() + 1] * (n + 1), [-1] * (n + 1)])
        for row, ufunc, coord in ((0, np.minimum, ys), (1, np.maximum, ys),
                                  (2, np.minimum, xs), (3, np.maximum, xs)):
            ufunc.at(b[row], which[sel], coord[sel])
        return b

    def near(b, box):  # which boxes in b lie within NEAR of `box`
        gap = np.max([b[0] - box[1], box[0] - b[1], b[2] - box[3], box[2] - b[3]], axis=0)
        return gap <= NEAR * (max(box[1] - box[0], box[3] - box[2]) + 1)

    sb = boxes(is_strong)
    keep = np.zeros(n + 1, dtype=bool)
    keep[int(np.argmax(mass))] = True
    while True:
        box = sb[0][keep].min(), sb[1][keep].max(), sb[2][keep].min(), sb[3][keep].max()
        join = (mass > 0) & ~keep & near(sb, box)
        if not join.any():
            break
        keep |= join
    if faint:
        keep |= (mass == 0) & near(boxes(np.ones_like(is_strong)), box)
    keep[0] = False
    return np.flatnonzero(keep)


def noise(x):
    """The standard deviation of a picture's pixel noise, from the steps
    between neighbouring pixels along its edges (the paper).

    A lighting gradient makes equal steps, which the median takes away.
    Pixels clipped at white or black make no steps, so steps between two
    of them are left out, and an edge that is mostly clipped tells nothing
    (noisy paper can be clipped white along one edge yet grainy elsewhere).
    Of the edges that tell, the least noisy counts: a stroke touching an
    edge makes steps there too.  A picture with no edge to tell is clean.
    """
    told = [0.0]
    for e in (x[0], x[-1], x[:, 0], x[:, -1]):
        clipped = (e == 0) | (e == 1)
        steps = np.diff(e)[~(clipped[1:] & clipped[:-1])]
        if steps.size >= max(4, len(e) // 4):
            told.append(mad_sigma(steps) / math.sqrt(2))
    return min(told[1:]) if len(told) > 1 else 0.0


def find(grey, specks=True, shading=True):
    """(ink, guide): white-on-black ink in [0, 1], the strongest stroke 1,
    from any picture; and the same from the smoothed copy the decisions
    were taken on, to draw the digit's box by (the same array when the
    picture is clean).

    Ink is what rises above the fitted paper by more than its noise would
    anywhere in a picture this size (the universal threshold, noise x
    sqrt(2 ln N)), and by at least half a grey level.  On a noisy picture
    that is decided on a 3x3-smoothed copy, which thins the noise threefold
    and keeps strokes; the pixels kept keep their own values, but their
    noise must not draw the box.  Strong ink (STRONG of the strongest)
    finds the strokes; faint ink is kept only where it is joined to them
    (hysteresis), so anti-aliased edges stay and lone noise goes.  With
    `specks`, ink far from the digit is dropped (see select).  Without
    `shading` the paper is flat, the border's median, as for product photos
    (Fashion-MNIST): a garment filling the picture is no uneven paper.
    """
    x = bright(grey)
    noisy = shading and noise(x) > SMOOTH_ABOVE
    xs = box3(x) if noisy else x
    if shading:
        surface, sigma = background(xs)
        floor = max(sigma * math.sqrt(2 * math.log(max(x.size, 2))), MIN_STEP)
    else:  # flat paper, and what rises above it along the border is no ink
        surface = float(np.median(border(x)))
        floor = max(min(4 * float(np.median(np.clip(border(x) - surface, 0, None))), 0.3),
                    MIN_STEP)
    rs = xs - surface
    top = float(rs.max())
    if top < max(MIN_CONTRAST, 2 * floor):
        raise BlankError("blank picture: no ink found")
    weak = rs > floor
    strong = rs > max(floor, STRONG * top)
    labels, n = label(weak)
    mask = np.isin(labels, select(labels, n, strong, rs, faint=not noisy)) if specks else weak
    if noisy:  # faint ink hugs its strokes; a faint stretch beyond is shading
        rows, cols = np.nonzero(mask & strong)
        size = max(np.ptp(rows), np.ptp(cols)) + 1
        mask &= dilate(mask & strong, max(1, size // 10))
    level = float(rs[mask].max())
    a = np.where(mask, np.clip((x - surface) / level, 0.0, 1.0), 0.0)
    return a, (np.where(mask, np.clip(rs / level, 0.0, 1.0), 0.0) if noisy else a)
