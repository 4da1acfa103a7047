"""On-the-fly data augmentation: every mini-batch a fresh distortion of each
digit, so the network learns the handwriting, not MNIST's 250 writers.

The book expands MNIST by one-pixel shifts (chapter 6) and cites Simard,
Steinkraus and Platt (2003) for elastic distortions.  Here each example of
a (784, m) mini-batch gets its own:

- affine map: rotation, scale (with a little aspect change), shear, shift;
- elastic distortion: a smooth random displacement field (a coarse grid of
  random displacements, interpolated: smooth like Simard's Gaussian-filtered
  noise, at a fraction of the cost);
- stroke thickness: blended towards a 3x3 dilation (thicker) or erosion
  (thinner) of the picture;
- blur: blended towards a 3x3 Gaussian blur.

The random numbers are drawn on the host from the run's NumPy generator
(a few per example), so a seed fixes them on every backend and a resumed
run draws the same; the pixel work runs on the network's device, written
once against `xp` like the rest of the core (on NumPy with Numba,
jit_augment.py's two loops do it, bit for bit the same).
"""

import functools
import math

import numpy as np

from .layers import loops

# Ranges of the per-example draws: wide enough to cover other people's
# handwriting (slant, size, thick or thin pens), narrow enough that a digit
# stays itself (a 6 rotated by 180 degrees is a 9).
STRENGTH = {"rotate": 12.0,      # degrees, +-
            "scale": 0.12,       # +- around 1
            "aspect": 0.08,      # +- extra scale of the width alone
            "shear": 0.25,       # +- column shift per row
            "shift": 2.5,        # pixels, +-
            "elastic": 1.5,      # pixels, +- at each coarse grid point
            "thicken": (-0.4, 1.0),  # blend towards erosion (<0) or dilation (>0)
            "blur": 0.7}         # blend towards a blurred copy, up to
GRID = 4  # coarse elastic grid points per side


def draw(rng, m, strength=1.0):
    """The random parameters of m distortions, as host float64 arrays.
    `strength` scales every range: 1 reads other people's handwriting best;
    MNIST's own test set is read best by milder ones (the record recipe's 0.6)."""
    s = {k: tuple(x * strength for x in v) if isinstance(v, tuple) else v * strength
         for k, v in STRENGTH.items()}
    u = lambda low, high, shape=(m,): rng.uniform(low, high, shape)
    return {"angle": u(-s["rotate"], s["rotate"]) * math.pi / 180,
            "scale": 1 + u(-s["scale"], s["scale"]),
            "aspect": 1 + u(-s["aspect"], s["aspect"]),
            "shear": u(-s["shear"], s["shear"]),
            "shift": u(-s["shift"], s["shift"], (2, m)),
            "elastic": u(-s["elastic"], s["elastic"], (2, GRID * GRID, m)),
            "thicken": u(*s["thicken"]),
            "blur": u(0, s["blur"]) * (rng.random(m) < 0.5)}


def interpolation(n_in, n_out):
    """(n_out, n_in) linear interpolation from n_in evenly spread grid points
    (the ends at the picture's edges) to n_out pixels."""
    pos = np.linspace(0, n_in - 1, n_out)
    lo = np.minimum(np.floor(pos).astype(int), n_in - 2)
    w = np.zeros((n_out, n_in))
    w[np.arange(n_out), lo] = 1 - (pos - lo)
    w[np.arange(n_out), lo + 1] = pos - lo
    return w


@functools.lru_cache(maxsize=4)
def grid(side):
    """The fixed part of every distortion, made once per picture size: each
    output pixel's (row, column) about the centre, each (side*side, 1), and
    the (side*side, GRID*GRID) interpolation of the coarse elastic field."""
    c = (side - 1) / 2
    up = interpolation(GRID, side)
    return (np.repeat(np.arange(side), side)[:, None] - c,
            np.tile(np.arange(side), side)[:, None] - c, np.kron(up, up))


def coordinate_terms(xp, params, side, dtype):
    """The terms of source_coordinates, in the dtype: a, the inverse
    affine map per example (4, m); the shifts (2, m); each output pixel's
    row and column about the centre (side*side, 1) and the centre c; and
    the elastic field's row and column displacements (side*side, m)."""
    c = (side - 1) / 2
    r0, c0, field = grid(side)
    cos, sin = np.cos(params["angle"]), np.sin(params["angle"])
    sy, sx = params["scale"], params["scale"] * params["aspect"]
    # The forward map scales, shears and rotates; its inverse, per example:
    a = np.stack([cos / sy, sin / sy, -sin / sx - params["shear"] * cos / sy,
                  cos / sx - params["shear"] * sin / sy])                     # (4, m)
    as_x = lambda h: xp.asarray(h, dtype=dtype)
    field = as_x(field)
    return (as_x(a), as_x(params["shift"]), as_x(r0), as_x(c0), c,
            field @ as_x(params["elastic"][0]), field @ as_x(params["elastic"][1]))


