"""Batch normalization (`bn` in a layer spec): the whole network against
finite differences in training mode, the layer against PyTorch's
BatchNorm2d/BatchNorm1d and against a NumPy reference written here, the
running statistics against their formula and evaluation by them, the
mini-batches it cannot normalize refused in one line, misplaced `bn`
refused, and a short real-MNIST run whose best-epoch copy and snapshot
keep the running statistics."""

import dataclasses

import numpy as np
import pytest

from digitnet import backend, cli, engines, training
from digitnet.costs import COSTS
from digitnet.data import Dataset
from digitnet.layers import BatchNorm
from digitnet.model import Model
from conftest import blobs, finite_differences, load_namespace

EPS = 1e-5


def batch(n_in, n_out, m, seed=1):
    rng = np.random.default_rng(seed)
    y = np.zeros((n_out, m))
    y[rng.integers(0, n_out, m), np.arange(m)] = 1.0
    return rng.random((n_in, m)), y


def shaken(model, seed=2):
    """Every gamma, beta and bias away from its start (1, 0, 0), so no unit
    sits on a ReLU kink and a gamma-for-beta mix-up shows."""
    xp, rng = model.xp, np.random.default_rng(seed)
    for i, b in enumerate(model.biases):
        model.biases[i] = xp.asarray(rng.standard_normal(b.shape) * 0.5)
    for i, layer in enumerate(model.layers):
        if isinstance(layer, BatchNorm):
            p = model.param[i]
            model.weights[p] = xp.asarray(rng.uniform(0.5, 1.5, layer.w_shape) *
                                          rng.choice([-1.0, 1.0], layer.w_shape))
    return model


# -- the whole network against finite differences, training mode ------------

def training_cost(model, x, y, masks):
    """The summed cost of a training forward: batch statistics, as backprop sees them."""
    return float(COSTS[model.cost_name].fn(model.xp, model.forward(x, masks, train=True)[-1][0],
                                           y))


BN_CASES = [
    # (layers, cost, activation, input shape, dropout)
    ("conv:3x3x3,bn,pool:2,fc:5,bn,softmax:3", "log-likelihood", "relu", (1, 8, 8), 0.0),
    ("conv:3x3x3,bn,conv:2x3x3,bn,fc:3", "cross-entropy", "tanh", (2, 7, 6), 0.0),
    ("fc:6,bn,fc:4,bn,softmax:3", "log-likelihood", "sigmoid", (12,), 0.0),
    ("fc:6,bn,fc:4,softmax:3", "log-likelihood", "relu", (12,), 0.3),
    ("fc:5,bn,fc:3", "quadratic", "tanh", (12,), 0.0),
]


@pytest.mark.parametrize("layers, cost, activation, shape, dropout", BN_CASES,
                         ids=[c[0] for c in BN_CASES])
def test_gradients_with_bn_match_finite_differences(xp, layers, cost, activation, shape,
                                                     dropout):
    """Every sampled weight, bias, gamma and beta, float64.  The bias of a
    layer before a bn has gradient 0 (the batch mean takes it out), hence
    the absolute tolerance."""
    model = shaken(Model(layers, cost=cost, activation=activation, dropout=dropout, seed=3,
                         init="scaled", device=xp, dtype="float64", input_shape=shape))
    x, y = batch(int(np.prod(shape)), model.n_out, m=5)
    x, y = xp.asarray(x), xp.asarray(y)
    masks = model.dropout_masks(5) if dropout else None
    for i, ix, analytic, numeric in finite_differences(model, x, y, masks, training_cost, 10):
        assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-8), (i, ix)


# -- the layer against PyTorch and a NumPy reference ------------------------

