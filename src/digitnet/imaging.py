"""Your own pictures as MNIST columns, and the network's predictions for them.

MNIST was made by taking each NIST digit's bounding box, scaling it to fit
20x20 (keeping the aspect ratio, anti-aliased), and placing it in 28x28 so
that its centre of mass lands in the middle; white ink on black.  A network
trained on it has only ever seen digits made that way, so a photo of a
digit must be made the same way before the network can read it.  Pillow
only decodes the file (a large one reduced as it is decoded: see decode);
telling ink from a photo's uneven, grainy, speckled paper is ink.py's; the
rest is NumPy, so it is testable on arrays.
"""

import io
import warnings
from pathlib import Path

import numpy as np

from . import backend
from . import ink as _ink
from .data import CLASSES, ROWS, dataset_of
from .extras import require

SIDE = ROWS
# Where MNIST puts the centre of mass: measured on its 10,000 test images,
# mean row 13.99 and column 14.01 (std 0.29), i.e. pixel (14, 14) rounded.
MNIST_CENTRE = 14.0
# How Fashion-MNIST was made instead: trimmed, longest edge scaled to 28,
# centred by its box (zalandoresearch/fashion-mnist, "Get the data").
# Fashion-MNIST's trim is exact (no threshold, no margin): its pictures have
# no anti-aliased strokes, and a box threshold would trim dark garments.
# Specks far from a digit are dropped and uneven lighting is fitted (see
# ink.find); a garment's parts are kept whatever their distance, and its
# background is flat, as a garment filling the picture is no uneven paper.
RECIPES = {"digits": {"box": 20, "centre": "mass", "threshold": 0.2, "margin": True,
                      "specks": True, "shading": True},
           "fashion": {"box": 28, "centre": "box", "threshold": 0.0, "margin": False,
                       "specks": False, "shading": False}}


class ImageError(ValueError):
    """A picture that cannot be read, or has nothing on it to read."""


# A pipe is read whole before decoding (Pillow seeks about in a picture);
# more than this is refused rather than held in memory.
MAX_PIPED_BYTES = 100_000_000


class Piped:
    """A picture arriving on a pipe (`digitnet predict MODEL -` reads standard
    input), under the name results give it."""

    def __init__(self, stream, name="<stdin>"):
        self.stream, self.name = stream, name

    def data(self):
        if self.stream is None:
            raise ImageError(f"{self.name}: there is no standard input to read")
        if self.stream.isatty():
            raise ImageError(f"{self.name}: is a terminal: pipe a picture in "
                             "(digitnet predict MODEL - < digit.png)")
        data = self.stream.read(MAX_PIPED_BYTES + 1)
        if len(data) > MAX_PIPED_BYTES:
            raise ImageError(f"{self.name}: more than {MAX_PIPED_BYTES // 10**6} MB; "
                             "save the picture to a file and give its name")
        if not data:
            raise ImageError(f"{self.name}: empty: no picture was piped in")
        return data


def name_of(source):
    """What a picture is called in results and errors."""
    if isinstance(source, (str, Path)):
        return str(source)
    if isinstance(source, np.ndarray):
        return "<array>"
    return str(getattr(source, "name", "<bytes>"))


# The one error for a value that is no pixel (serve's JSON says the same).
PIXEL_RANGE = "pixels must be finite numbers from 0 to 1, or from 0 to 255"


def grey_array(a):
    """A user's 2-D greyscale array (0 black, 1 white; 0-255 is scaled), checked."""
    try:
        a = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError):
        raise ImageError("pixels must be a 2-D array of numbers") from None
    if a.ndim != 2 or min(a.shape) < 1:
        raise ImageError(f"pixels must be a 2-D array, got shape {a.shape}")
    if a.size > MAX_PIXELS:
        raise ImageError(f"pixels: {a.shape[0]}x{a.shape[1]} is more than "
                         f"{MAX_PIXELS // 1_000_000} megapixels")
    if not np.all(np.isfinite(a)) or a.min() < 0 or a.max() > 255:
        raise ImageError(PIXEL_RANGE)
    return a / 255.0 if a.max() > 1.0 else a


