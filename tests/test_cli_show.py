"""predict, plot, perceptron and info from the command line."""

import json
import sys

import numpy as np
import pytest

from digitnet import Network, cli, load, plots

Image = pytest.importorskip("PIL.Image", reason="Pillow is not installed (digitnet[image])")
pytest.importorskip("matplotlib", reason="matplotlib is not installed (digitnet[plot])")


def png_size(path):
    """(width, height) of a PNG file, after checking it is one."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG"
        return img.size


def digit_files(test, folder, n=3):
    paths = []
    for i in range(n):
        g = (test.images[:, i].reshape(28, 28) * 255).round().astype(np.uint8)
        path = folder / f"digit{i}.png"
        Image.fromarray(255 - g).resize((112, 112)).save(path)  # dark on light, x4
        paths.append(path)
    return paths


def test_predict_prints_digit_and_outputs(mnist, trained_model, tmp_path, capsys):
    _, _, test = mnist
    paths = digit_files(test, tmp_path)
    assert cli.main(["predict", str(trained_model), *map(str, paths), "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    for path, line, label in zip(paths, lines, test.labels):
        assert line.startswith(f"{path}: {label}  outputs [")
        assert len(line.split("[")[1].rstrip("]").split()) == 10


def test_predict_json(mnist, trained_model, tmp_path, capsys):
    _, _, test = mnist
    paths = digit_files(test, tmp_path, n=2)
    assert cli.main(["predict", str(trained_model), *map(str, paths), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in results] == list(map(str, paths))
    for r, label in zip(results, test.labels):
        assert set(r) == {"path", "digit", "label", "outputs"}
        assert r["digit"] == label and len(r["outputs"]) == 10
        assert all(0 <= v <= 1 for v in r["outputs"])


def test_predict_bad_pictures_one_line_each_others_still_done(mnist, trained_model,
                                                              tmp_path, capsys):
    _, _, test = mnist
    good = digit_files(test, tmp_path, n=2)
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((50, 50), 255, np.uint8)).save(blank)
    broken = tmp_path / "broken.png"
    broken.write_bytes(good[0].read_bytes()[:200])  # a truncated PNG
    text = tmp_path / "notes.txt"
    text.write_text("seven\n")
    missing = tmp_path / "missing.png"
    argv = ["predict", str(trained_model), str(blank), str(good[0]), str(broken),
            str(text), str(missing), str(good[1])]
    assert cli.main(argv) == 1
    out, err = capsys.readouterr()
    assert [l.split(":")[0] for l in out.splitlines()] == [str(good[0]), str(good[1])]
    errors = err.splitlines()
    assert errors == [f"digitnet: error: {blank}: blank picture: no ink found",
                      errors[1],
                      f"digitnet: error: {text}: not a picture Pillow can read",
                      f"digitnet: error: {missing}: file not found"]
    assert errors[1].startswith(f"digitnet: error: {broken}: damaged or unsupported picture")


def test_a_missing_extra_is_one_line_naming_it(trained_model, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)  # import PIL now fails
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert cli.main(["predict", str(trained_model), "x.png"]) == 1
    assert capsys.readouterr().err == ("digitnet: error: digitnet predict needs PIL, which is "
                                       "not installed: pip install 'digitnet[image]'\n")
    assert cli.main(["plot", "weights", str(trained_model), "--out", str(tmp_path / "w.png")]) == 1
    assert "pip install 'digitnet[plot]'" in capsys.readouterr().err


def write_run(path, eta, accuracies, costs=False):
    epochs = [{"epoch": i + 1, "seconds": 0.2, "correct": int(a * 1e4), "total": 10_000,
               "accuracy": a} for i, a in enumerate(accuracies)]
    if costs:  # the richer records of later metrics files
        for r in epochs:
            r.update(training_cost=1 - r["accuracy"], training_accuracy=r["accuracy"] + 0.01,
                     validation_accuracy=r["accuracy"] - 0.01, test_cost=1.1 - r["accuracy"])
    path.write_text(json.dumps({"config": {"sizes": [784, 30, 10], "eta": eta}, "epochs": epochs}))
    return str(path)


def test_plot_curves(tmp_path, capsys):
    runs = [write_run(tmp_path / f"{eta}.json", eta, acc)
            for eta, acc in [(0.001, [0.1, 0.12, 0.15]), (3.0, [0.9, 0.93, 0.94])]]
    out = tmp_path / "curves.png"
    assert cli.main(["plot", "curves", *runs, "--out", str(out),
                     "--labels", "slow", "good"]) == 0
    assert capsys.readouterr().out == f"wrote {out}\n"
    assert png_size(out) == (600, 400)
    rich = write_run(tmp_path / "rich.json", 3.0, [0.9, 0.95], costs=True)
    assert cli.main(["plot", "curves", rich, runs[0], "--out", str(out)]) == 0
    assert png_size(out) == (1100, 400)  # accuracy and cost side by side


def test_plot_time_draws_each_run_against_its_seconds(tmp_path, capsys):
    """Every epoch that measured the test set, at its elapsed seconds; an
    epoch without test figures (--test-at-end) is left out, not drawn at 0,
    and the run's validation accuracy is drawn dashed instead."""
    run = {"config": {}, "epochs": [
        {"epoch": 1, "elapsed": 10.0, "validation_accuracy": 0.98, "test_accuracy": 0.981},
        {"epoch": 2, "elapsed": 20.5, "validation_accuracy": 0.99},
        {"epoch": 3, "elapsed": 31.0, "validation_accuracy": 0.995, "test_accuracy": 0.9953}]}
    path = tmp_path / "speed.json"
    path.write_text(json.dumps(run))
    old = write_run(tmp_path / "old.json", 3.0, [0.9, 0.93])  # no elapsed: nothing to draw
    fig = plots.time_to_accuracy([str(path), old], labels=["speed", "old"], target=99.5)
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines["speed"].get_xdata()) == [10.0, 31.0]
    assert list(lines["speed"].get_ydata()) == pytest.approx([0.981, 0.9953])
    assert "old" not in lines and ax.get_xscale() == "log" and ax.get_yscale() == "logit"
    # measured the test set less often: its validation accuracy dashed beside it
    validation = lines["speed, validation"]
    assert list(validation.get_xdata()) == [10.0, 20.5, 31.0]
    assert list(validation.get_ydata()) == pytest.approx([0.98, 0.99, 0.995])
    assert validation.get_color() == lines["speed"].get_color()
    assert validation.get_linestyle() == "--" and lines["speed"].get_linestyle() == "-"
    assert ax.get_ylim()[0] == pytest.approx(0.975)  # the lowest drawn, validation's 98%, less 0.5
    for r in run["epochs"]:
        r["test_accuracy"] = r["validation_accuracy"] + 0.001  # measured every epoch: no dashes
    path.write_text(json.dumps(run))
    fig = plots.time_to_accuracy([str(path)], labels=["every"])
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["every"]
    out = tmp_path / "time.png"
    assert cli.main(["plot", "time", str(path), "--target", "99.5", "--out", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out}\n" and png_size(out) == (800, 450)
    assert cli.main(["plot", "time", old, "--out", str(out)]) == 1
    assert "no test accuracy with its elapsed seconds" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["plot", "time", "a.json", "--target", "101", "--out", "t.png"],
     "--target: must be a percentage in [0, 100]"),
    (["plot", "time", "a.json", "b.json", "--labels", "one", "--out", "t.png"],
     "--labels: 1 labels for 2 runs"),
    (["plot", "curves", "a.json", "--out", "/no/such/dir/c.png"],
         "--out: cannot write /no/such/dir/c.png: folder /no/such/dir does not exist"),
    (["plot", "curves", "a.json", "b.json", "--labels", "one", "--out", "c.png"],
     "--labels: 1 labels for 2 runs"),
    (["plot", "weights", "m.npz"], "the following arguments are required: --out"),
    (["plot", "errors", "m.npz", "--dataset", "cifar", "--out", "e.png"], "invalid choice"),
])
def test_plot_argument_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and len(err.splitlines()) == 1 and message in err, err


