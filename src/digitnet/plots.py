"""Pictures of learning: curves, mistakes, confusion, hidden neurons, samples.

Each function returns a matplotlib Figure and, given `path`, writes it
atomically as the format its suffix names: PNG, SVG or PDF.  Figures are built without pyplot (no GUI backend, no
global state), at a fixed size and dpi so a picture's pixel size is known.
"""

import json
import math
from pathlib import Path

import numpy as np

from . import backend
from .data import COLS, ROWS, dataset_of
from .extras import require
from .files import write_atomic

DPI = 100
# What matplotlib writes without more libraries, by the suffix that names it.
FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
# (key, split, kind) for everything an epoch record may carry; plain
# "accuracy" is the test accuracy of metrics files that have nothing else.
SERIES = [("training_accuracy", "training", "accuracy"),
          ("validation_accuracy", "validation", "accuracy"),
          ("test_accuracy", "test", "accuracy"),
          ("training_cost", "training", "cost"),
          ("validation_cost", "validation", "cost"),
          ("test_cost", "test", "cost")]
LINES = {"test": "-", "validation": "--", "training": ":"}


def figure(width, height):
    """A pyplot-free Figure of width x height inches (DPI pixels per inch)."""
    require("matplotlib", "plot", "pictures")
    from matplotlib.figure import Figure
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def picture_format(path):
    """The format `path`'s suffix names, or a ValueError that lists them:
    PNG bytes under a .jpg name would be a silent wrong answer."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: name a {', '.join(FORMATS)} file (the suffix picks the "
                         f"format), not {suffix or 'one without a suffix'}")
    return FORMATS[suffix]


def save(fig, path):
    """Write `fig` to `path` in the format its suffix names, atomically (a
    temporary file, renamed)."""
    kind = picture_format(path)
    write_atomic(path, lambda f: fig.savefig(f, format=kind, dpi=DPI))


def _done(fig, path):
    if path is not None:
        save(fig, path)
    return fig


def read_metrics(path):
    """A metrics JSON written by `digitnet train --metrics`, checked enough to plot."""
    try:
        run = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError(f"{path}: not a JSON file") from None
    except RecursionError:
        raise ValueError(f"{path}: not a metrics file (JSON nested too deep)") from None
    if not isinstance(run, dict) or not isinstance(run.get("epochs"), list):
        raise ValueError(f"{path}: not a metrics file (no 'epochs' list)")
    return run


def number(value):
    """True for a finite number: NaN (a diverged epoch's cost, or a file
    not written by digitnet) is left out of a curve as a missing value is."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def curve(run, key):
    """(epochs, values) for `key`, with accuracies as percentages."""
    points = []
    for r in run["epochs"]:
        if not isinstance(r, dict):
            continue
        value = r.get(key)
        if value is None and key == "test_accuracy":
            value = r.get("accuracy")
        if number(value):
            epoch = r.get("epoch")
            points.append((epoch if number(epoch) else len(points) + 1,
                           100 * value if key.endswith("accuracy") else value))
    return [p[0] for p in points], [p[1] for p in points]


def run_label(run, fallback):
    c = run.get("config", {})
    if "eta" in c:
        return f"{c.get('model', c.get('sizes', ''))} eta={c['eta']}".strip()
    return fallback


def labelled_runs(runs, labels):
    """(metrics dicts, one label each) from metrics dicts or files and the
    labels given, or each run's own."""
    runs = [read_metrics(r) if isinstance(r, (str, Path)) else r for r in runs]
    labels = labels or [run_label(r, f"run {i + 1}") for i, r in enumerate(runs)]
    if len(labels) != len(runs):
        raise ValueError(f"{len(labels)} labels for {len(runs)} runs")
    return runs, labels