def read_grey(source):
    """The picture in `source` (a path, bytes, a binary file object, a Piped
    stream or a 2-D array) as a 2-D float array in [0, 1] (0 black, 1
    white); see `read`."""
    return read(source)[0]


def read(source):
    """(grey, notes): the picture in `source` as in read_grey, and a list of
    things the user should know about how it was read (an animation's
    other frames ignored).

    Transparent pixels are laid over whichever of black or white contrasts
    with the ink, so strokes drawn on a transparent canvas stay visible.
    Large pictures are decoded reduced (see decode).
    """
    if isinstance(source, np.ndarray):
        return grey_array(source), []
    Image = require("PIL.Image", "image", "reading pictures")
    path = name_of(source)
    if isinstance(source, Piped):
        source = source.data()
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    elif isinstance(source, (str, Path)):
        source = Path(source)
        if source.is_dir():
            raise ImageError(f"{path}: is a folder, not a picture")
    _quiet_bombs(Image)
    try:
        with Image.open(source) as img:
            return decode(img, path)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{path}: file not found") from None
    except Image.UnidentifiedImageError:
        raise ImageError(f"{path}: not a picture Pillow can read") from None
    except Image.DecompressionBombError:
        raise ImageError(f"{path}: picture too large: over "
                         f"{2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels") from None
    except Image.DecompressionBombWarning:  # the caller's filters made it an error
        raise ImageError(f"{path}: picture too large: over "
                         f"{Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageError(f"{path}: damaged or unsupported picture ({exc})") from None


def _quiet_bombs(Image):
    """Silence Pillow's warning of "decompression bombs" (above 89
    megapixels): decode refuses what is too large for memory with a one-line
    error of its own, and a warning must not reach the user.  The filter is
    for the whole process, added once: `digitnet serve` reads pictures in
    threads, and warnings.catch_warnings is not thread-safe before 3.14."""
    if not any(f[2] is Image.DecompressionBombWarning for f in warnings.filters):
        warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


# Pictures are decoded at most this many pixels wide or high.  The network
# sees 20x20 pixels of digit, and ink finding works as well on a 1000-pixel
# photo as on a 4000-pixel one (the pixels it drops are averaged, not lost).
WORK_SIDE = 1024
# The most pixels decoded at once: 64 megapixels is 256 MB at Pillow's four
# bytes a pixel (RGB, RGBA, 32-bit), so any accepted picture is read in well
# under 500 MB (340 MB measured for 8000x8000 RGBA).  JPEGs count after
# Pillow's reduced decoding (up to 8x8 fewer pixels), so a 100-megapixel
# phone photo still reads.  WebP and AVIF decode into buffers of their own
# first, about 16 bytes a pixel in all: 20 megapixels measured 340 MB.
# This is the one limit: `digitnet serve` refuses larger pictures by their
# header with it too.  A side is at most MAX_SIDE pixels (JPEG's own limit)
# whatever the area: Pillow holds two rows of a PNG while decoding and a
# pointer per row, so a 1 x 64,000,000 PNG took 768 MB (and 64,000,000 x 1
# as much).  Read in tiles, 65535 x 976 and 976 x 65535 RGBA PNGs peak at
# 290 MB, 8000 x 8000 at 335 MB (whole processes, 2026-12-01).
MAX_PIXELS = 64_000_000
MAX_SIDE = 65_535
MAX_PIXELS_BUFFERED = {"WEBP": 20_000_000, "AVIF": 20_000_000}
# Orientation tag values (EXIF 0x0112) and the transposes that undo them.
ORIENTATION = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE",
               6: "ROTATE_270", 7: "TRANSVERSE", 8: "ROTATE_90"}