def source_coordinates(xp, params, side, dtype):
    """(rows, cols), each (side*side, m): where each output pixel of each
    example takes its value from.  The affine map is about the picture's
    centre, applied backwards (output -> input), plus the elastic field."""
    a, shift, r0, c0, c, dr, dc = coordinate_terms(xp, params, side, dtype)
    a = [a[k:k + 1, :] for k in range(4)]                                     # each (1, m)
    sr, sc = shift[0:1, :], shift[1:2, :]
    rows = a[0] * (r0 - sr) + a[1] * (c0 - sc) + c + dr
    cols = a[2] * (r0 - sr) + a[3] * (c0 - sc) + c + dc
    return rows, cols


def compiled(xp):
    """jit_augment's loops for NumPy arrays when Numba's loops run, else
    None (the passes below run); imported here, so Numba loads only when used."""
    if loops(xp) is None:
        return None
    from . import jit_augment
    return jit_augment


def sample(xp, x, rows, cols, side):
    """Bilinear sampling of the (side*side, m) pictures x at (rows, cols),
    with black outside the picture."""
    m = x.shape[1]
    flat = xp.reshape(x, (-1,))
    example = xp.reshape(xp.arange(m, dtype=xp.int64), (1, m))
    r, c = xp.floor(rows), xp.floor(cols)
    fr, fc = rows - r, cols - c
    r, c = xp.astype(r, xp.int64), xp.astype(c, xp.int64)
    out = xp.zeros_like(x)
    for dr, wr in ((0, 1 - fr), (1, fr)):
        for dc, wc in ((0, 1 - fc), (1, fc)):
            rr, cc = r + dr, c + dc
            inside = (rr >= 0) & (rr < side) & (cc >= 0) & (cc < side)
            idx = (xp.clip(rr, 0, side - 1) * side + xp.clip(cc, 0, side - 1)) * m + example
            values = xp.reshape(xp.take(flat, xp.reshape(idx, (-1,)), axis=0), x.shape)
            out = out + xp.where(inside, wr * wc, 0.0) * values
    return out


def neighbours(xp, x, side):
    """The 9 shifted copies (3x3 neighbourhood, zeros outside) of the
    (side*side, m) pictures, each (side, side, m)."""
    m = x.shape[1]
    img = xp.reshape(x, (side, side, m))
    zr = xp.zeros((1, side, m), dtype=x.dtype)
    padded = xp.concat([zr, img, zr], axis=0)
    zc = xp.zeros((side + 2, 1, m), dtype=x.dtype)
    padded = xp.concat([zc, padded, zc], axis=1)
    return [padded[i:i + side, j:j + side, :] for i in range(3) for j in range(3)]


BLUR = (1, 2, 1, 2, 4, 2, 1, 2, 1)  # the 3x3 Gaussian's weights, in sixteenths


def thicken_and_blur(xp, x, thicken, blur, side):
    """Blend each picture towards its dilation or erosion, then towards its
    3x3 Gaussian blur, by its own amounts (arrays of shape (1, m)), and
    clip to [0, 1]."""
    grow, shrink = xp.maximum(thicken, 0.0), xp.maximum(-thicken, 0.0)
    fast = compiled(xp)
    out = fast and fast.thicken_blur(x, grow, shrink, blur,
                                     np.array([w / 16 for w in BLUR], dtype=x.dtype), side)
    if out is not None:
        return out
    near = neighbours(xp, x, side)
    dilated, eroded = near[0], near[0]
    for v in near[1:]:
        dilated, eroded = xp.maximum(dilated, v), xp.minimum(eroded, v)
    shape = x.shape
    dilated, eroded = xp.reshape(dilated, shape), xp.reshape(eroded, shape)
    x = x + grow * (dilated - x) - shrink * (x - eroded)
    near = neighbours(xp, x, side)
    blurred = near[0] * (BLUR[0] / 16)
    for w, v in zip(BLUR[1:], near[1:]):
        blurred = blurred + v * (w / 16)
    return xp.clip(x + blur * (xp.reshape(blurred, shape) - x), 0.0, 1.0)


def augment(xp, x, params, side=28):
    """The (side*side, m) mini-batch x, each column distorted by its own
    parameters (from `draw`), clipped to [0, 1]."""
    if x.shape[0] != side * side:
        raise ValueError(f"augmentation needs {side}x{side} pictures, got {x.shape[0]} inputs")
    fast = compiled(xp)  # the coordinates and the sampling in one loop
    moved = fast and fast.sample(x, *coordinate_terms(xp, params, side, x.dtype), side)
    if moved is None:
        moved = sample(xp, x, *source_coordinates(xp, params, side, x.dtype), side)
    as_x = lambda h: xp.reshape(xp.asarray(h, dtype=x.dtype), (1, -1))
    return thicken_and_blur(xp, moved, as_x(params["thicken"]), as_x(params["blur"]), side)