def test_plot_curves_bad_metrics_file(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert cli.main(["plot", "curves", str(bad), "--out", str(tmp_path / "c.png")]) == 1
    assert capsys.readouterr().err == f"digitnet: error: {bad}: not a JSON file\n"
    assert not (tmp_path / "c.png").exists()


def test_plot_errors_confusion_weights_samples(mnist_dir, trained_model, tmp_path):
    expect = {"errors": (1200, 520), "confusion": (700, 620), "weights": (1000, 340),
              "samples": (1200, 520)}
    for kind, size in expect.items():
        out = tmp_path / f"{kind}.png"
        argv = ["plot", kind] + ([str(trained_model)] if kind != "samples" else [])
        argv += ["--out", str(out)] + (["--data-dir", str(mnist_dir)] if kind != "weights" else [])
        assert cli.main(argv) == 0, kind
        assert png_size(out) == size, kind


def test_weights_of_a_conv_model_are_its_kernels(tmp_path):
    from digitnet.model import Model
    model = Model("conv:6x5x5,pool:2,fc:10", device="cpu")
    plots.hidden_weights(model, path=tmp_path / "kernels.png")
    assert png_size(tmp_path / "kernels.png")[0] > 0
    assert plots.first_layer(model).shape == (6, 5, 5)


def test_weights_need_square_pictures():
    class Odd:
        weights = [np.zeros((8, 30))]
    with pytest.raises(ValueError, match="not square pictures"):
        plots.hidden_weights(Odd())


def test_fashion_mnist_everywhere(fashion_dir, tmp_path, capsys):
    """Train, predict (class names), and draw on Fashion-MNIST."""
    from digitnet import data
    model = tmp_path / "fashion.npz"
    assert cli.main(["train", "--dataset", "fashion-mnist", "--epochs", "1", "--seed", "1",
                     "--data-dir", str(fashion_dir), "--save", str(model)]) == 0
    _, _, test = data.load_dataset("fashion-mnist", fashion_dir, download_missing=False)
    picture = tmp_path / "boot.png"
    g = (test.images[:, 0].reshape(28, 28) * 255).round().astype(np.uint8)
    Image.fromarray(255 - g).save(picture)  # dark on light, as photographed
    k = int(np.argmax(load(model, device="cpu").feedforward(test.images[:, :1])))
    capsys.readouterr()
    assert cli.main(["predict", str(model), str(picture), "--dataset", "fashion-mnist"]) == 0
    assert capsys.readouterr().out.startswith(f"{picture}: {test.classes[k]} ({k})  outputs [")
    for kind in ("errors", "confusion", "samples"):
        out = tmp_path / f"{kind}.png"
        argv = ["plot", kind] + ([str(model)] if kind != "samples" else [])
        argv += ["--dataset", "fashion-mnist", "--data-dir", str(fashion_dir), "--out", str(out)]
        assert cli.main(argv) == 0, kind
        png_size(out)


def test_perceptron_command(capsys):
    assert cli.main(["perceptron"]) == 0
    out = capsys.readouterr().out
    assert "NAND: weights (-2, -2), bias 3" in out
    assert "   1  1 |    -1 |  0" in out   # NAND(1, 1) = 0
    assert "   1  1 |  0    1" in out      # 1 + 1 = 10 in binary
    assert "    25 | 0.000 1.000 1.000 0.000 | 0.000 0.000 0.000 1.000" in out


def test_info_lists_verified_data(mnist_dir, capsys):
    assert cli.main(["info", "--data-dir", str(mnist_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("digitnet  0.1.0\npython    ")
    assert "\nnumpy     " in out and "\nblas      " in out and "\ncuda      " in out
    assert "\nnumba     " in out
    assert (f"  mnist         all 4 files verified\n                in "
            f"{(mnist_dir / 'mnist').resolve()} (--data-dir)\n") in out
    assert cli.main(["info", "--json", "--data-dir", str(mnist_dir)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["datasets"]["mnist"].values()) == {"verified"}
    assert report["data_dir"]["mnist"] == {"path": str((mnist_dir / "mnist").resolve()),
                                           "from": "--data-dir"}
    assert isinstance(report["cuda"]["usable"], bool)


def test_what_the_plots_draw(trained_net, mnist, tmp_path):
    """Not only a PNG of some size: the numbers and titles drawn are the
    network's own, against a plain NumPy argmax on the test set."""
    _, _, test = mnist
    test = test[:2000]
    predicted = np.argmax(trained_net.feedforward(test.images), axis=0)
    counts = np.zeros((10, 10), dtype=int)
    np.add.at(counts, (test.labels, predicted), 1)
    ax = plots.confusion_matrix(trained_net, test).axes[0]
    drawn = {(round(t.get_position()[1]), round(t.get_position()[0])): int(t.get_text())
             for t in ax.texts}
    assert drawn == {(t, p): int(counts[t, p]) for t in range(10) for p in range(10)}
    assert f"{int(np.trace(counts))}/2000 correct" in ax.get_title()

    wrong = np.flatnonzero(predicted != test.labels)[:12]
    fig = plots.misclassified(trained_net, test, n=12)
    titles = [a.get_title() for a in fig.axes if a.get_title()]
    assert titles == [f"{test.labels[i]} > {predicted[i]}" for i in wrong]
    assert f"{np.sum(predicted != test.labels)} of 2000 misclassified" in fig._suptitle.get_text()

    run = {"config": {"model": "[784, 30, 10]", "eta": 3.0},
           "epochs": [{"epoch": e, "test_accuracy": a, "validation_accuracy": a - 0.01,
                       "test_cost": 1 - a} for e, a in [(1, 0.9), (2, 0.93), (3, 0.94)]]}
    accuracy, cost = plots.learning_curves([run], labels=["r"]).axes
    drawn = {(ax.get_ylabel(), line.get_label()): list(line.get_ydata())
             for ax in (accuracy, cost) for line in ax.get_lines()}
    assert drawn == {("accuracy (%)", "r, test"): pytest.approx([90, 93, 94]),
                     ("accuracy (%)", "r, validation"): pytest.approx([89, 92, 93]),
                     ("cost", "r, test"): pytest.approx([0.1, 0.07, 0.06])}