# Modes Image.reduce cannot average, and the mode each is averaged in.
REDUCIBLE = {"1": "L", "P": "RGBA", "PA": "RGBA", "I;16": "I", "I;16L": "I", "I;16B": "I",
             "I;16N": "I"}


def size_error(width, height):
    """Why a width x height picture is too large to read, or None."""
    if max(width, height) > MAX_SIDE:
        return (f"picture too large: {width}x{height} pixels, at most {MAX_SIDE} pixels "
                "a side")
    if width * height > MAX_PIXELS:
        return (f"picture too large: {width}x{height} pixels, at most "
                f"{MAX_PIXELS // 1_000_000} megapixels")
    return None


def decode(img, path):
    """(grey, notes) from an opened Pillow image, without holding more than
    it in memory.

    Pictures too large to hold are refused before anything is decoded.  A
    JPEG is decoded reduced and greyscale by Pillow's draft mode (the
    decoder skips the detail); anything else is decoded whole and averaged
    down to WORK_SIDE in strips, so no full-size copy (a conversion, a
    float array) is ever made.  Phone photos are stored sideways with an
    orientation tag, applied at the end on the small picture.  Of an
    animation (or a multi-page TIFF) only the first frame is read, and a
    note says so.
    """
    Image = require("PIL.Image", "image", "reading pictures")
    w, h = img.size
    pixels = w * h
    if img.format == "JPEG" and max(w, h) > WORK_SIDE:
        k = WORK_SIDE / max(w, h)
        img.draft("L", (max(1, int(w * k)), max(1, int(h * k))))
        if not img.info.get("progressive"):  # a progressive JPEG holds all its
            pixels = img.size[0] * img.size[1]  # coefficients, 3 bytes a pixel
    most = MAX_PIXELS_BUFFERED.get(img.format, MAX_PIXELS)
    # before anything that decodes (a GIF's frames, a PNG's EXIF)
    too_large = size_error(w, h) if max(w, h) > MAX_SIDE else None
    if too_large:
        raise ImageError(f"{path}: {too_large}")
    if pixels > most:
        raise ImageError(f"{path}: picture too large: {w}x{h} pixels is {w * h / 1e6:.0f} "
                         f"megapixels (at most {most / 1e6:.0f} can be read"
                         f"{' as ' + img.format if most != MAX_PIXELS else ''})")
    notes = []
    if getattr(img, "is_animated", False):
        notes.append(f"{img.format} with {img.n_frames} frames: only the first frame is read")
        img.seek(0)
    img.load()
    orientation = img.getexif().get(0x0112, 1)  # a PNG's may follow its pixels
    w, h = img.size
    sixteen = img.mode.startswith("I;16")
    f = -(-max(w, h) // WORK_SIDE)  # ceil
    if f > 1:
        mode = REDUCIBLE.get(img.mode, img.mode)
        if "transparency" in img.info:  # a colour key: keep it as alpha, reduced too
            mode = "RGBA"
        small = Image.new(mode, (-(-w // f), -(-h // f)))
        # tiles a whole number of blocks high and wide, a few MB each
        high, wide = f * max(1, 256 // f), f * max(1, 4096 // f)
        for y in range(0, h, high):
            for x in range(0, w, wide):
                tile = img.crop((x, y, min(x + wide, w), min(y + high, h)))
                tile = tile.convert(mode) if mode != img.mode else tile
                small.paste(tile.reduce(f), (x // f, y // f))
        img = small
    if orientation in ORIENTATION:
        img = img.transpose(getattr(Image.Transpose, ORIENTATION[orientation]))
    return _to_grey(img, sixteen), notes


def _to_grey(img, sixteen=False):
    if sixteen or img.mode.startswith("I;16"):  # 16-bit greyscale: convert("L") would clip it
        return np.asarray(img, dtype=np.float64) / 65535.0
    if img.mode in ("I", "F"):
        a = np.asarray(img, dtype=np.float64)
        if not np.all(np.isfinite(a)):
            raise ImageError("the picture holds NaN or infinite values")
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


def _find(grey, specks, shading):
    try:
        return _ink.find(grey, specks=specks, shading=shading)
    except _ink.BlankError as exc:
        raise ImageError(str(exc)) from None


def shrink(grey, side=WORK_SIDE):
    """A 2-D array averaged down by a whole factor until neither side is
    above `side` (pictures from files already are; large arrays may not be)."""
    f = -(-max(grey.shape) // side)
    if f == 1:
        return grey
    # Blocks of f x f (shorter at the far edges), never padded: a 1 x N
    # array stays O(N) in memory, whatever its shape.
    for axis in (0, 1):
        n = grey.shape[axis]
        starts = np.arange(0, n, f)
        counts = np.diff(np.append(starts, n)).astype(np.float64)
        sums = np.add.reduceat(grey, starts, axis=axis)
        grey = sums / (counts[:, None] if axis == 0 else counts[None, :])
    return grey


# The box is drawn around ink stronger than this: JPEG ringing and faint
# smudges would otherwise widen it and shrink the digit.
BOX_THRESHOLD = _ink.STRONG


def crop(a, threshold=BOX_THRESHOLD, margin=True, guide=None):
    """The ink's box with a margin, and the box's longer side.

    The box, around strong ink, sets the scale; the margin keeps the faint
    anti-aliased edges around it, which MNIST's digits have too.  The box
    is drawn on `guide` where given (ink.find's smoothed ink: a noisy
    pixel must not widen it).
    """
    strong = (a if guide is None else guide) > threshold
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
    grey = np.asarray(grey, dtype=np.float64)
    if grey.ndim != 2 or not np.all(np.isfinite(grey)):
        raise ImageError("a picture must be a 2-D array of finite numbers")
    a, guide = _find(shrink(grey), r["specks"], r["shading"])
    region, size = crop(a, r["threshold"], r["margin"], guide)
    return place(fit(region, size, r["box"]), r["centre"]).reshape(SIDE * SIDE).astype(np.float32)


def load(source, recipe="digits"):
    """The picture in `source` (see read_grey), preprocessed; ImageError (one
    line, naming the picture) if it cannot be."""
    return load_noted(source, recipe)[0]


def load_noted(source, recipe="digits"):
    """(column, notes): load's column, and read's notes on how it was read."""
    path = name_of(source)
    try:
        grey, notes = read(source)
        return preprocess(grey, recipe), notes
    except ImageError as exc:
        msg = str(exc)
        raise ImageError(msg if msg.startswith(f"{path}:") else f"{path}: {msg}") from None


def class_names(net, dataset="mnist"):
    """The model's own class names if it has them, else the dataset's."""
    names = net.classes
    return tuple(names) if names is not None else CLASSES[dataset]


def recipe_for(classes):
    return "fashion" if dataset_of(classes) == "fashion-mnist" else "digits"


def predict(net, paths, dataset="mnist", with_input=False):
    """One dict per picture, in order: {path, digit, label, outputs} or {path, error},
    with "note" added where the picture was read with a caveat (only an
    animation's first frame).

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
    results, columns, notes = [], [], []
    for path in paths:
        try:
            column, noted = load_noted(path, recipe)
            columns.append(column)
            notes.append(noted)
            results.append({"path": name_of(path)})
        except ImageError as exc:
            results.append({"path": name_of(path), "error": str(exc)})
    if columns:
        outputs = backend.to_numpy(net.feedforward(np.stack(columns, axis=1))).T
        ok = (r for r in results if "error" not in r)
        for r, out, column, noted in zip(ok, outputs, columns, notes):
            k = int(np.argmax(out))
            r.update(digit=k, label=classes[k], outputs=[round(float(v), 6) for v in out])
            if with_input:
                r["input"] = np.round(column.reshape(SIDE, SIDE), 4).tolist()
            if noted:
                r["note"] = "; ".join(noted)
    return results