def reference(x, gamma, beta, dy, running_mean, running_var):
    """Batch normalization in PyTorch's layout, x (m, C, ...), written from
    the paper (Ioffe and Szegedy 2015, its backward step by step through the
    variance and the mean): (y, dx, dgamma, dbeta, new running mean, new
    running var, eval(x2) with them)."""
    axes = (0,) + tuple(range(2, x.ndim))
    along = (1, -1) + (1,) * (x.ndim - 2)
    g, b = gamma.reshape(along), beta.reshape(along)
    k = x.size // x.shape[1]
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    xhat = (x - mu) / np.sqrt(var + EPS)
    y = g * xhat + b
    dxhat = dy * g
    dvar = np.sum(dxhat * (x - mu) * -0.5 * (var + EPS) ** -1.5, axis=axes, keepdims=True)
    dmu = (np.sum(-dxhat / np.sqrt(var + EPS), axis=axes, keepdims=True)
           + dvar * np.mean(-2.0 * (x - mu), axis=axes, keepdims=True))
    dx = dxhat / np.sqrt(var + EPS) + dvar * 2.0 * (x - mu) / k + dmu / k
    new_mean = 0.9 * running_mean + 0.1 * mu.reshape(-1)
    new_var = 0.9 * running_var + 0.1 * var.reshape(-1) * k / (k - 1)

    def evaluate(x2):
        return g * (x2 - new_mean.reshape(along)) / np.sqrt(new_var.reshape(along) + EPS) + b
    return (y, dx, np.sum(dy * xhat, axis=axes), dy.sum(axis=axes), new_mean, new_var,
            evaluate)


def ours(shape, m, x, gamma, beta, dy, running_mean, running_var, x2):
    """The same through BatchNorm (examples last): inputs and answers in
    PyTorch's layout, examples first."""
    last = lambda a: np.moveaxis(a, 0, -1)      # noqa: E731  (m, C, ...) -> (C, ..., m)
    first = lambda a: np.moveaxis(a, -1, 0)     # noqa: E731
    layer = BatchNorm(shape, None, 4)
    buffers = {"bn4.mean": running_mean.reshape(-1, 1).copy(),
               "bn4.var": running_var.reshape(-1, 1).copy()}
    w, b = gamma.reshape(-1, 1), beta.reshape(-1, 1)
    out, cache = layer.forward(np, w, b, last(x), buffers, True)
    (nabla_w, nabla_b), dx = layer.backward(np, w, cache, last(dy), True)
    evaluated, _ = layer.forward(np, w, b, last(x2), buffers, False)
    return (first(out), first(dx), nabla_w[:, 0], nabla_b[:, 0], buffers["bn4.mean"][:, 0],
            buffers["bn4.var"][:, 0], first(evaluated))


LAYOUTS = [((3, 4, 5), 6), ((3, 4, 5), 1), ((2, 2, 2), 3), ((5,), 7), ((4,), 2)]


def inputs(shape, m, seed=0):
    rng = np.random.default_rng(seed)
    c = shape[0]
    offsets = rng.standard_normal((1, c) + (1,) * (len(shape) - 1))  # a mean per channel
    x = rng.standard_normal((m, *shape)) * 3.0 + offsets
    return (x, rng.uniform(0.5, 2.0, c) * rng.choice([-1.0, 1.0], c), rng.standard_normal(c),
            rng.standard_normal((m, *shape)), rng.standard_normal(c), rng.uniform(0.5, 2.0, c),
            rng.standard_normal((2, *shape)))


