"""How well saved networks read digits that are not MNIST's: our own stand-in
for other people's handwriting, scanned and drawn the way users do.

    DIGITNET_DATA=../shared/data python benchmarks/handwriting_check.py MODEL.npz [MODEL2.npz ...]

Two sets, both made here from what ships with the test extras, both run
through `imaging.preprocess` exactly as `digitnet predict` runs a user's
picture:

- fonts: the digits 0-9 typed in every text font matplotlib ships (DejaVu,
  STIX, Computer Modern; upright, oblique, bold, serif, mono), at three pen
  widths and three slants, on paper-white with dark ink: other shapes than
  MNIST's writers use (a "1" with a base and a flag, open and closed 4s,
  serif 7s, barred and plain zeros in the mono fonts);
- MNIST test digits written with other pens and hands (seeded): thick
  (dilated twice), blurred, thin (eroded), strongly slanted (shear 0.45),
  and small on a large page (downscaled, so strokes come back thick and
  soft): each beyond what `--augment` draws from.

Prints the accuracy of each model on each group and overall.  A stand-in,
not the real thing: a user's own drawings remain the final judge
(`digitnet serve`).
"""

import os
import sys
from pathlib import Path

import numpy as np

import digitnet
from digitnet import backend, imaging

SKIP = ("STIXSiz", "STIXNonUni", "cmex", "cmsy", "LastResort", "DejaVuMathTeX", "Display")


def fonts():
    import matplotlib
    folder = Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf"
    return sorted(p for p in folder.glob("*.ttf") if not p.name.startswith(SKIP))


def font_digits():
    """(columns (784, n), labels) of typed digits, preprocessed like a photo."""
    from PIL import Image, ImageDraw, ImageFont
    columns, labels = [], []
    for path in fonts():
        font = ImageFont.truetype(str(path), 64)
        for digit in range(10):
            for width in (0, 2, 4):
                for slant in (-0.2, 0.0, 0.25):
                    img = Image.new("L", (128, 128), 235)
                    ImageDraw.Draw(img).text((32, 20), str(digit), font=font, fill=20,
                                             stroke_width=width, stroke_fill=20)
                    img = img.transform(img.size, Image.AFFINE, (1, slant, -slant * 64, 0, 1, 0),
                                        resample=Image.BILINEAR, fillcolor=235)
                    grey = np.asarray(img, dtype=np.float64) / 255
                    try:
                        columns.append(imaging.preprocess(grey))
                    except imaging.ImageError:  # a font without this glyph
                        continue
                    labels.append(digit)
    return np.stack(columns, axis=1), np.array(labels)


def small(im):
    """The digit written 40 pixels tall on a 448-pixel page."""
    from PIL import Image
    page = Image.new("L", (448, 448))
    page.paste(im.resize((40, 40), Image.BILINEAR), (200, 200))
    return page


def pens(test, n=1000, seed=0):
    """{group: (columns, labels)}: MNIST test digits in other hands and pens."""
    from PIL import Image, ImageFilter
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(test), n, replace=False)
    images = test.images[:, pick].T.reshape(-1, 28, 28)
    labels = test.labels[pick]
    as_img = lambda a: Image.fromarray(np.uint8(np.clip(a, 0, 1) * 255)).resize((112, 112), Image.BILINEAR)
    ways = {
        "thick pen": lambda im: im.filter(ImageFilter.MaxFilter(9)).filter(ImageFilter.MaxFilter(5)),
        "blurred": lambda im: im.filter(ImageFilter.GaussianBlur(6)),
        "thin pen": lambda im: im.filter(ImageFilter.MinFilter(5)),
        "slanted": lambda im: im.transform(im.size, Image.AFFINE, (1, 0.45, -0.45 * 56, 0, 1, 0),
                                           resample=Image.BILINEAR),
        "small on a page": small,
    }
    groups = {}
    for name, way in ways.items():
        cols = []
        for a in images:
            grey = np.asarray(way(as_img(a)), dtype=np.float64) / 255
            try:
                cols.append(imaging.preprocess(grey))
            except imaging.ImageError:  # eroded away: counts as wrong
                cols.append(np.zeros(784, np.float32))
        groups[name] = (np.stack(cols, axis=1), labels)
    return groups


def accuracy(net, columns, labels):
    out = backend.to_numpy(net.feedforward(columns))
    return float(np.mean(np.argmax(out, axis=0) == labels))


def main(paths):
    _, _, test = digitnet.load_dataset("mnist", os.environ.get("DIGITNET_DATA"),
                                       download_missing=False)
    groups = {"fonts": font_digits(), **pens(test)}
    nets = {p: digitnet.load(p, device="cpu") for p in paths}
    names = list(groups)
    print("model".ljust(28) + "".join(n[:16].rjust(17) for n in names) + "overall".rjust(10)
          + "MNIST test".rjust(12))
    for path, net in nets.items():
        accs = [accuracy(net, *groups[n]) for n in names]
        total = sum(a * groups[n][0].shape[1] for a, n in zip(accs, names))
        count = sum(groups[n][0].shape[1] for n in names)
        print(Path(path).name[:27].ljust(28) + "".join(f"{100 * a:16.1f}%" for a in accs)
              + f"{100 * total / count:9.1f}%" + f"{100 * net.evaluate(test) / len(test):11.2f}%")
    print("(" + ", ".join(f"{n}: {groups[n][0].shape[1]}" for n in names) + " pictures)")


if __name__ == "__main__":
    main(sys.argv[1:])
