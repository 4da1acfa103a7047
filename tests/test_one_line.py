"""Bad inputs that used to end in someone else's words or a traceback, each
now one line naming what is wrong, or handled: ensembles of unlike models,
plots of odd metrics files and picture formats, plots without matplotlib."""

import json
import sys

import pytest

from digitnet import Ensemble, Model, Network, cli, plots

pytest.importorskip("matplotlib", reason="matplotlib is not installed (digitnet[plot])")


def like(net, **changes):
    """A copy of a saved-and-loaded network with attributes changed."""
    for key, value in changes.items():
        setattr(net, key, value)
    return net


@pytest.mark.parametrize("what, change, shown", [
    ("class names", dict(classes=["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]),
     "network 2 has Fashion-MNIST's classes, network 1 MNIST's digits"),
    ("class names", dict(classes=list("abcdefghij")),
     "network 2 has a, b, c, d, e, f, g, h, i, j, network 1 MNIST's digits"),
    ("output layer", dict(output="softmax"), "network 2 has softmax, network 1 sigmoid"),
    ("cost", dict(cost_name="cross-entropy"),
     "network 2 has cross-entropy, network 1 quadratic"),
])
def test_an_ensemble_names_what_differs(what, change, shown):
    """Each condition alone, the others equal: the message shows the values
    that differ, not the two networks' (equal) layer sizes."""
    first, second = Network([784, 3, 10], seed=0), like(Network([784, 3, 10], seed=1), **change)
    with pytest.raises(ValueError) as caught:
        Ensemble([first, second])
    assert str(caught.value) == f"the networks of an ensemble must have the same {what}: {shown}"


def test_an_ensemble_of_shapes_that_differ():
    for other, what, shown in ((Network([783, 3, 10]), "inputs", "783, network 1 784"),
                               (Network([784, 3, 9]), "outputs", "9, network 1 10")):
        with pytest.raises(ValueError, match=f"same {what}: network 2 has {shown}$"):
            Ensemble([Network([784, 3, 10]), other])


def test_evaluate_reports_each_model_when_they_cannot_be_averaged(small_split, tmp_path, capsys):
    """A chapter-1 Network (sigmoid, quadratic) and a conv Model (softmax):
    each reported, only the ensemble line left out, with a notice why."""
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    Network([784, 3, 10], seed=0).save(a)
    conv = Model("conv:2x5x5,pool:2,fc:10,softmax:10", seed=0)
    conv.save(b)
    assert cli.main(["evaluate", str(a), str(b), *small_split]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines] == [str(a), str(b)]
    assert lines[1].startswith(f"{b}: test {conv.evaluate(_test(small_split))}/")
    assert err == ("digitnet: notice: no ensemble line: the networks of an ensemble must have "
                   "the same output layer: network 2 has softmax, network 1 sigmoid\n")


def _test(small_split):
    from digitnet import load_mnist
    return load_mnist(small_split[1])[2]


def test_evaluate_of_two_models_has_its_ensemble_line(small_split, tmp_path, capsys):
    paths = [tmp_path / "a.npz", tmp_path / "b.npz"]
    nets = [Network([784, 3, 10], seed=s) for s in (0, 1)]
    for net, path in zip(nets, paths):
        net.save(path)
    assert cli.main(["evaluate", *map(str, paths), *small_split]) == 0
    out, err = capsys.readouterr()
    want = Ensemble(nets).evaluate(_test(small_split))
    assert out.splitlines()[2].startswith(f"ensemble of 2: test {want}/500 ") and err == ""


def metrics(path, epochs):
    path.write_text(json.dumps({"config": {"eta": 0.1, "model": "fc:10"}, "epochs": epochs}))
    return path


def test_plots_leave_out_values_that_are_not_numbers(tmp_path, capsys):
    """NaN (as Python's json reads and writes it), infinities and strings
    are missing points, as null is; the rest is drawn."""
    run = tmp_path / "run.json"
    run.write_text('{"epochs": [{"epoch": 1, "elapsed": 2.0, "test_accuracy": 0.9, '
                   '"test_cost": NaN}, {"epoch": 2, "elapsed": NaN, "test_accuracy": 0.95}, '
                   '{"epoch": 3, "elapsed": 6.0, "test_accuracy": Infinity, "test_cost": 0.2}, '
                   '{"epoch": 4, "elapsed": 8.0, "test_accuracy": 0.97}, "not a record"]}')
    read = plots.read_metrics(run)
    assert plots.time_curve(read) == ([2.0, 8.0], [90.0, 97.0])
    assert plots.curve(read, "test_cost") == ([3], [0.2])
    assert plots.curve(read, "test_accuracy") == ([1, 2, 4], [90.0, 95.0, 97.0])
    for kind in ("time", "curves"):
        out = tmp_path / f"{kind}.png"
        assert cli.main(["plot", kind, str(run), "--out", str(out)]) == 0
        assert out.read_bytes()[:4] == b"\x89PNG"
    assert capsys.readouterr().err == ""


def test_a_metrics_file_nested_too_deep_is_one_line(tmp_path, capsys):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    for kind in ("time", "curves"):
        assert cli.main(["plot", kind, str(deep), "--out", str(tmp_path / "x.png")]) == 1
        assert capsys.readouterr().err == (f"digitnet: error: {deep}: not a metrics file "
                                           "(JSON nested too deep)\n")


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".svg", b"<?xml"),
                                           (".pdf", b"%PDF"), (".PNG", b"\x89PNG")])
def test_plot_out_writes_the_format_its_suffix_names(suffix, magic, tmp_path, capsys):
    run = metrics(tmp_path / "run.json", [{"epoch": 1, "elapsed": 1.0, "test_accuracy": 0.9}])
    out = tmp_path / f"picture{suffix}"
    assert cli.main(["plot", "time", str(run), "--out", str(out)]) == 0
    assert out.read_bytes().startswith(magic)


@pytest.mark.parametrize("name", ["x.jpg", "x.jpeg", "x", "x.png.bak"])
@pytest.mark.parametrize("kind", ["time", "curves", "weights"])
def test_plot_out_refuses_other_suffixes_before_any_work(name, kind, tmp_path, capsys):
    out = tmp_path / name
    with pytest.raises(SystemExit) as exit_:
        cli.main(["plot", kind, str(tmp_path / "missing.json"), "--out", str(out)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"digitnet: error: --out: {out}: name a .png, .svg, .pdf file ")
    assert err.count("\n") == 1 and not out.exists()


@pytest.mark.parametrize("kind", ["time", "curves"])
def test_plots_without_matplotlib_say_what_to_install(kind, tmp_path, capsys, monkeypatch):
    run = metrics(tmp_path / "run.json", [{"epoch": 1, "elapsed": 1.0, "test_accuracy": 0.9}])
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)  # import matplotlib.* now fails
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert cli.main(["plot", kind, str(run), "--out", str(tmp_path / "x.png")]) == 1
    assert capsys.readouterr().err == ("digitnet: error: pictures needs matplotlib, which is not "
                                       "installed: pip install 'digitnet[plot]'\n")