@pytest.mark.parametrize("shape, m", LAYOUTS, ids=[f"{s}x{m}" for s, m in LAYOUTS])
def test_the_layer_is_the_papers(shape, m):
    """Output, dC/dx, dC/dgamma, dC/dbeta, both running statistics after
    one training forward, and evaluation by them, against `reference`."""
    x, gamma, beta, dy, rm, rv, x2 = inputs(shape, m)
    want = reference(x, gamma, beta, dy, rm, rv)
    got = ours(shape, m, x, gamma, beta, dy, rm, rv, x2)
    for name, g, w in zip(("y", "dx", "dgamma", "dbeta", "running mean", "running var"),
                          got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(got[-1], want[-1](x2), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape, m", LAYOUTS, ids=[f"{s}x{m}" for s, m in LAYOUTS])
def test_the_layer_is_pytorchs(shape, m):
    """The same quantities against torch.nn.BatchNorm2d (maps) or
    BatchNorm1d (neurons) with momentum 0.1 and eps 1e-5, its defaults."""
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (digitnet[peer])")
    x, gamma, beta, dy, rm, rv, x2 = inputs(shape, m)
    kind = torch.nn.BatchNorm2d if len(shape) == 3 else torch.nn.BatchNorm1d
    bn = kind(shape[0], dtype=torch.float64)
    assert (bn.eps, bn.momentum) == (EPS, 0.1)
    with torch.no_grad():
        for tensor, value in ((bn.weight, gamma), (bn.bias, beta), (bn.running_mean, rm),
                              (bn.running_var, rv)):
            tensor.copy_(torch.tensor(value))
    xt = torch.tensor(x, requires_grad=True)
    out = bn.train()(xt)
    out.backward(torch.tensor(dy))
    want = [out.detach().numpy(), xt.grad.numpy(), bn.weight.grad.numpy(), bn.bias.grad.numpy(),
            bn.running_mean.numpy(), bn.running_var.numpy()]
    with torch.no_grad():
        want.append(bn.eval()(torch.tensor(x2)).numpy())
    got = ours(shape, m, x, gamma, beta, dy, rm, rv, x2)
    for name, g, w in zip(("y", "dx", "dgamma", "dbeta", "running mean", "running var",
                           "eval"), got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12, err_msg=name)


# -- running statistics and evaluation --------------------------------------

@pytest.mark.parametrize("layers, shape", [("fc:5,bn,softmax:3", (6,)),
                                           ("conv:5x1x1,bn,softmax:3", (2, 2, 3))])
def test_running_statistics_after_k_training_steps_are_their_formula(layers, shape):
    """Real SGD steps (momentum, so the weights move): after each, the
    buffers are 0.9 old + 0.1 the batch's mean and unbiased variance of the
    layer's z = w x + b (over examples and positions), computed here from
    the weights before the step.  The biases start away from 0: training
    leaves b out of z (the batch mean cancels it), and the running mean
    must still count it."""
    data = blobs(43, features=int(np.prod(shape)), classes=3)
    net = Model(layers, activation="relu", init="large", input_shape=shape,
                seed=1, device="cpu", dtype="float64")
    b = net.biases[0].copy()
    assert np.all(np.abs(b) > 1e-3)
    config = training.TrainConfig(mini_batch_size=8, eta=0.5, momentum=0.9)
    rows, labels = training.to_device(net, data)
    begin, step, end = engines.stepper(net, rows, labels, config, 0.5)
    mean, var = np.zeros((5, 1)), np.ones((5, 1))
    begin()
    for k, start in enumerate(range(0, 43, 8)):
        idx = np.arange(start, min(start + 8, 43))[::-1]
        x = data.images[:, idx].reshape(shape[0], -1, len(idx))  # channels, positions, m
        z = np.einsum("fc,cpm->fpm", net.weights[0], x).reshape(5, -1) + net.biases[0]
        mean = 0.9 * mean + 0.1 * z.mean(axis=1, keepdims=True)
        var = 0.9 * var + 0.1 * z.var(axis=1, ddof=1, keepdims=True)
        step(idx)
        np.testing.assert_allclose(net.store.buffers["bn1.mean"], mean, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(net.store.buffers["bn1.var"], var, rtol=1e-12)
    end()
    assert k == 5 and not np.allclose(mean, 0)  # six steps, the last of 43 % 8 = 3 examples
    np.testing.assert_array_equal(net.biases[0], b)  # dC/db is 0: b never moves


@pytest.mark.parametrize("layers, shape", [(BN_CASES[0][0], BN_CASES[0][3]),
                                           (BN_CASES[1][0], BN_CASES[1][3]),
                                           ("fc:6,bn,fc:4,bn,softmax:3", (12,))])
def test_leaving_the_cancelled_bias_out_changes_only_rounding(layers, shape):
    """Backprop with every bias before a bn added and its delta summed (the
    plain way) against backprop without: the same gradients, running
    statistics and outputs within float64 rounding, and exactly 0 where the
    plain way has rounding noise."""
    rng = np.random.default_rng(4)
    x, y = batch(int(np.prod(shape)), 3, m=6)
    nets, grads = [], []
    for cancelled in (None, frozenset()):
        net = shaken(Model(layers, activation="relu", init="scaled", input_shape=shape,
                           seed=3, device="cpu", dtype="float64"))
        if cancelled is not None:
            net.cancelled = cancelled
        grads.append(net.backprop(x, y))
        nets.append(net)
    assert nets[0].cancelled and not nets[1].cancelled
    (nb, nw), (plain_b, plain_w) = grads
    for p, (g, want) in enumerate(zip(nw + nb, plain_w + plain_b)):
        np.testing.assert_allclose(g, want, rtol=1e-9, atol=1e-12, err_msg=str(p))
    for i in nets[0].cancelled:
        p = nets[0].param[i]
        np.testing.assert_array_equal(nb[p], 0.0)
        assert np.max(np.abs(plain_b[p])) < 1e-12
    for name, a in nets[0].store.buffers.items():
        np.testing.assert_allclose(a, nets[1].store.buffers[name], rtol=1e-12, err_msg=name)
    probe = rng.random((int(np.prod(shape)), 4))
    np.testing.assert_allclose(nets[0].feedforward(probe), nets[1].feedforward(probe),
                               rtol=1e-12)


def test_evaluation_uses_the_running_statistics_as_the_formula_says():
    """conv -> bn -> activation -> pool, then fc -> bn -> activation: with
    running statistics set by hand the output is the formula's, one
    example or many (no batch statistics), and evaluating moves nothing."""
    net = shaken(Model("conv:3x3x3,bn,pool:2,fc:4,bn,softmax:3", activation="tanh",
                       input_shape=(2, 6, 6), seed=2, device="cpu", dtype="float64"))
    rng = np.random.default_rng(5)
    for name, shape in Model.buffer_shapes(net.config()).items():
        net.store.buffers[name] = (rng.standard_normal(shape) if name.endswith("mean")
                                   else rng.uniform(0.2, 3.0, shape))
    held = {k: v.copy() for k, v in net.store.buffers.items()}
    x = rng.standard_normal((72, 5))
    (w0, g1, w3, g4, w5), (b0, be1, b3, be4, b5) = net.weights, net.biases
    buf = net.store.buffers

    def norm(z, i, g, be):
        return g * (z - buf[f"bn{i}.mean"]) / np.sqrt(buf[f"bn{i}.var"] + EPS) + be

    want = []
    for j in range(5):
        image = x[:, j].reshape(2, 6, 6)
        z = np.array([[[np.sum(w0[f].reshape(2, 3, 3) * image[:, r:r + 3, c:c + 3]) + b0[f, 0]
                        for c in range(4)] for r in range(4)] for f in range(3)])
        y = norm(z.reshape(3, 16), 1, g1, be1).reshape(3, 4, 4)
        pooled = np.tanh(y).reshape(3, 2, 2, 2, 2).max(axis=(2, 4)).reshape(-1, 1)
        hidden = np.tanh(norm(w3 @ pooled + b3, 4, g4, be4))
        logits = w5 @ hidden + b5
        want.append(np.exp(logits[:, 0]) / np.exp(logits[:, 0]).sum())
    np.testing.assert_allclose(net.feedforward(x), np.array(want).T, rtol=1e-12)
    np.testing.assert_allclose(net.feedforward(x[:, 2]), want[2], rtol=1e-12)
    for name, a in held.items():
        np.testing.assert_array_equal(buf[name], a)
    buf["bn4.var"] = buf["bn4.var"] * 4.0  # a change of the statistics is a change of output
    assert not np.allclose(net.feedforward(x), np.array(want).T)


def test_bn_draws_nothing_and_starts_at_one_and_zero():
    """The other layers' weights are those of the same network without bn,
    drawn in the same order; gamma 1, beta 0, running mean 0, variance 1."""
    plain = Model("conv:4x5x5,pool:2,fc:20,softmax:10", seed=3, init="scaled", device="cpu")
    net = Model("conv:4x5x5,bn,pool:2,fc:20,bn,softmax:10", seed=3, init="scaled", device="cpu")
    assert net.param == [0, 1, None, 2, 3, 4]
    for mine, theirs in ((0, 0), (2, 1), (4, 2)):
        np.testing.assert_array_equal(net.weights[mine], plain.weights[theirs])
        np.testing.assert_array_equal(net.biases[mine], plain.biases[theirs])
    for p, channels in ((1, 4), (3, 20)):
        assert net.weights[p].shape == net.biases[p].shape == (channels, 1)
        assert net.weights[p].dtype == np.float32
        assert (net.weights[p] == 1).all() and (net.biases[p] == 0).all()
    assert Model.buffer_shapes(net.config()) == {
        "bn1.mean": (4, 1), "bn1.var": (4, 1), "bn4.mean": (20, 1), "bn4.var": (20, 1)}
    assert {k: v.shape for k, v in net.store.buffers.items()} == Model.buffer_shapes(net.config())
    assert all((net.store.buffers[f"bn{i}.mean"] == 0).all() and
               (net.store.buffers[f"bn{i}.var"] == 1).all() for i in (1, 4))
    assert Model.buffer_shapes(plain.config()) == {} and net.dense_spec() is None
    assert net.config()["layers"] == "conv:4x5x5,bn,pool:2,fc:20,bn,softmax:10"
    assert Model.param_shapes(net.config())[1] == ((4, 1), (4, 1))


@pytest.mark.parametrize("name", ["strict", pytest.param("cupy", marks=pytest.mark.gpu)])
def test_training_with_bn_is_the_same_on_every_namespace(name):
    """The plain trainer with conv and fc bn, dropout, momentum and L2 on
    another namespace against NumPy, from one seed: histories and the
    running statistics."""
    xp = load_namespace(name)
    data = blobs(50, features=64, classes=3, seed=4)
    train, val = data[:40], data[40:]
    nets = []
    for space in (np, xp):
        net = Model("conv:3x3x3,bn,pool:2,fc:6,bn,softmax:3", activation="relu", dropout=0.2,
                    input_shape=(1, 8, 8), seed=1, device=space, dtype="float64")
        nets.append((net, training.sgd(net, train, 3, 6, 0.1, lmbda=0.5, momentum=0.5,
                                       validation_data=val, verbose=False)))
    (a, history_a), (b, history_b) = nets
    for ra, rb in zip(history_a, history_b):
        assert ra["validation_accuracy"] == rb["validation_accuracy"]
        assert ra["validation_cost"] == pytest.approx(rb["validation_cost"], rel=1e-9)
    for key, value in a.store.buffers.items():
        np.testing.assert_allclose(backend.to_numpy(b.store.buffers[key]), value, rtol=1e-9)


# -- what bn cannot normalize, refused in one line --------------------------

def two_classes(n):
    return blobs(n, features=6, classes=2)


@pytest.mark.parametrize("n, m, options, message", [
    (20, 1, {}, "mini_batch_size 1: bn layer 2 normalizes each neuron over the mini-batch, "
                "and one example has no variance; give 2 or more"),
    (21, 10, {}, "mini_batch_size 10 leaves the last of 21 training examples alone in a "
                 "mini-batch, and bn layer 2 cannot normalize one example"),
    (20, 10, dict(engine="per-example"),
     "engine per-example backpropagates one example at a time, and batch normalization "
     "needs the mini-batch's statistics (bn layer 2): use engine batched"),
])
def test_a_mini_batch_bn_cannot_normalize_is_one_line_before_any_step(n, m, options, message):
    net = Model("fc:4,bn,softmax:2", input_shape=(6,), device="cpu", dtype="float64")
    before = [w.copy() for w in net.weights]
    with pytest.raises(ValueError) as caught:
        net.sgd(two_classes(n), 1, m, 0.1, verbose=False, **options)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
    for w, was in zip(net.weights, before):
        np.testing.assert_array_equal(w, was)
    assert (net.store.buffers["bn1.var"] == 1).all()


def test_one_example_through_a_dense_bn_is_refused_not_nan():
    net = Model("fc:4,bn,softmax:2", input_shape=(6,), device="cpu", dtype="float64")
    x, y = batch(6, 2, m=1)
    with pytest.raises(ValueError, match="^bn layer 2 cannot normalize a mini-batch of one "
                                         "example: it has no variance$"):
        net.backprop(x, y)
    flat = Model("conv:2x3x3,bn,fc:2", input_shape=(1, 3, 3), device="cpu")  # 1x1 maps
    with pytest.raises(ValueError, match="mini_batch_size 1: bn layer 2"):
        flat.check_training(training.TrainConfig(mini_batch_size=1, eta=0.1))


def test_a_conv_bn_takes_one_example_as_pytorch_does():
    """A feature map has many positions: one example is a defined batch."""
    net = Model("conv:2x3x3,bn,pool:2,fc:2", input_shape=(1, 6, 6), device="cpu",
                dtype="float64", activation="relu", init="scaled")
    data = Dataset(np.random.default_rng(0).random((36, 9)), np.arange(9) % 2)
    net.sgd(data, 2, 1, 0.1, verbose=False)
    assert net.store.finite() and not (net.store.buffers["bn1.var"] == 1).all()


@pytest.mark.parametrize("argv, message", [
    (["--layers", "fc:30,bn,softmax:10", "--engine", "per-example"],
     "digitnet: error: --engine per-example backpropagates one example at a time, and batch "
     "normalization needs the mini-batch's statistics (bn layer 2): use --engine batched\n"),
    (["--layers", "conv:4x5x5,bn,pool:2,fc:30,bn,softmax:10", "--batch-size", "1"],
     "digitnet: error: --batch-size 1: bn layer 5 normalizes each neuron over the mini-batch, "
     "and one example has no variance; give 2 or more\n"),
    (["--layers", "conv:4x5x5,pool:2,bn,softmax:10"],
     "digitnet: error: --layers: layer 3 'bn': batch normalization must follow a conv or fc "
     "layer, not a pool\n"),
])
def test_the_command_refuses_before_any_data_with_one_line(argv, message, capsys, tmp_path,
                                                           monkeypatch):
    monkeypatch.setenv("DIGITNET_DATA", str(tmp_path))  # nothing there: no data is read
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", *argv, "--epochs", "1"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == message


def test_the_command_refuses_a_last_mini_batch_of_one(small_split, capsys):
    """1,000 training examples in mini-batches of 3 leave one alone."""
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "--layers", "fc:30,bn,softmax:10", "--batch-size", "3",
                  "--epochs", "1", *small_split])
    out, err = capsys.readouterr()
    assert exit_.value.code == 2 and "epoch" not in out
    assert err == ("digitnet: error: --batch-size 3 leaves the last of 1000 training examples "
                   "alone in a mini-batch, and bn layer 2 cannot normalize one example (it has "
                   "no variance); choose another --batch-size\n")


@pytest.mark.parametrize("spec, message", [
    ("bn,fc:10", "layer 1 'bn': batch normalization must follow a conv or fc layer, "
                 "not the input"),
    ("fc:30,bn", "layer 2 'bn': the last layer must be fc:N or softmax:N; bn goes after a "
                 "hidden layer"),
    ("fc:30,bn,bn,fc:10", "layer 3 'bn': batch normalization must follow a conv or fc layer, "
                          "not a bn"),
    ("conv:4x5x5,pool:2,bn,fc:10", "layer 3 'bn': batch normalization must follow a conv or "
                                   "fc layer, not a pool"),
    ("fc:30,bn:30,fc:10", "layer 'bn:30': expected bn, which takes no numbers"),
])
def test_misplaced_bn_is_one_line_naming_it(spec, message):
    with pytest.raises(ValueError) as caught:
        Model(spec, device="cpu")
    assert str(caught.value) == message


# -- real MNIST: it learns, and the best epoch and snapshots keep its statistics

def test_a_conv_bn_net_learns_mnist_and_its_copies_keep_the_statistics(mnist):
    """300 steps of conv:8x5x5,bn,pool:2,softmax:10 on 3,000 real images
    reach well above chance; then the running statistics go with the
    state: an epoch undone by `restore` puts back the snapshot's, and
    `use_best` the best epoch's, not the last one's."""
    training_set, validation, _ = mnist
    net = Model("conv:8x5x5,bn,pool:2,softmax:10", activation="relu", init="scaled", seed=0,
                device="cpu")
    run = training.Run(net, mini_batch_size=10, eta=0.1)
    seen, accuracies = [], []

    def on_epoch(record, run):  # nothing later may beat the first epoch: it stays best
        seen.append({k: v.copy() for k, v in net.store.buffers.items()})
        accuracies.append(record["validation_accuracy"])
        run.best.record["validation_accuracy"] = 2.0

    training.fit(run, training_set[:3000], 1, validation_data=validation[:1000],
                 on_epoch=on_epoch)
    assert accuracies[0] > 0.8  # chance is 0.1
    before = run.snapshot()
    training.run_epoch(run, *training.to_device(net, training_set[3000:3500]))
    moved = dict(net.store.buffers)
    assert not np.array_equal(moved["bn1.mean"], seen[0]["bn1.mean"])
    run.restore(before)
    for name, a in seen[0].items():
        np.testing.assert_array_equal(net.store.buffers[name], a)
    training.fit(run, training_set[:500], 2, validation_data=validation[:1000],
                 on_epoch=on_epoch)
    assert run.best.record["epoch"] == 1 and len(seen) == 2
    assert not np.array_equal(seen[1]["bn1.var"], seen[0]["bn1.var"])
    for name, a in seen[0].items():   # the best epoch's, after use_best
        np.testing.assert_array_equal(net.store.buffers[name], a)
    for name, a in seen[1].items():   # the last epoch's, kept aside for going on
        np.testing.assert_array_equal(run.last.buffers[name], a)


# --- files: the running statistics go where the network goes --------------

def trained_bn_run(epochs, validation=True, on_epoch=None):
    """A small conv+bn+fc+bn run on blobs shaped as images, float64."""
    from digitnet.training import Run, fit
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, 60)
    images = np.clip(rng.random((3, 36))[labels] + 0.3 * rng.standard_normal((60, 36)), 0, 1)
    data = Dataset(images.T, labels)
    net = Model("conv:3x3x3,bn,pool:2,fc:5,bn,softmax:3", activation="relu", init="scaled",
                input_shape=(1, 6, 6), seed=2, device="cpu", dtype="float64")
    run = Run(net, mini_batch_size=7, eta=0.3, momentum=0.5, epochs=epochs)
    fit(run, data, validation_data=data[:30] if validation else None, on_epoch=on_epoch)
    return run, data