def learning_curves(runs, labels=None, path=None):
    """Accuracy (and cost, when recorded) per epoch, one colour per run.

    `runs` are metrics dicts or paths to metrics files; the line style
    tells the split (test solid, validation dashed, training dotted), so
    runs with different learning rates compare on one plot as in the book.
    """
    runs, labels = labelled_runs(runs, labels)
    kinds = [k for k in ("accuracy", "cost")
             if any(curve(r, key)[0] for r in runs for key, _, kind in SERIES if kind == k)]
    if not kinds:
        raise ValueError("no accuracy or cost per epoch in these metrics files")
    fig = figure(5 * len(kinds) + 1, 4)
    from matplotlib.ticker import MaxNLocator
    axes = fig.subplots(1, len(kinds), squeeze=False)[0]
    colours = [f"C{i % 10}" for i in range(len(runs))]
    for ax, kind in zip(axes, kinds):
        for run, label, colour in zip(runs, labels, colours):
            for key, split, k in SERIES:
                x, y = curve(run, key)
                if k == kind and x:
                    ax.plot(x, y, LINES[split], color=colour, marker="." if len(x) < 40 else None,
                            label=f"{label}, {split}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 2.5
        ax.set_ylabel("accuracy (%)" if kind == "accuracy" else "cost")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return _done(fig, path)


def time_curve(run, key="test_accuracy"):
    """(seconds, accuracy %) after each epoch that measured `key`'s set:
    the wall time since training began, evaluation included."""
    value = lambda r: r.get(key, r.get("accuracy")) if key == "test_accuracy" else r.get(key)
    points = [(r["elapsed"], 100 * value(r))
              for r in run["epochs"] if isinstance(r, dict) and number(r.get("elapsed"))
              and r["elapsed"] > 0 and number(value(r))]
    return [p[0] for p in points], [p[1] for p in points]


def time_to_accuracy(runs, labels=None, target=None, path=None):
    """Test accuracy against wall seconds, one line per run, both axes
    stretched where the recipes differ: time on a log scale (a one-minute
    run and a thirty-minute one on one picture) and accuracy on a logit
    scale (95% -> 99% is as far as 99% -> 99.8%).  A run that measured
    the test set less often than the validation set (--test-at-end: once)
    gets its validation accuracy dashed beside it, so its progress shows.
    `target`, a percentage, is drawn as a level line."""
    runs, labels = labelled_runs(runs, labels)
    curves = [time_curve(r) for r in runs]
    if not any(x for x, _ in curves):
        raise ValueError("no test accuracy with its elapsed seconds in these metrics files")
    fig = figure(8, 4.5)  # first: a missing matplotlib is require's one line
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
    ax = fig.subplots()
    drawn = []

    def draw(x, y, style, colour, label, marker="."):
        # clipped off 100%, which the logit scale puts at infinity
        ax.plot(x, [min(v, 99.99) / 100 for v in y], style, color=colour,
                marker=marker if len(x) < 60 else None, label=label)
        drawn.extend(y)
    for i, ((x, y), label, run) in enumerate(zip(curves, labels, runs)):
        if not x:
            continue
        draw(x, y, "-", f"C{i % 10}", label)
        vx, vy = time_curve(run, "validation_accuracy")
        if len(vx) > len(x):
            draw(vx, vy, "--", f"C{i % 10}", f"{label}, validation", marker=None)
    if target is not None:
        ax.axhline(target / 100, color="0.4", linewidth=0.8, linestyle=":")
    ax.set_xscale("log")
    ax.set_yscale("logit")
    seconds = [1, 3, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200]  # 1200 crowds 1800
    ax.xaxis.set_major_locator(FixedLocator(seconds))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    levels = [0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.997, 0.998, 0.999]
    ax.yaxis.set_major_locator(FixedLocator(levels))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:g}%"))
    low = min(drawn)
    ax.set_ylim(max(min(low, target or 100) / 100 - 0.005, 0.5), 0.998)
    ax.set_xlabel("wall seconds since training began (log scale)")
    ax.set_ylabel("test accuracy (logit scale)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="lower right")
    return _done(fig, path)


def predictions(net, dataset):
    """The network's class for every example (net.outputs, chunked on its device)."""
    return np.argmax(net.outputs(dataset.images), axis=1)


def _names(net, dataset):
    names = net.classes if net is not None else None
    return tuple(names) if names is not None else tuple(dataset.classes)


def _grid(n, cols):
    return max(1, -(-n // cols)), min(n, cols) or 1


def _image_grid(images, titles, cols, cmap="gray", title=None, scale=1.1):
    """Images (n, 28, 28) in a grid with a small title over each."""
    n = len(images)
    rows, cols = _grid(n, cols)
    fig = figure(cols * scale, rows * scale + (0.4 if title else 0))
    if title:
        fig.suptitle(title, fontsize="medium")
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < n:
            ax.imshow(images[i], cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(titles[i], fontsize=7, pad=2)
    return fig


def misclassified(net, dataset, n=40, cols=10, path=None, predicted=None):
    """The first `n` test examples the network gets wrong: "true > predicted"."""
    predicted = predictions(net, dataset) if predicted is None else predicted
    wrong = np.flatnonzero(predicted != dataset.labels)
    names = _names(net, dataset)
    pick = wrong[:n]
    images = dataset.rows[pick].reshape(-1, ROWS, COLS)
    titles = [f"{names[dataset.labels[i]]} > {names[predicted[i]]}" for i in pick]
    title = (f"{len(wrong)} of {len(dataset)} misclassified; first {len(pick)} "
             "(true > predicted)")
    return _done(_image_grid(images, titles, cols, title=title, scale=1.2), path)


def confusion_matrix(net, dataset, path=None, predicted=None):
    """Counts of (true class, predicted class): where the mistakes go."""
    predicted = predictions(net, dataset) if predicted is None else predicted
    names = _names(net, dataset)
    k = len(names)
    counts = np.bincount(dataset.labels * k + predicted, minlength=k * k).reshape(k, k)
    fig = figure(7, 6.2)
    ax = fig.subplots()
    # Log colours: the diagonal's ~1000s would otherwise wash out the errors.
    shown = np.log1p(counts)
    ax.imshow(shown, cmap="Blues")
    for t in range(k):
        for p in range(k):
            dark = shown[t, p] > 0.6 * shown.max()
            ax.text(p, t, str(counts[t, p]), ha="center", va="center", fontsize=7,
                    color="white" if dark else "black")
    ax.set_xticks(range(k), names, rotation=45 if len(max(names, key=len)) > 2 else 0,
                  ha="right" if len(max(names, key=len)) > 2 else "center")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    correct = int(np.trace(counts))
    ax.set_title(f"confusion matrix: {correct}/{counts.sum()} correct "
                 f"({100 * correct / max(counts.sum(), 1):.2f}%)", fontsize="medium")
    return _done(fig, path)


def first_layer(net):
    """The first layer's weights as (n, side, side) host pictures: 28x28 for a
    fully connected layer, the k x k kernels of a convolution on the pixels."""
    w = backend.to_numpy(net.weights[0])
    side = int(round(np.sqrt(w.shape[1]))) if w is not None and w.ndim == 2 else 0
    if not side or side * side != w.shape[1]:
        raise ValueError("the first layer's weights are not square pictures; "
                         "nothing to draw")
    return w.reshape(-1, side, side)


def hidden_weights(net, cols=10, path=None):
    """Each first-layer neuron's weights as a picture: 28x28 for a dense
    layer, k x k for a convolution's shared kernels.

    Red pixels excite the neuron, blue ones inhibit it; each picture has its
    own symmetric scale, since it is the pattern, not the size, that says
    what the neuron looks for.
    """
    w = first_layer(net)
    n = w.shape[0]
    rows, cols = _grid(n, cols)
    fig = figure(cols * 1.0, rows * 1.0 + 0.4)
    what = (f"{n} hidden neurons" if w.shape[1:] == (ROWS, COLS) else
            f"the {w.shape[1]}x{w.shape[1]} kernels of {n} feature maps")
    fig.suptitle(f"first-layer weights of {what} (red +, blue -)", fontsize="medium")
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < n:
            m = float(np.abs(w[i]).max()) or 1.0
            ax.imshow(w[i], cmap="RdBu_r", vmin=-m, vmax=m, interpolation="nearest")
            ax.set_title(str(i), fontsize=7, pad=2)
    return _done(fig, path)


def samples(dataset, n=40, cols=10, path=None, title=None):
    """The first `n` examples of a dataset with their labels."""
    n = min(n, len(dataset))
    images = dataset.rows[:n].reshape(-1, ROWS, COLS)
    titles = [dataset.classes[label] for label in dataset.labels[:n]]
    if title is None:
        name = "Fashion-MNIST" if dataset_of(dataset.classes) == "fashion-mnist" else "MNIST"
        title = f"{name}: the first {n} examples"
    return _done(_image_grid(images, titles, cols, title=title, scale=1.2), path)
