"""Your own pictures as MNIST columns, and the network's predictions for them.

MNIST was made by taking each NIST digit's bounding box, scaling it to fit
20x20 (keeping the aspect ratio, anti-aliased), and placing it in 28x28 so
that its centre of mass lands in the middle; white ink on black.  A network
trained on it has only ever seen digits made that way, so a photo of a
digit must be made the same way before the network can read it.  Pillow
only decodes the file; the rest is NumPy, so it is testable on arrays.
"""

import io
from pathlib import Path

import numpy as np

from . import backend
from .data import CLASSES, ROWS
from .extras import require

SIDE = ROWS
# Where MNIST puts the centre of mass: measured on its 10,000 test images,
# mean row 13.99 and column 14.01 (std 0.29), i.e. pixel (14, 14) rounded.
MNIST_CENTRE = 14.0
# How Fashion-MNIST was made instead: trimmed, longest edge scaled to 28,
# centred by its box (zalandoresearch/fashion-mnist, "Get the data").
# Fashion-MNIST's trim is exact (no threshold, no margin): its pictures have
# no anti-aliased strokes, and a box threshold would trim dark garments.
RECIPES = {"digits": {"box": 20, "centre": "mass", "threshold": 0.2, "margin": True},
           "fashion": {"box": 28, "centre": "box", "threshold": 0.0, "margin": False}}
# Less contrast than this between ink and background is a blank picture
# (JPEG noise on an empty page is a few hundredths).
MIN_CONTRAST = 0.1


class ImageError(ValueError):
    """A picture that cannot be read, or has nothing on it to read."""


def name_of(source):
    """What a picture is called in results and errors."""
    if isinstance(source, (str, Path)):
        return str(source)
    if isinstance(source, np.ndarray):
        return "<array>"
    return str(getattr(source, "name", "<bytes>"))


def grey_array(a):
    """A user's 2-D greyscale array (0 black, 1 white; 0-255 is scaled), checked."""
    try:
        a = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError):
        raise ImageError("pixels must be a 2-D array of numbers") from None
    if a.ndim != 2 or min(a.shape) < 1:
        raise ImageError(f"pixels must be a 2-D array, got shape {a.shape}")
    if not np.all(np.isfinite(a)) or a.min() < 0:
        raise ImageError("pixels must be finite numbers >= 0")
    return a / 255.0 if a.max() > 1.0 else a


def read_grey(source):
    """The picture in `source` (a path, bytes, a binary file object or a 2-D
    array) as a 2-D float array in [0, 1] (0 black, 1 white).

    Transparent pixels are laid over whichever of black or white contrasts
    with the ink, so strokes drawn on a transparent canvas stay visible.
    """
    if isinstance(source, np.ndarray):
        return grey_array(source)
    Image = require("PIL.Image", "image", "reading pictures")
    ImageOps = require("PIL.ImageOps", "image", "reading pictures")
    path = name_of(source)
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    elif isinstance(source, (str, Path)):
        source = Path(source)
        if source.is_dir():
            raise ImageError(f"{path}: is a folder, not a picture")
    try:
        with Image.open(source) as img:
            img.load()
            img = ImageOps.exif_transpose(img)  # phone photos are stored sideways
            return _to_grey(img)
    except FileNotFoundError:
        raise ImageError(f"{path}: file not found") from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"{path}: not a picture Pillow can read") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageError(f"{path}: damaged or unsupported picture ({exc})") from None


def _to_grey(img):
    if img.mode.startswith("I;16"):  # 16-bit greyscale: convert("L") would clip it
        return np.asarray(img, dtype=np.float64) / 65535.0
    if img.mode in ("I", "F"):
        a = np.asarray(img, dtype=np.float64)
        return a / a.max() if a.max() > 1 else a
    rgba = img.convert("RGBA")
    grey = np.asarray(rgba.convert("L"), dtype=np.float64) / 255.0
    alpha = np.asarray(rgba, dtype=np.float64)[:, :, 3] / 255.0
    if alpha.min() == 1.0:
        return grey
    ink = float((grey * alpha).sum() / max(alpha.sum(), 1e-9))
    under = 1.0 if ink < 0.5 else 0.0
    return grey * alpha + under * (1.0 - alpha)


def resample_matrix(n_in, n_out):
    """(n_out, n_in) weights that resize a line of n_in pixels to n_out.

    Shrinking averages each output pixel's whole footprint (area
    averaging), so a thin stroke in a large photo fades but never vanishes
    between samples; enlarging interpolates linearly.  Equal sizes give
    the identity.
    """
    scale = n_in / n_out
    lo = np.arange(n_out)[:, None] * scale  # output pixel j covers [lo, lo + scale)
    x = np.arange(n_in)[None, :]
    if scale >= 1:
        w = np.clip(np.minimum(lo + scale, x + 1) - np.maximum(lo, x), 0.0, None)
    else:
        w = np.maximum(0.0, 1.0 - np.abs(x + 0.5 - (lo + scale / 2)))
    return w / w.sum(axis=1, keepdims=True)