def test_a_model_file_keeps_the_running_statistics(tmp_path):
    from digitnet import checkpoint
    run, _ = trained_bn_run(2)
    net = run.net
    assert sorted(net.store.buffers) == ["bn1.mean", "bn1.var", "bn4.mean", "bn4.var"]
    net.save(tmp_path / "m.npz")
    back = checkpoint.load(tmp_path / "m.npz", device="cpu")
    for name, a in net.store.buffers.items():
        np.testing.assert_array_equal(back.store.buffers[name], a)
        assert not np.array_equal(a, np.zeros_like(a)) and not np.array_equal(a, np.ones_like(a))
    x = np.random.default_rng(0).random((36, 4))
    np.testing.assert_array_equal(back.feedforward(x), net.feedforward(x))


def test_a_checkpoint_keeps_the_last_and_the_best_epochs_statistics(tmp_path):
    from digitnet import checkpoint
    from digitnet.training import Best
    firsts = []
    run, _ = trained_bn_run(3, on_epoch=lambda record, run: firsts.append(run.net.store.copy()))
    run.best = Best(run.history[0], firsts[0])  # the first epoch as the best: not the last
    last = {k: v.copy() for k, v in run.net.store.buffers.items()}
    checkpoint.save_run(run, tmp_path / "run.npz")
    back, _ = checkpoint.load_run(tmp_path / "run.npz", device="cpu")
    for name, a in last.items():
        np.testing.assert_array_equal(back.net.store.buffers[name], a)
        np.testing.assert_array_equal(back.best.state.buffers[name], run.best.state.buffers[name])
    assert any(not np.array_equal(run.best.state.buffers[k], last[k]) for k in last)


