"""What a POST to `digitnet serve`'s /api/predict may carry, checked before
any work: a PNG or JPEG whose first bytes and header agree with what it
claims to be and whose size imaging can read, or JSON pixels whose every
number is a pixel value, nested no deeper than a picture needs."""

import io
import json

import numpy as np

from . import imaging
from .connections import HTTPError
from .extras import require

MAGIC = {"image/png": (b"\x89PNG\r\n\x1a\n",), "image/jpeg": (b"\xff\xd8\xff",)}
# Brackets deep: a picture is 2 (rows of numbers); the parser recurses.
MAX_NESTING = 32


def picture(body, kind):
    """(body, pixels): a PNG or JPEG body, checked before anything decodes
    it: its first bytes must say what its Content-Type says (no other
    Pillow decoder is reachable from the network), and its header's size
    must be sane."""
    if not body.startswith(MAGIC[kind]):
        raise HTTPError(400, f"the body is not a {kind.split('/')[1].upper()} picture")
    Image = require("PIL.Image", "image", "digitnet serve")
    try:
        with Image.open(io.BytesIO(body)) as img:  # reads the header only
            width, height = img.size
    except Image.DecompressionBombError:
        raise HTTPError(413, "picture too large (a decompression bomb?)") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the picture's fault
        raise HTTPError(400, f"damaged picture ({type(exc).__name__})") from None
    too_large = imaging.size_error(width, height)  # imaging's limits, before decoding
    if too_large:
        raise HTTPError(413, too_large)
    return body, width * height


def _pixel_value(text):
    """A JSON number, as json.loads meets it: a pixel value or a 400.  As
    text, so that a 400-digit integer never becomes a Python int (which
    numpy cannot hold, and Python refuses past 4300 digits)."""
    value = float(text)  # a huge one is inf, refused below
    if not 0 <= value <= 255:
        raise HTTPError(400, imaging.PIXEL_RANGE)
    return value


def _not_a_number(name):
    raise HTTPError(400, imaging.PIXEL_RANGE)  # NaN, Infinity, -Infinity


def nesting(body):
    """How deeply brackets nest in `body` (strings' brackets counted too:
    a picture has none)."""
    b = np.frombuffer(body, dtype=np.uint8)
    steps = (np.isin(b, (ord("["), ord("{"))).astype(np.int32)
             - np.isin(b, (ord("]"), ord("}"))))
    return int(np.cumsum(steps).max(initial=0))


def pixels(body):
    """(array, pixels): JSON {"pixels": [[...], ...]} as a 2-D float array
    of pixel values, 0-1 or 0-255 (imaging checks the rest)."""
    if nesting(body) > MAX_NESTING:
        raise HTTPError(400, "malformed JSON: nested too deeply")
    try:
        obj = json.loads(body, parse_int=_pixel_value, parse_float=_pixel_value,
                         parse_constant=_not_a_number)
    except UnicodeDecodeError:
        raise HTTPError(400, "the JSON body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise HTTPError(400, f"malformed JSON: {exc.msg} at line {exc.lineno} "
                             f"column {exc.colno}") from None
    if not isinstance(obj, dict) or "pixels" not in obj:
        raise HTTPError(400, 'expected a JSON object {"pixels": [[...], ...]}')
    try:
        a = np.asarray(obj["pixels"], dtype=np.float64)
    except (TypeError, ValueError):
        raise HTTPError(400, "pixels must be a 2-D array of numbers, rows of equal length") \
            from None
    if a.ndim != 2:
        raise HTTPError(400, f"pixels must be a 2-D array (rows of numbers), got shape {a.shape}")
    return a, a.size
