"""The later chapters' Model on every array namespace: every layer, cost and
activation against finite differences, and the chapter-1 Network as an anchor."""

import json

import numpy as np
import pytest

from conftest import finite_differences
from digitnet import Network, backend, checkpoint
from digitnet.costs import COSTS
from digitnet.data import Dataset, expand
from digitnet.model import Model, parse_layers, spec_from_sizes
from digitnet.training import sgd


def batch(xp, n_in, n_out, m, seed=1):
    rng = np.random.default_rng(seed)
    y = np.zeros((n_out, m))
    y[rng.integers(0, n_out, m), np.arange(m)] = 1.0
    return xp.asarray(rng.random((n_in, m))), xp.asarray(y)


def summed_cost(model, x, y, masks):
    return COSTS[model.cost_name].fn(model.xp, model.forward(x, masks)[-1][0], y)


def numeric_gradient_error(model, x, y, masks, per_array=12, eps=1e-6):
    """Largest relative error between backprop and central differences over a
    random sample of every weight and bias."""
    worst = 0.0
    for _, _, analytic, numeric in finite_differences(model, x, y, masks, summed_cost,
                                                      per_array, eps):
        worst = max(worst, abs(numeric - analytic) / max(abs(numeric) + abs(analytic), 1e-7))
    return worst


CASES = [
    # (layers, cost, activation, input shape, dropout)
    ("fc:5,fc:3", "quadratic", "sigmoid", (12,), 0.0),
    ("fc:5,fc:3", "cross-entropy", "tanh", (12,), 0.0),
    ("fc:5,fc:3", "cross-entropy", "relu", (12,), 0.0),
    ("fc:5,softmax:3", "log-likelihood", "sigmoid", (12,), 0.0),
    ("fc:6,fc:4,softmax:3", "log-likelihood", "relu", (12,), 0.5),
    ("conv:3x3x3,pool:2,fc:5,softmax:3", "log-likelihood", "relu", (1, 8, 8), 0.0),
    ("conv:3x3x3,pool:2,conv:4x3x3,pool:2,fc:4,softmax:3", "log-likelihood", "tanh",
     (2, 10, 10), 0.3),
    ("conv:2x3x3,fc:3", "quadratic", "sigmoid", (1, 5, 5), 0.0),
    # Non-square pictures, which the CLI never makes: a layer that swaps
    # height and width is the same function on square ones.
    ("conv:3x3x3,pool:2,fc:5,softmax:3", "log-likelihood", "relu", (1, 8, 6), 0.0),
    ("conv:3x3x3,pool:2,conv:2x3x3,pool:2,fc:4,softmax:3", "log-likelihood", "tanh",
     (2, 14, 10), 0.3),
    ("pool:2,fc:3", "cross-entropy", "sigmoid", (2, 6, 4), 0.0),
    ("conv:2x3x3,fc:3", "quadratic", "sigmoid", (1, 7, 5), 0.0),
    # Zero padding ('same' for p = (k-1)/2; p1 of a 5x5 kernel shrinks by 2)
    ("conv:3x3x3p1,conv:2x3x3p1,pool:2,fc:5,softmax:3", "log-likelihood", "relu", (2, 6, 4), 0.0),
    ("conv:2x5x5p1,fc:3", "cross-entropy", "tanh", (1, 7, 6), 0.0),
]


