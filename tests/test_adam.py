"""Adam (AdamW's decoupled weight decay), optimizers.py: step by step against
PyTorch's single-tensor AdamW written out here, and against PyTorch itself
where it is installed; its state in snapshots and checkpoints, resumed bit
for bit; its settings' checks."""

import dataclasses

import numpy as np
import pytest

from digitnet import Model, checkpoint, cli, optimizers, runs, training
from digitnet.config import TrainConfig
from conftest import blobs


def reference_adamw(p, g, m, v, t, lr, beta1, beta2, weight_decay, eps=1e-8):
    """PyTorch's _single_tensor_adam with decoupled weight decay (AdamW),
    written out with NumPy float64: the order of each operation is its."""
    p = p * (1 - lr * weight_decay)
    weight = 1 - beta1
    m = m + weight * (g - m) if weight < 0.5 else g - (g - m) * (1 - weight)  # lerp_
    v = v * beta2 + (1 - beta2) * g * g                                        # addcmul_
    step_size = lr / (1 - beta1 ** t)
    denom = np.sqrt(v) / (1 - beta2 ** t) ** 0.5 + eps
    return p + (-step_size) * m / denom, m, v                                  # addcdiv_


def a_net():
    return Model("fc:6,softmax:3", activation="relu", init="scaled", seed=2, device="cpu",
                 dtype="float64", input_shape=(5,))


def gradients(net, data, step):
    """(nabla_w, nabla_b) summed over a mini-batch of 8, a different one each step."""
    x = data.images[:, 8 * step:8 * step + 8]
    y = np.eye(3)[:, data.labels[8 * step:8 * step + 8]]
    nabla_b, nabla_w = net.backprop(x, y)
    return nabla_w, nabla_b


@pytest.mark.parametrize("beta1, beta2, lmbda", [(0.9, 0.999, 0.0), (0.8, 0.99, 5.0),
                                                 (0.3, 0.9, 2.0), (0.9, 0.999, 2500.0)])
def test_each_step_is_pytorchs_adamw_bit_for_bit(beta1, beta2, lmbda):
    """Weights decayed (lmbda/n as PyTorch's weight_decay), biases not;
    beta1 = 0.3 takes lerp's other form; at lmbda = 2500 the decay is large
    enough that eta lmbda / n and eta (lmbda / n) keep different weights."""
    # n = 150: eta lmbda / n and eta (lmbda / n) round apart here; PyTorch's is the second
    data, n, m, eta = blobs(64, features=5, classes=3), 150, 8, 0.01
    net = a_net()
    opt = optimizers.Adam(net, TrainConfig(mini_batch_size=m, eta=eta, lmbda=lmbda,
                                           optimizer="adam", beta1=beta1, beta2=beta2))
    params = [p.copy() for p in net.weights + net.biases]
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    for step in range(6):
        nabla_w, nabla_b = gradients(net, data, step)
        opt.step(nabla_w, nabla_b, eta, m, n)
        for i, (p, g) in enumerate(zip(params, nabla_w + nabla_b)):
            decay = lmbda / n if i < len(nabla_w) else 0.0
            params[i], *moments[i] = reference_adamw(p, g / m, *moments[i], step + 1, eta,
                                                     beta1, beta2, decay)
        for got, want in zip(net.weights + net.biases, params):
            np.testing.assert_array_equal(got, want)
    assert opt.t == 6