def test_a_resumed_bn_run_is_the_uninterrupted_one_bit_for_bit(tmp_path):
    from digitnet import checkpoint
    from digitnet.training import fit
    whole, data = trained_bn_run(3)
    first, _ = trained_bn_run(2)
    checkpoint.save_run(first, tmp_path / "run.npz")
    resumed, _ = checkpoint.load_run(tmp_path / "run.npz", device="cpu")
    resumed.config = dataclasses.replace(resumed.config, epochs=3)
    fit(resumed, data, validation_data=data[:30])
    for name, a in whole.net.store.named().items():
        np.testing.assert_array_equal(resumed.net.store.named()[name], a)
    assert [r["validation_accuracy"] for r in resumed.history] == \
        [r["validation_accuracy"] for r in whole.history]


@pytest.mark.parametrize("change, line", [
    (lambda a: a.pop("buffer.bn4.var"), "missing array 'buffer.bn4.var'"),
    (lambda a: a.update({"buffer.bn1.mean": np.zeros((4, 1))}),
     "buffer.bn1.mean has shape (4, 1), but the network's description needs (3, 1)"),
    (lambda a: a.update({"buffer.bn1.var": np.full((3, 1), np.inf)}),
     "buffer.bn1.var holds NaN or infinite values"),
    (lambda a: a.update({"buffer.bn2.mean": np.zeros((3, 1))}),
     "holds arrays its description does not declare: buffer.bn2.mean"),
])
def test_each_buffer_of_a_file_alone(tmp_path, change, line):
    from digitnet import checkpoint
    from digitnet.modelfile import CheckpointError, network_arrays
    run, _ = trained_bn_run(1, validation=False)
    arrays = network_arrays(run.net)
    change(arrays)
    np.savez(tmp_path / "m.npz", **arrays)
    with pytest.raises(CheckpointError) as exc:
        checkpoint.load(tmp_path / "m.npz", device="cpu")
    assert exc.value.lines == [f"{tmp_path / 'm.npz'}: {line}"]