@pytest.mark.parametrize("layers, cost, activation, shape, dropout", CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_gradients_match_finite_differences(xp, layers, cost, activation, shape, dropout):
    model = Model(layers, cost=cost, activation=activation, dropout=dropout, seed=3,
                  init="scaled", device=xp, dtype="float64", input_shape=shape)
    rng = np.random.default_rng(2)
    for i, b in enumerate(model.biases):  # nonzero, so no unit sits exactly on a ReLU kink
        model.biases[i] = xp.asarray(rng.standard_normal(b.shape) * 0.5)
    x, y = batch(xp, int(np.prod(shape)), model.n_out, m=4)
    masks = model.dropout_masks(4) if dropout else None
    assert numeric_gradient_error(model, x, y, masks) < 1e-5


def test_the_book_network_is_a_special_case(xp):
    """Quadratic cost, sigmoid neurons, N(0, 1) init (the Model's defaults):
    the same starting weights as the chapter-1 Network, and the same gradients."""
    net = Network([12, 5, 3], seed=4, device=xp, dtype="float64")
    model = Model(spec_from_sizes(net.sizes), seed=4, device=xp, dtype="float64",
                  input_shape=(12,))
    for a, b in zip(model.weights + model.biases, net.weights + net.biases):
        np.testing.assert_array_equal(backend.to_numpy(a), backend.to_numpy(b))
    x, y = batch(xp, 12, 3, m=7)
    for got, want in zip(model.backprop(x, y), net.backprop(x, y)):
        for g, w in zip(got, want):
            np.testing.assert_allclose(backend.to_numpy(g), backend.to_numpy(w), rtol=1e-12)


@pytest.mark.parametrize("pad", [1, 2])
def test_a_padded_conv_is_the_textbook_function(pad):
    """Against loops on the input inside a border of `pad` zeros: maps of
    h + 2 pad - k + 1 rows; p1 of a 3x3 kernel keeps the size."""
    h, w, k = 6, 5, 3
    model = Model(f"conv:3x{k}x{k}p{pad},softmax:4", activation="tanh", input_shape=(2, h, w),
                  device="cpu", dtype="float64", seed=1)
    (conv_w, fc_w), (conv_b, fc_b) = model.weights, model.biases
    x = np.random.default_rng(3).standard_normal((2, h, w))
    padded = np.zeros((2, h + 2 * pad, w + 2 * pad))
    padded[:, pad:pad + h, pad:pad + w] = x
    kernel = conv_w.reshape(3, 2, k, k)
    oh, ow = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    assert model.layers[0].shape_out == (3, oh, ow)
    z = np.array([[[np.sum(kernel[f] * padded[:, i:i + k, j:j + k]) + conv_b[f, 0]
                    for j in range(ow)] for i in range(oh)] for f in range(3)])
    logits = fc_w @ np.tanh(z).reshape(-1) + fc_b[:, 0]
    want = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(model.feedforward(x.reshape(-1, 1))[:, 0], want, rtol=1e-12)


def test_a_padded_conv_is_pytorchs():
    """Forward and every gradient against torch.nn.Conv2d(padding=p)."""
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (digitnet[peer])")
    model = Model("conv:4x3x3p1,fc:3", activation="relu", input_shape=(2, 5, 6), cost="quadratic",
                  device="cpu", dtype="float64", seed=5)
    layer = model.layers[0]
    x = np.random.default_rng(0).standard_normal((2 * 5 * 6, 3))
    conv = torch.nn.Conv2d(2, 4, 3, padding=1, dtype=torch.float64)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(model.weights[0].reshape(4, 2, 3, 3)))
        conv.bias.copy_(torch.tensor(model.biases[0][:, 0]))
    xt = torch.tensor(x.T.reshape(3, 2, 5, 6), requires_grad=True)
    out = conv(xt)                                              # (m, 4, 5, 6)
    z, cols = layer.forward(np, model.weights[0], model.biases[0], x)
    pre = np.moveaxis(out.detach().numpy(), 0, -1)              # (4, 5, 6, m) before ReLU
    np.testing.assert_allclose(z, np.maximum(pre, 0), rtol=1e-12, atol=1e-14)
    delta = np.random.default_rng(1).standard_normal(pre.shape)  # dC/dz, z before the ReLU
    out.backward(torch.tensor(np.moveaxis(delta, -1, 0)))
    (nabla_w, nabla_b), dx = layer.backward(np, model.weights[0], cols, delta, True)
    np.testing.assert_allclose(nabla_w.reshape(4, 2, 3, 3), conv.weight.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(nabla_b[:, 0], conv.bias.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(np.moveaxis(dx, -1, 0), xt.grad.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("h, w", [(8, 8), (8, 12), (12, 8)])
def test_a_conv_net_is_the_textbook_function(h, w):
    """Against loops: cross-correlation with a k x k kernel, activation, then
    2x2 max-pooling, then a softmax layer on the flattened (channel, row,
    column) maps.  (The Model applies the activation after pooling, which
    must not change the function.)  Non-square too: rows are rows."""
    model = Model("conv:3x3x3,pool:2,softmax:4", activation="tanh", input_shape=(2, h, w),
                  device="cpu", dtype="float64", seed=1)
    (conv_w, fc_w), (conv_b, fc_b) = model.weights, model.biases
    x = np.random.default_rng(3).standard_normal((2, h, w))
    kernel = conv_w.reshape(3, 2, 3, 3)
    z = np.array([[[np.sum(kernel[f] * x[:, i:i + 3, j:j + 3]) + conv_b[f, 0]
                    for j in range(w - 2)] for i in range(h - 2)] for f in range(3)])
    pooled = np.tanh(z).reshape(3, (h - 2) // 2, 2, (w - 2) // 2, 2).max(axis=(2, 4))
    logits = fc_w @ pooled.reshape(-1) + fc_b[:, 0]
    want = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(model.feedforward(x.reshape(-1, 1))[:, 0], want, rtol=1e-12)


def test_softmax_outputs_are_probabilities_even_for_huge_inputs(xp):
    """Weighted inputs of +-1e4 straight into the softmax layer: exp alone
    would overflow to inf/inf = NaN."""
    model = Model("softmax:3", seed=0, device=xp, dtype="float32", input_shape=(2,))
    model.weights[0] = xp.asarray(np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], np.float32))
    model.biases[0] = xp.zeros((3, 1), dtype=xp.float32)
    out = backend.to_numpy(model.feedforward(xp.asarray(np.array([[1e4, -1e4], [3.0, 0.0]]))))
    np.testing.assert_allclose(out, [[1, 0], [0, 0], [0, 1]], atol=1e-6)


def test_max_pool_routes_the_gradient_to_each_block_max():
    model = Model("pool:2,fc:1", input_shape=(1, 4, 4), device="cpu", dtype="float64")
    pool = model.layers[0]
    x = np.arange(16.0)[::-1].reshape(1, 4, 4, 1)
    a, cache = pool.forward(np, None, None, x)
    np.testing.assert_array_equal(a[0, :, :, 0], [[15, 13], [7, 5]])
    _, dx = pool.backward(np, None, cache, np.ones((1, 2, 2, 1)), True)
    assert dx.sum() == 4 and dx[0, 0, 0, 0] == dx[0, 0, 2, 0] == dx[0, 2, 0, 0] == 1


def test_dropout_masks_are_inverted_and_skip_the_pixels():
    model = Model("fc:50,fc:40,softmax:10", dropout=0.25, input_shape=(784,), device="cpu")
    masks = model.dropout_masks(1000)
    assert sorted(masks) == [1, 2]  # never layer 0, whose inputs are pixels
    mask = masks[1]
    assert mask.shape == (50, 1000) and set(np.unique(mask)) == {0.0, np.float32(1 / 0.75)}
    assert abs(float(np.mean(mask == 0)) - 0.25) < 0.01


@pytest.mark.parametrize("spec, message", [
    ("conv:20x5x5,pool:2", "last layer must be fc:N or softmax:N"),
    ("softmax:10,fc:10", "softmax can only be the output layer"),
    ("conv:20x5x4,fc:10", "kernels are square"),
    ("conv:20x3x3p3,fc:10", "the padding must be 0 to 2"),
    ("conv:20x3x3p,fc:10", "expected conv:FILTERSxKxK or conv:FILTERSxKxKpPAD"),
    ("conv:20x3x3p-1,fc:10", "the padding must be 0 to 2"),
    ("dense:100,fc:10", "unknown kind 'dense'"),
    ("fc:0,fc:10", "expected fc:N with positive whole numbers"),
    ("conv:20,fc:10", "expected conv:FILTERSxKxK"),
    ("conv:20x5,fc:10", "expected conv:FILTERSxKxK"),
    ("", "unknown kind ''"),
    ("conv:20x5x5,pool:5,fc:10", "pool:5 needs feature maps divisible by 5"),
    ("conv:2x30x30,fc:10", "does not fit 28x28"),
    ("fc:30,pool:2,fc:10", "needs image input"),
])
def test_bad_layer_specs_say_what_is_wrong(spec, message):
    with pytest.raises(ValueError, match=message):
        Model(spec, device="cpu")


@pytest.mark.parametrize("options, message", [
    (dict(activation="softmax"), "unknown activation 'softmax'"),
    (dict(input_shape=(-1, -28, 28)), "input_shape must be positive sizes"),
    (dict(input_shape=784), "input_shape must be a tuple of whole numbers"),
    (dict(layers="fc:10", dropout=0.5), "dropout thins the inputs"),
    (dict(layers="pool:2,fc:10", dropout=0.5), "dropout thins the inputs"),
])
def test_bad_model_options_say_what_is_wrong(options, message):
    options = dict(layers="fc:30,fc:10") | options
    with pytest.raises(ValueError, match=message):
        Model(options.pop("layers"), device="cpu", **options)


def test_costs_must_fit_the_output_layer():
    with pytest.raises(ValueError, match="log-likelihood cost needs a softmax output"):
        Model("fc:30,fc:10", cost="log-likelihood", device="cpu")
    with pytest.raises(ValueError, match="cross-entropy cost needs a sigmoid output"):
        Model("fc:30,softmax:10", cost="cross-entropy", device="cpu")
    assert parse_layers("conv:20x5x5,fc:10") == [("conv", (20, 5)), ("fc", (10,))]


@pytest.mark.parametrize("options, message", [
    (dict(lmbda=-1.0), "lmbda must be a number >= 0"),
    (dict(momentum=1.0), r"momentum must be a number in \[0, 1\), got 1.0"),
    (dict(patience=0), "patience must be null or a whole number >= 1, got 0"),
    (dict(eta_decay=128), "eta_decay needs patience"),
    (dict(patience=3), "give validation data"),
])
def test_bad_training_options(options, message):
    model = Model("fc:4,softmax:2", input_shape=(6,), device="cpu")
    with pytest.raises(ValueError, match=message):
        model.sgd(tiny_data(20, 0), 1, 10, 0.1, **options)


def tiny_data(n, seed):
    """Two linearly separable classes, so a tiny model learns them in an epoch."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = rng.random((6, n)) * 0.5 + 0.5 * labels
    return Dataset(images.astype(np.float32), labels)


@pytest.mark.parametrize("name", ["strict", pytest.param("cupy", marks=pytest.mark.gpu)])
def test_training_is_the_same_on_every_namespace(name):
    """The whole trainer (conv, pool, dropout, momentum, L2, schedule,
    monitoring) on another namespace against NumPy, from one seed (NumPy's
    own steps are checked against a separate reference in test_training.py)."""
    from conftest import load_namespace
    xp = load_namespace(name)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 60)
    images = rng.random((64, 60)) * 0.5
    for j, label in enumerate(labels):  # each class lights up its own band of rows
        images[label * 16:label * 16 + 16, j] += 0.5
    train, val = Dataset(images[:, :40], labels[:40]), Dataset(images[:, 40:], labels[40:])
    histories = []
    for space in (np, xp):
        model = Model("conv:3x3x3,pool:2,fc:6,softmax:3", activation="relu", dropout=0.2,
                      input_shape=(1, 8, 8), seed=1, device=space, dtype="float64")
        histories.append(sgd(model, train, 4, 5, 0.1, lmbda=0.5, momentum=0.5,
                             validation_data=val, test_data=val, monitor_training=True,
                             patience=1, eta_decay=4))
    for a, b in zip(*histories):
        for key in ("test_accuracy", "validation_accuracy", "training_accuracy", "eta"):
            assert a[key] == b[key], key
        for key in ("test_cost", "validation_cost", "training_cost"):
            assert a[key] == pytest.approx(b[key], rel=1e-9), key


def test_patience_alone_stops_early():
    model = Model("fc:4,softmax:2", input_shape=(6,), device="cpu", seed=0)
    train, val = tiny_data(200, 1), tiny_data(100, 2)
    history = sgd(model, train, 200, 10, 0.5, validation_data=val, patience=3)
    best = max(range(len(history)), key=lambda i: history[i]["validation_accuracy"])
    assert len(history) == best + 1 + 3  # three epochs without a better one, then stop
    assert {r["eta"] for r in history} == {0.5}


def test_plateau_schedule_halves_eta_then_stops_and_keeps_the_best_weights():
    model = Model("fc:4,softmax:2", input_shape=(6,), device="cpu", seed=0)
    train, val = tiny_data(200, 1), tiny_data(100, 2)
    history = sgd(model, train, 200, 10, 0.5, validation_data=val, patience=2, eta_decay=8)
    etas = [r["eta"] for r in history]
    assert len(history) < 200 and set(etas) <= {0.5, 0.25, 0.125}
    assert etas == sorted(etas, reverse=True) and etas[-1] == 0.125
    best = max(history, key=lambda r: r["validation_accuracy"])
    assert model.evaluate(val) == best["validation_correct"]


def full_batch_models(seed=5):
    return [Model("fc:3,softmax:2", input_shape=(6,), device="cpu", dtype="float64", seed=seed)
            for _ in range(2)]


def test_l2_is_the_book_weight_decay():
    """One full-batch step with lmbda differs from one without by exactly
    (eta lmbda / n) w0, biases untouched."""
    train = tiny_data(50, 3)
    a, b = full_batch_models()
    w0 = a.weights[0].copy()
    sgd(a, train, 1, 50, 0.1, lmbda=1000.0)
    sgd(b, train, 1, 50, 0.1)
    np.testing.assert_allclose(a.weights[0], b.weights[0] - 0.1 * 1000.0 / 50 * w0,
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.biases[0], b.biases[0], rtol=1e-12)


def test_momentum_carries_the_last_step_forward():
    """Two full-batch steps: w2 = w1 - (eta/m) g(w1) + mu (w1 - w0)."""
    train, mu, eta, n = tiny_data(40, 4), 0.9, 0.2, 40
    a, ref = full_batch_models()
    sgd(a, train, 2, n, eta, momentum=mu)
    x, y = train.images.astype(np.float64), np.eye(2)[:, train.labels]
    previous = [(w.copy(), b.copy()) for w, b in zip(ref.weights, ref.biases)]
    for step in range(2):
        nabla_b, nabla_w = ref.backprop(x, y)
        for i, (gw, gb, (pw, pb)) in enumerate(zip(nabla_w, nabla_b, previous)):
            w, b = ref.weights[i].copy(), ref.biases[i].copy()
            ref.weights[i] = w - eta / n * gw + (mu * (w - pw) if step else 0.0)
            ref.biases[i] = b - eta / n * gb + (mu * (b - pb) if step else 0.0)
            previous[i] = (w, b)
    for got, want in zip(a.weights + a.biases, ref.weights + ref.biases):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_expand_adds_the_four_one_pixel_shifts():
    rng = np.random.default_rng(0)
    images = rng.random((784, 3)).astype(np.float32)
    big = expand(Dataset(images, np.array([4, 5, 6])))
    assert len(big) == 15 and list(big.labels[:6]) == [4, 4, 4, 4, 4, 5]
    img = images[:, 0].reshape(28, 28)
    up, down, left, right = (big.images[:, k].reshape(28, 28) for k in range(1, 5))
    np.testing.assert_array_equal(big.images[:, 0], images[:, 0])
    np.testing.assert_array_equal(up[:27], img[1:])
    np.testing.assert_array_equal(down[1:], img[:27])
    np.testing.assert_array_equal(left[:, :27], img[:, 1:])
    np.testing.assert_array_equal(right[:, 1:], img[:, :27])
    assert not up[27].any() and not down[0].any() and not left[:, 27].any()
    assert big.images.dtype == np.float32  # not on the k/255 grid: kept as floats
    on_grid = np.round(images * 255).astype(np.float32) / np.float32(255)
    grid = expand(Dataset(on_grid, np.array([4, 5, 6])))
    assert grid.images.dtype == np.uint8  # MNIST-like pixels are kept as bytes
    as_floats = grid.images.astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(as_floats[:, 0], on_grid[:, 0])
    np.testing.assert_array_equal(as_floats[:, 1].reshape(28, 28)[:27],
                                  on_grid[:, 0].reshape(28, 28)[1:])  # up, as above


@pytest.mark.parametrize("change, message", [
    (dict(activation="softmax"), "unknown activation 'softmax'"),
    (dict(input_shape=[-1, -28, 28]), "model: input_shape must be a list of whole numbers"),
    (dict(input_shape=[0, 28, 28]), "input_shape must be positive sizes"),
    (dict(layers="fc:30,fc:10"), "description needs"),
    (dict(cost="log-likelihood"), "needs a softmax output"),
])
def test_tampered_model_files_are_one_line_errors(tmp_path, change, message):
    checkpoint.save(Model("conv:2x5x5,pool:2,fc:10", device="cpu"), tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as npz:
        arrays = dict(npz)
    arrays["model"] = np.array(json.dumps(json.loads(str(arrays["model"])) | change))
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(checkpoint.CheckpointError, match=message) as err:
        checkpoint.load(tmp_path / "bad.npz", device="cpu")
    assert "\n" not in str(err.value)


def test_save_and_load_a_conv_model(tmp_path, xp):
    model = Model("conv:3x5x5,pool:2,fc:8,softmax:10", activation="relu", seed=2, device="cpu")
    model.classes = [f"c{i}" for i in range(10)]
    checkpoint.save(model, tmp_path / "conv.npz")
    back = checkpoint.load(tmp_path / "conv.npz", device=xp)
    assert isinstance(back, Model) and back.spec == model.spec and back.classes == model.classes
    x = np.random.default_rng(0).random((784, 3))
    np.testing.assert_allclose(backend.to_numpy(back.feedforward(xp.asarray(x))),
                               model.feedforward(x), rtol=1e-5)