def test_each_step_is_pytorchs_own():
    """To rounding: PyTorch's vectorized CPU kernels (lerp, addcmul) fuse
    multiply-adds, which the formulas written out above do not."""
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (digitnet[peer])")
    data, n, m, eta, lmbda = blobs(64, features=5, classes=3), 200, 8, 0.02, 3.0
    net = a_net()
    opt = optimizers.Adam(net, TrainConfig(mini_batch_size=m, eta=eta, lmbda=lmbda,
                                           optimizer="adam", beta1=0.85, beta2=0.995))
    ws = [torch.tensor(w.copy()) for w in net.weights]
    bs = [torch.tensor(b.copy()) for b in net.biases]
    theirs = torch.optim.AdamW([{"params": ws, "weight_decay": lmbda / n},
                                {"params": bs, "weight_decay": 0.0}], lr=eta,
                               betas=(0.85, 0.995), eps=1e-8, foreach=False)
    for step in range(5):
        nabla_w, nabla_b = gradients(net, data, step)
        for p, g in zip(ws + bs, nabla_w + nabla_b):
            p.grad = torch.tensor(g / m)
        theirs.step()
        opt.step(nabla_w, nabla_b, eta, m, n)
        for got, want in zip(net.weights + net.biases, ws + bs):
            np.testing.assert_allclose(got, want.numpy(), rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("engine", ["batched", "per-example"])
def test_adam_trains_through_fit(engine):
    """On the fast path (a dense chain, batched) and the plain one."""
    data = blobs(300, features=5, classes=3)
    net = a_net()
    before = net.evaluate(data)
    run = training.Run(net, mini_batch_size=10, eta=0.01, epochs=5, optimizer="adam",
                       engine=engine)
    training.fit(run, data)
    assert run.velocities is None and run.optimizer.t == 5 * 30
    assert net.evaluate(data) > max(before, 0.9 * len(data))


def test_a_snapshot_brings_adams_state_back():
    data = blobs(40, features=5, classes=3)
    run = training.Run(a_net(), mini_batch_size=8, eta=0.01, epochs=3, optimizer="adam")
    training.fit(run, data, 1)
    before = run.snapshot()
    kept = [a.copy() for a in run.optimizer.buffers()]
    training.fit(run, data, 2)
    assert run.optimizer.t == 10
    run.restore(before)
    assert run.optimizer.t == 5
    for got, want in zip(run.optimizer.buffers(), kept):
        np.testing.assert_array_equal(got, want)


def test_an_adam_run_resumes_bit_for_bit(tmp_path):
    data = blobs(150, features=5, classes=3)
    settings = dict(mini_batch_size=10, eta=0.01, lmbda=2.0, optimizer="adam", beta1=0.8,
                    beta2=0.99)
    whole = training.Run(a_net(), epochs=4, **settings)
    runs.fit(whole, data, runs.Files())
    half = training.Run(a_net(), epochs=2, **settings)
    runs.fit(half, data, runs.Files(checkpoint=tmp_path / "r.ckpt"))
    again, _ = checkpoint.load_run(tmp_path / "r.ckpt", "cpu")
    assert again.optimizer.kind == "adam" and again.optimizer.t == 30
    again.config = dataclasses.replace(again.config, epochs=4)
    runs.fit(again, data, runs.Files())
    for got, want in zip(again.net.weights + again.net.biases + again.optimizer.buffers(),
                         whole.net.weights + whole.net.biases + whole.optimizer.buffers()):
        np.testing.assert_array_equal(got, want)
    assert again.optimizer.t == whole.optimizer.t == 60


def test_a_checkpoint_without_adams_arrays_or_steps_is_refused(tmp_path):
    data = blobs(40, features=5, classes=3)
    run = training.Run(a_net(), mini_batch_size=8, eta=0.01, epochs=1, optimizer="adam")
    runs.fit(run, data, runs.Files(checkpoint=tmp_path / "r.ckpt"))
    import json
    import zipfile
    with zipfile.ZipFile(tmp_path / "r.ckpt") as z:
        members = {name: z.read(name) for name in z.namelist()}
    for drop, words in (("adam_v_b_1.npy", "missing array 'adam_v_b_1'"),
                        ("state.npy", None)):
        bad = tmp_path / f"without-{drop}"
        with zipfile.ZipFile(bad, "w") as z:
            for name, content in members.items():
                if name != drop:
                    z.writestr(name, content)
                elif words is None:  # the state, without adam_steps
                    state = json.loads(np.load(tmp_path / "r.ckpt")["state"].item())
                    del state["adam_steps"]
                    import io
                    buffer = io.BytesIO()
                    np.save(buffer, np.array(json.dumps(state)))
                    z.writestr(name, buffer.getvalue())
        with pytest.raises(checkpoint.CheckpointError) as caught:
            checkpoint.load_run(bad, "cpu")
        assert (words or "adam_steps is missing") in str(caught.value)


@pytest.mark.parametrize("settings, words", [
    (dict(optimizer="adam", momentum=0.9), "momentum is SGD's"),
    (dict(beta1=0.5), "beta1 and beta2 are adam's"),
    (dict(beta2=0.5), "beta1 and beta2 are adam's"),
    (dict(optimizer="adam", beta1=1.0), "beta1 must be a number in [0, 1)"),
    (dict(optimizer="adam", beta2=-0.1), "beta2 must be a number in [0, 1)"),
    (dict(optimizer="rmsprop"), "optimizer must be one of sgd, adam"),
])
def test_adams_settings_are_checked_one_condition_at_a_time(settings, words):
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace(")", r"\)")):
        TrainConfig(mini_batch_size=10, eta=0.1, **settings)


def test_the_command_line_trains_with_adam_and_says_what_is_wrong(small_split, tmp_path, capsys):
    metrics = tmp_path / "m.json"
    assert cli.main(["train", "--layers", "fc:30,softmax:10", "--activation", "relu", "--init",
                     "scaled", "--optimizer", "adam", "--eta", "0.001", "--epochs", "2",
                     "--batch-size", "20", "--metrics", str(metrics), *small_split]) == 0
    import json
    report = json.loads(metrics.read_text())
    assert report["config"]["optimizer"] == "adam" and report["config"]["beta1"] == 0.9
    assert report["epochs"][-1]["validation_accuracy"] > 0.8
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "--optimizer", "adam", "--momentum", "0.9", *small_split])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("digitnet: error: --momentum is SGD's") and err.count("\n") == 1