def ink(grey):
    """White-on-black ink in [0, 1] from any picture, whatever its background.

    The background is the median of the border, the one place a centred
    drawing leaves alone; ink is the distance from it, stretched so the
    strongest stroke is 1, as in MNIST.
    """
    grey = np.asarray(grey, dtype=np.float64)
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    background = float(np.median(border))
    if background > 0.5:  # dark on light: invert
        a = (background - grey) / background
    else:
        a = (grey - background) / (1.0 - background)
    a = np.clip(a, 0.0, 1.0)
    # How much the border varies is noise (JPEG, paper grain), not ink.  The
    # median deviation ignores strokes or garments touching the edge (up to
    # half the border), and the cap keeps noise from erasing real strokes.
    border_ink = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    a[a <= min(4 * float(np.median(border_ink)), 0.3)] = 0.0
    if a.max() < MIN_CONTRAST:
        raise ImageError("blank picture: no ink found")
    a /= a.max()
    return a


# The box is drawn around ink stronger than this: JPEG ringing and faint
# smudges would otherwise widen it and shrink the digit.  MNIST's own boxes
# are the same at this threshold as at zero for 99.6% of its test digits.
BOX_THRESHOLD = 0.2


def crop(a, threshold=BOX_THRESHOLD, margin=True):
    """The ink's box with a margin, and the box's longer side.

    The box, around strong ink, sets the scale; the margin keeps the faint
    anti-aliased edges around it, which MNIST's digits have too.
    """
    strong = a > threshold
    rows, cols = np.flatnonzero(strong.any(axis=1)), np.flatnonzero(strong.any(axis=0))
    size = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1
    m = max(1, size // 10) if margin else 0
    return a[max(rows[0] - m, 0):rows[-1] + 1 + m, max(cols[0] - m, 0):cols[-1] + 1 + m], size


def fit(a, size, box):
    """Scale by box/size, so the box's longer side becomes `box` pixels."""
    h, w = a.shape
    s = box / size
    out_h, out_w = max(1, round(h * s)), max(1, round(w * s))
    return np.clip(resample_matrix(h, out_h) @ a @ resample_matrix(w, out_w).T, 0.0, 1.0)


def place(a, centre="mass"):
    """Put `a` in a 28x28 field, by its centre of mass or its box's centre.

    MNIST shifts by whole pixels, which keeps the strokes as sharp as they
    were; a digit whose mass sits far off-centre may lose an edge, as there.
    """
    h, w = a.shape
    if centre == "mass":
        total = a.sum()
        cy = (a.sum(axis=1) @ np.arange(h)) / total
        cx = (a.sum(axis=0) @ np.arange(w)) / total
        top, left = round(MNIST_CENTRE - cy), round(MNIST_CENTRE - cx)
    else:
        top, left = (SIDE - h + 1) // 2, (SIDE - w + 1) // 2  # odd spare pixel: as Fashion-MNIST
    canvas = np.zeros((SIDE + 2 * h, SIDE + 2 * w))
    canvas[h + top:2 * h + top, w + left:2 * w + left] = a
    return canvas[h:h + SIDE, w:w + SIDE]


def preprocess(grey, recipe="digits"):
    """A greyscale picture (2-D, 0 black to 1 white) as a (784,) MNIST column."""
    r = RECIPES[recipe]
    region, size = crop(ink(grey), r["threshold"], r["margin"])
    return place(fit(region, size, r["box"]), r["centre"]).reshape(SIDE * SIDE).astype(np.float32)


def load(source, recipe="digits"):
    """The picture in `source` (see read_grey), preprocessed; ImageError (one
    line, naming the picture) if it cannot be."""
    path = name_of(source)
    try:
        return preprocess(read_grey(source), recipe)
    except ImageError as exc:
        msg = str(exc)
        raise ImageError(msg if msg.startswith(f"{path}:") else f"{path}: {msg}") from None


def class_names(net, dataset="mnist"):
    """The model's own class names if it has them, else the dataset's."""
    names = net.classes
    return tuple(names) if names is not None else CLASSES[dataset]


def recipe_for(classes):
    return "fashion" if tuple(classes) == CLASSES["fashion-mnist"] else "digits"


def predict(net, paths, dataset="mnist", with_input=False):
    """One dict per picture, in order: {path, digit, label, outputs} or {path, error}.

    `paths` may also hold bytes, binary file objects or 2-D greyscale arrays
    (see read_grey): `digitnet serve` predicts through this same function,
    `with_input` adding "input", the 28x28 picture the network saw (a list
    of 28 rows of floats in [0, 1]).

    A picture that cannot be read gets an "error" line and the rest still
    get predictions: one bad file in a folder should not hide the others.
    `digit` is the class index (for Fashion-MNIST too); `outputs` are the
    ten activations, probabilities when the model's output is softmax.
    """
    classes = class_names(net, dataset)
    recipe = recipe_for(classes)
    results, columns = [], []
    for path in paths:
        try:
            columns.append(load(path, recipe))
            results.append({"path": name_of(path)})
        except ImageError as exc:
            results.append({"path": name_of(path), "error": str(exc)})
    if columns:
        outputs = backend.to_numpy(net.feedforward(np.stack(columns, axis=1))).T
        ok = (r for r in results if "error" not in r)
        for r, out, column in zip(ok, outputs, columns):
            k = int(np.argmax(out))
            r.update(digit=k, label=classes[k], outputs=[round(float(v), 6) for v in out])
            if with_input:
                r["input"] = np.round(column.reshape(SIDE, SIDE), 4).tolist()
    return results
