"""`digitnet serve` over loopback: every endpoint, every bad input, path
traversal, oversized bodies, the command's start-up errors and signals, and
a bounded load test that quotes its latency.

Servers run in a thread on 127.0.0.1, port 0; the command runs as a real
`python -m digitnet serve` process where its signals and exits are the point.
"""

import contextlib
import http.client
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from digitnet import Model, Network, bodies, cli, cli_serve, imaging, load, serve

Image = pytest.importorskip("PIL.Image", reason="Pillow is not installed (digitnet[image])")
ROOT = Path(__file__).resolve().parent.parent
CONV = "conv:20x5x5,pool:2,conv:40x5x5,pool:2,fc:100,softmax:10"


def digit_picture(test, i, fmt="PNG", scale=4):
    """Test digit i as a picture file's bytes: dark ink on light paper, enlarged."""
    g = (test.images[:, i].reshape(28, 28) * 255).round().astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(255 - g).resize((28 * scale, 28 * scale)).save(out, fmt)
    return out.getvalue()


def call(url, method="GET", path="/", body=None, headers=None, timeout=30):
    """(status, headers, body bytes) of one request, sent as given."""
    host, port = url.split("//")[1].rstrip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        res = conn.getresponse()
        return res.status, dict(res.getheaders()), res.read()
    finally:
        conn.close()


def api(url, method="GET", path="/api/model", body=None, kind=None):
    """(status, decoded JSON); JSON bodies are checked to be one line."""
    headers = {"Content-Type": kind} if kind else {}
    if isinstance(body, (dict, list)):
        body, headers = json.dumps(body).encode(), {"Content-Type": "application/json"}
    status, head, raw = call(url, method, path, body, headers)
    assert head["Content-Type"] == "application/json"
    assert raw.endswith(b"\n") and raw.count(b"\n") == 1, raw[:200]
    return status, json.loads(raw)


def raw_request(url, data, wait=5.0):
    """Send raw bytes; (status line, seconds until it came) of the answer."""
    host, port = url.split("//")[1].rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as s:
        started = time.perf_counter()
        s.sendall(data)
        answer = b""
        while b"\r\n" not in answer:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
        return answer.split(b"\r\n")[0].decode(), time.perf_counter() - started


@pytest.fixture(scope="module")
def net(trained_model):
    return load(trained_model, device="cpu")


@pytest.fixture(scope="module")
def url(net, mnist_dir, trained_model):
    server, address = serve.start(serve.App(net, str(trained_model), data_dir=mnist_dir, seed=0))
    yield address
    server.shutdown()
    server.server_close()


def test_the_page_and_its_files_are_served_and_load_nothing_from_elsewhere(url):
    status, head, page = call(url, path="/")
    assert status == 200 and head["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in head["Content-Security-Policy"]
    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css"),
                       ("favicon.svg", "image/svg+xml")):
        assert f'"{name}"'.encode() in page
        status, head, body = call(url, path=f"/{name}?v=1")
        assert status == 200 and head["Content-Type"].startswith(kind) and body
    for path in serve.STATIC.iterdir():  # offline: no URL to any other host
        text = path.read_text()
        assert "://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', ""), path
    status, head, body = call(url, "HEAD", "/")
    assert status == 200 and body == b"" and int(head["Content-Length"]) == len(page)


def test_model_describes_the_network_and_its_test_accuracy(url, net, mnist, trained_model):
    status, info = api(url)
    assert status == 200
    assert info["name"] == trained_model.name != str(trained_model)  # the file, not its path
    assert info["description"] == "[784, 30, 10]" and info["config"] == net.config()
    assert info["classes"] == [str(d) for d in range(10)] and info["output"] == "sigmoid"
    assert info["dataset"] == "mnist"
    assert info["test_correct"] == net.evaluate(mnist[2]) and info["test_total"] == 10000
    assert info["test_accuracy"] == info["test_correct"] / 10000 > 0.8


@pytest.mark.parametrize("fmt,kind", [("PNG", "image/png"), ("JPEG", "image/jpeg")])
def test_predict_a_picture_is_predict_json_plus_input(url, net, mnist, fmt, kind):
    _, _, test = mnist
    for i in range(5):
        picture = digit_picture(test, i, fmt)
        status, got = api(url, "POST", "/api/predict", picture, kind)
        want = imaging.predict(net, [picture], with_input=True)[0]
        assert status == 200 and set(got) == set(want) >= {"path", "digit", "label", "outputs",
                                                           "input"}
        assert {k: v for k, v in got.items() if k != "input"} == \
            {k: v for k, v in want.items() if k != "input"}
        assert np.allclose(got["input"], want["input"], atol=1e-4)
        assert np.array(got["input"]).shape == (28, 28)


def test_predict_pixels_of_any_size(url, net, mnist):
    _, _, test = mnist
    grey = test.images[:, 7].reshape(28, 28).astype(np.float64)
    big = np.kron(255 - np.round(grey * 255), np.ones((3, 2)))  # 84x56, 0-255, dark ink
    for pixels in (grey, big):
        status, got = api(url, "POST", "/api/predict", {"pixels": pixels.tolist()})
        want = imaging.predict(net, [pixels], with_input=True)[0]
        assert status == 200 and got["digit"] == want["digit"] and got["outputs"] == want["outputs"]
    assert got["digit"] == test.labels[7]


def test_sample_is_a_random_test_digit_it_gets_wrong_or_right(url, net, mnist):
    _, _, test = mnist
    seen = set()
    for wrong in (1, 0, 1, 0, 1):
        status, s = api(url, path=f"/api/sample?wrong={wrong}")
        assert status == 200 and s["wrong"] == bool(wrong)
        column = test.images[:, s["index"]]
        out = net.feedforward(column[:, None])[:, 0]
        assert s["label"] == test.labels[s["index"]] and s["label_name"] == str(s["label"])
        assert s["prediction"]["digit"] == int(np.argmax(out))
        assert (s["prediction"]["digit"] != s["label"]) == bool(wrong)
        assert np.allclose(s["prediction"]["outputs"], out, atol=1e-5)
        assert np.allclose(np.array(s["pixels"]).ravel(), column, atol=1e-4)
        seen.add(s["index"])
    assert len(seen) > 2  # random, not always the first one
    assert api(url, path="/api/sample?wrong=yes") == (400, {"error": "wrong must be 0 or 1, got 'yes'"})


def test_without_data_sample_is_503_and_the_rest_works(net, mnist, tmp_path):
    server, url = serve.start(serve.App(net, data_dir=tmp_path))
    try:
        status, body = api(url, path="/api/sample?wrong=1")
        assert status == 503 and set(body) == {"error"} and "digitnet download" in body["error"]
        status, info = api(url)
        assert status == 200 and info["test_accuracy"] is None and info["test_error"] == body["error"]
        status, got = api(url, "POST", "/api/predict", digit_picture(mnist[2], 0), "image/png")
        assert status == 200 and got["digit"] == imaging.predict(
            net, [digit_picture(mnist[2], 0)])[0]["digit"]
    finally:
        server.shutdown()
        server.server_close()


def white_png():
    out = io.BytesIO()
    Image.new("L", (60, 60), 255).save(out, "PNG")
    return out.getvalue()


# The checks the server makes itself: the words its one-line error must hold.
BAD = {
    "malformed JSON": (b'{"pixels": [[0, 1]', "application/json", "malformed JSON"),
    "JSON not an object": (b"[[0, 1], [1, 0]]", "application/json", "expected a JSON object"),
    "no pixels": (b'{"pixel": [[1]]}', "application/json", "expected a JSON object"),
    "ragged rows": (b'{"pixels": [[0, 1], [1]]}', "application/json", "rows of equal length"),
    "strings": (b'{"pixels": [["a", "b"]]}', "application/json", "2-D array of numbers"),
    "1-D": (b'{"pixels": [0, 1, 0]}', "application/json", "got shape (3,)"),
    "3-D": (b'{"pixels": [[[0, 1]]]}', "application/json", "got shape (1, 1, 2)"),
    "nested too deeply": (b'{"pixels": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                          "application/json", "nested too deeply"),
    "not UTF-8": (b'{"pixels": "\xff\xfe"}', "application/json", "UTF-8"),
    "not a PNG": (b"hello, this is text", "image/png", "not a PNG"),
    "a PNG sent as JPEG": (None, "image/jpeg", "not a JPEG"),
    "damaged PNG": (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "image/png", "damaged"),
}
# The ones imaging.predict makes: the server must answer with its message.
BAD_FOR_IMAGING = {
    "empty rows": [[]], "NaN": [[0, float("nan")], [1, 0]], "negative": [[0, -1], [1, 0]],
    "blank pixels": [[0] * 9] * 9, "blank picture": None, "over 255": [[0, 256], [1, 0]],
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_400_with_one_line_json(url, case):
    body, kind, says = BAD[case]
    body = white_png() if body is None else body
    status, answer = api(url, "POST", "/api/predict", body, kind)
    assert status == 400 and set(answer) == {"error"}, answer
    assert says in answer["error"] and "\n" not in answer["error"]


@pytest.mark.parametrize("case", list(BAD_FOR_IMAGING))
def test_what_imaging_refuses_is_400_with_its_message(url, net, case):
    pixels = BAD_FOR_IMAGING[case]
    if pixels is None:
        status, answer = api(url, "POST", "/api/predict", white_png(), "image/png")
        source = white_png()
    else:
        status, answer = api(url, "POST", "/api/predict", {"pixels": pixels})
        source = np.array(pixels, dtype=np.float64)
    want = imaging.predict(net, [source])[0]
    assert status == 400 and set(answer) == {"error"} and "\n" not in answer["error"]
    assert want["error"] == f"{want['path']}: {answer['error']}"
    if case.startswith("blank"):
        assert "blank" in answer["error"]


def test_other_requests_get_the_right_refusal(url):
    assert api(url, "POST", "/api/predict", b"GIF89a", "image/gif")[0] == 415
    assert api(url, "POST", "/api/predict", b"{}", "text/plain")[0] == 415
    assert api(url, path="/api/predict")[0] == 405
    assert api(url, "POST", "/api/model", b"{}", "application/json")[0] == 405
    assert api(url, "POST", "/nowhere", b"{}", "application/json")[0] == 404
    assert api(url, "PUT", "/", b"x", "text/plain")[0] == 501
    status, info = api(url, "DELETE", "/api/model")
    assert status == 501 and set(info) == {"error"}


TRAVERSALS = ["/../serve.py", "/%2e%2e/serve.py", "/%2e%2e%2fserve.py", "/..%2f..%2fetc%2fpasswd",
              "/static/../serve.py", "/app.js/../../serve.py", "//etc/passwd", "/etc/passwd",
              "/serve.py", "/static/app.js", "/./app.js", "/app.js%00.html", "/%2fetc%2fpasswd",
              "/....//....//etc/passwd", "/..\\serve.py", "/%252e%252e/serve.py",
              "http://127.0.0.1/etc/passwd", "/" + str(serve.STATIC / "app.js")]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_nothing_outside_the_page_is_readable(url, path):
    status, head, body = call(url, path=path)
    assert status == 404 and json.loads(body) == {"error": "not found"}
    assert b"root:" not in body and b"import" not in body


def test_a_huge_body_gets_413_at_once_unread(url):
    """Content-Length says 10 GB, 5 bytes follow: the answer comes before
    the body could ever have been read."""
    head = (b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
            b"Content-Length: %d\r\n\r\nhello")
    line, seconds = raw_request(url, head % 10_000_000_000)
    assert line.endswith("413 Request Entity Too Large") and seconds < 1.0, (line, seconds)
    line, _ = raw_request(url, head % (serve.MAX_BODY + 1))
    assert "413" in line
    # a small file that claims a huge picture is refused from its header
    out = io.BytesIO()
    Image.new("1", (8001, 8000)).save(out, "PNG")  # one column over 64 megapixels
    status, answer = api(url, "POST", "/api/predict", out.getvalue(), "image/png")
    assert (status, answer["error"]) == (413, "picture too large: 8001x8000 pixels, at most 64 "
                                              "megapixels") and serve.MAX_PIXELS == 64_000_000
    out = io.BytesIO()
    Image.new("1", (serve.imaging.MAX_SIDE + 1, 1)).save(out, "PNG")  # one row, too long
    status, answer = api(url, "POST", "/api/predict", out.getvalue(), "image/png")
    assert (status, answer["error"]) == (413, "picture too large: 65536x1 pixels, at most 65535 "
                                              "pixels a side")


@pytest.mark.parametrize("headers,code", [
    (b"", "411"), (b"Transfer-Encoding: chunked\r\n", "411"),
    (b"Content-Length: abc\r\n", "400"), (b"Content-Length: -5\r\n", "400"),
    (b"Content-Length: \xb2\r\n", "400"),  # a superscript 2: isdigit() but not int()
    (b"Content-Length: 5\r\nContent-Length: 50\r\n", "400")])
def test_post_without_a_usable_length(url, headers, code):
    line, _ = raw_request(url, b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          b"Content-Type: image/png\r\n" + headers + b"\r\n")
    assert line.split()[1] == code, line


def test_stalled_and_garbled_clients_do_not_slow_the_others(url, mnist):
    stalled = []
    host, port = url.split("//")[1].rstrip("/").split(":")
    for data in (b"POST /api/predict HTTP/1.1\r\nContent-Type: image/png\r\n"
                 b"Content-Length: 4000\r\n\r\n\x89PNG",  # a body that never comes
                 b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n",        # headers that never end
                 b"GE"):
        s = socket.create_connection((host, int(port)))
        s.sendall(data)
        stalled.append(s)
    assert raw_request(url, b"\x16\x03\x01 garbage\r\n\r\n")[0].split()[1] == "400"
    picture = digit_picture(mnist[2], 3)
    started = time.perf_counter()
    for _ in range(10):
        assert api(url, "POST", "/api/predict", picture, "image/png")[0] == 200
    assert time.perf_counter() - started < 5
    for s in stalled:
        s.close()


def load_test(url, pictures, want, clients=20, requests=500):
    """All `requests` answered correctly by `clients` at once; (median, p99) ms."""
    def one(i):
        started = time.perf_counter()
        status, got = api(url, "POST", "/api/predict", pictures[i % len(pictures)], "image/png")
        return time.perf_counter() - started, status, got.get("digit")

    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, range(requests)))
    assert [(status, digit) for _, status, digit in results] == \
        [(200, want[i % len(pictures)]) for i in range(requests)]
    ms = sorted(1000 * r[0] for r in results)
    return statistics.median(ms), ms[int(0.99 * len(ms)) - 1]


@pytest.mark.slow  # the load must be real to mean anything
@pytest.mark.parametrize("kind", ["chapter-1", "conv"])
def test_load_500_predictions_from_20_clients(trained_model, mnist, kind, tmp_path, capsys):
    """A real `digitnet serve` process (the clients run here, apart from it)
    answers them all with imaging.predict's digits; latency is quoted."""
    from digitnet import save
    _, _, test = mnist
    path = trained_model
    if kind == "conv":
        path = tmp_path / "conv.npz"
        save(Model(CONV, activation="relu", init="scaled", seed=0, device="cpu"), path)
    network = load(path, device="cpu")
    pictures = [digit_picture(test, i) for i in range(100)]
    want = [r["digit"] for r in imaging.predict(network, pictures)]
    with serving(path, "--data-dir", tmp_path / "no-data") as url:
        alone, _ = load_test(url, pictures, want, clients=1, requests=100)
        started = time.perf_counter()
        median, p99 = load_test(url, pictures, want)
        seconds = time.perf_counter() - started
    with capsys.disabled():
        print(f"\n  serve load, {kind} {network.describe()}: 500 PNG predictions from 20 "
              f"clients in {seconds:.1f}s, latency median {median:.1f} ms, p99 {p99:.1f} ms "
              f"(one client alone: median {alone:.1f} ms)")
    assert p99 < 10_000


# ---- the command ------------------------------------------------------------

def serve_process(*args):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "digitnet", "serve", *map(str, args)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@contextlib.contextmanager
def serving(model, *args):
    """A `digitnet serve` process on a free port: its address, then Ctrl-C."""
    proc = serve_process(model, "--port", 0, "--device", "cpu", *args)
    try:
        line = proc.stdout.readline()
        assert " at http://127.0.0.1:" in line, (line, proc.stderr.read())
        yield line.split(" at ")[1].split()[0]
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
        assert proc.returncode == 0
    finally:
        proc.kill()


@pytest.mark.parametrize("sig,name", [(signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")])
def test_the_command_serves_until_a_signal_then_exits_0(trained_model, mnist_dir, sig, name):
    proc = serve_process(trained_model, "--port", 0, "--device", "cpu", "--data-dir", mnist_dir)
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving [784, 30, 10] from ") and "http://127.0.0.1:" in line
        address = line.split(" at ")[1].split()[0]
        status, info = api(address)
        assert status == 200 and info["test_accuracy"] > 0.8
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0 and out == ""
    assert err == f"digitnet: {name}: server stopped\n"


def test_a_port_in_use_is_one_line_before_anything_is_served(trained_model):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        proc = serve_process(trained_model, "--port", busy.getsockname()[1], "--device", "cpu")
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("digitnet: error: cannot listen on 127.0.0.1:")
    assert "in use" in err


@pytest.mark.parametrize("content", [None, b"not a model", b"PK\x03\x04broken zip"])
def test_a_bad_model_file_is_one_line_and_exit_1(tmp_path, content, capsys):
    path = tmp_path / "model.npz"
    if content is not None:
        path.write_bytes(content)
    assert cli.main(["serve", str(path), "--port", "0", "--device", "cpu"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("digitnet: error: ")
    assert str(path) in err


def test_bad_arguments_are_one_line_and_exit_2(trained_model, capsys):
    for bad in (["--port", "70000"], ["--port", "http"], ["--dataset", "cifar"]):
        with pytest.raises(SystemExit) as exit:
            cli.main(["serve", str(trained_model), *bad])
        assert exit.value.code == 2
        assert capsys.readouterr().err.count("\n") == 1


def test_listening_beyond_this_machine_warns():
    for host in ("0.0.0.0", "::", "192.168.1.5", "example.org"):
        assert "anyone who can reach this machine" in cli_serve.exposure_warning(host)
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert cli_serve.exposure_warning(host) is None


def test_a_fashion_model_answers_with_class_names(tmp_path):
    net = Network([784, 10, 10], seed=0, device="cpu")
    net.classes = list(imaging.CLASSES["fashion-mnist"])
    server, url = serve.start(serve.App(net, data_dir=tmp_path))
    try:
        status, info = api(url)
        assert info["dataset"] == "fashion-mnist" and info["classes"][9] == "Ankle boot"
        shoe = np.zeros((40, 40))
        shoe[25:35, 5:35], shoe[15:25, 25:35] = 1, 1
        status, got = api(url, "POST", "/api/predict", {"pixels": shoe.tolist()})
        assert status == 200 and got["label"] == info["classes"][got["digit"]]
        assert got == {**imaging.predict(net, [shoe], "fashion-mnist", with_input=True)[0],
                       "input": got["input"]}
    finally:
        server.shutdown()
        server.server_close()


def test_a_trickling_client_is_cut_off_by_the_total_deadline(net, monkeypatch):
    """One byte every 0.3 s keeps every single read alive, but not the whole
    request: past TIMEOUT in all, the server hangs up and frees the thread."""
    monkeypatch.setattr(serve, "TIMEOUT", 1.0)
    server, url = serve.start(serve.App(net, data_dir="/nonexistent"))
    try:
        host, port = url.split("//")[1].rstrip("/").split(":")
        s = socket.create_connection((host, int(port)))
        s.sendall(b"POST /api/predict HTTP/1.1\r\nContent-Type: image/png\r\n"
                  b"Content-Length: 1000\r\n\r\n")
        started, closed = time.perf_counter(), False
        while time.perf_counter() - started < 6:
            try:
                s.sendall(b"x")
            except OSError:
                closed = True
                break
            time.sleep(0.3)
        assert closed and time.perf_counter() - started < 4
    finally:
        s.close()
        server.shutdown()
        server.server_close()


def test_expect_100_continue_is_answered_before_the_body(url, mnist):
    host, port = url.split("//")[1].rstrip("/").split(":")
    picture = digit_picture(mnist[2], 0)
    s = socket.create_connection((host, int(port)), timeout=5)
    s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
              b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(picture))
    assert s.recv(64).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    s.sendall(picture)
    reply = b""
    while b"}" not in reply.split(b"\r\n\r\n", 1)[-1]:
        chunk = s.recv(65536)
        if not chunk:
            break
        reply += chunk
    s.close()
    assert reply.split()[1] == b"200" and b'"digit"' in reply


# ---- crowds, slow clients, numbers and names (issue 18) ----------------------

def connect(url):
    host, port = url.split("//")[1].rstrip("/").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def closed_within(s, seconds, drip=None):
    """Seconds until the server closes `s` (None if it has not by then);
    `drip` is sent every 0.2 s meanwhile, as a slowloris client does."""
    started = time.perf_counter()
    s.settimeout(0.2)
    while time.perf_counter() - started < seconds:
        try:
            if drip:
                s.sendall(drip)
            if s.recv(4096) == b"":
                return time.perf_counter() - started
        except socket.timeout:
            continue
        except OSError:
            return time.perf_counter() - started
    return None


@pytest.mark.parametrize("opening,drip", [
    (b"", None),                                   # connects, sends nothing
    (b"GET / HTTP/1.1\r\n", b"X"),                 # headers, one byte at a time
    (b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
     b"Content-Length: 100\r\n\r\n", None)])    # a body that never comes
def test_a_slow_or_idle_client_is_dropped_at_the_total_deadline(net, monkeypatch, opening, drip):
    """Every read is quick, or there is none, but the request never ends:
    TIMEOUT counts from the connection to the end of the request, so the
    client is dropped then, whether it is in its headers or its body."""
    monkeypatch.setattr(serve, "TIMEOUT", 1.0)
    server, url = serve.start(serve.App(net, data_dir="/nonexistent"))
    try:
        with connect(url) as s:
            s.sendall(opening)
            seconds = closed_within(s, 6, drip)
        assert seconds is not None and 0.5 < seconds < 3.0, seconds
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow  # 144 real sockets held open
def test_64_slowloris_and_80_idle_clients_leave_room_for_the_page(url, mnist):
    """The issue's crowd, over real sockets: 80 connections that send
    nothing and 64 that send a header byte every 0.2 s.  Meanwhile the page,
    the model and predictions answer other clients at once."""
    picture = digit_picture(mnist[2], 3)
    idle = [connect(url) for _ in range(80)]
    slow = [connect(url) for _ in range(64)]
    try:
        for s in slow:
            s.sendall(b"GET / HTTP/1.1\r\n")
        started = time.perf_counter()
        while time.perf_counter() - started < 3:
            for s in slow:
                s.sendall(b"X")
            asked = time.perf_counter()
            assert call(url, path="/", timeout=5)[0] == 200
            assert api(url)[0] == 200
            assert api(url, "POST", "/api/predict", picture, "image/png")[0] == 200
            assert time.perf_counter() - asked < 3
            time.sleep(0.2)
    finally:
        for s in idle + slow:
            s.close()


def answers(url, picture, n):
    """(status, headers, body) of `n` predictions sent at once, each on its
    own connection; (None, error, b"") where no answer came."""
    def one(_):
        try:
            return call(url, "POST", "/api/predict", picture, {"Content-Type": "image/png"})
        except (OSError, http.client.HTTPException) as exc:
            return None, repr(exc), b""
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_a_burst_of_200_predictions_is_answered_in_full(url, mnist):
    """The issue's burst: 200 at once (37-50% got an empty reply before)."""
    got = answers(url, digit_picture(mnist[2], 3), 200)
    assert [status for status, _, _ in got] == [200] * 200, [g for g in got if g[0] != 200][:3]


def test_beyond_capacity_clients_get_503_with_retry_after_never_nothing(net, mnist, monkeypatch):
    """4 connections served, 4 waiting: with all 4 held, a burst of 60 gets
    503 answers (Retry-After, one line of JSON), none empty; once the held
    ones go, the server answers 200 again."""
    monkeypatch.setattr(serve, "CONNECTIONS", 4)
    monkeypatch.setattr(serve, "QUEUE", 4)
    monkeypatch.setattr(serve, "QUEUE_WAIT", 0.3)
    server, url = serve.start(serve.App(net, data_dir="/nonexistent"))
    picture = digit_picture(mnist[2], 3)
    try:
        held = [connect(url) for _ in range(4)]
        time.sleep(0.2)
        got = answers(url, picture, 60)
        for status, head, body in got:
            assert status == 503, (status, head)
            assert head["Retry-After"] == str(serve.RETRY_AFTER)
            assert head["Content-Type"] == "application/json" and body.count(b"\n") == 1
            assert "too many connections" in json.loads(body)["error"]
        for s in held:
            s.close()
        time.sleep(0.3)
        assert [g[0] for g in answers(url, picture, 4)] == [200] * 4
    finally:
        server.shutdown()
        server.server_close()


def test_a_waiting_client_is_served_when_a_connection_frees(net, mnist, monkeypatch):
    """Bounded queueing first: a client that finds no room waits, and is
    served as soon as a held connection goes."""
    monkeypatch.setattr(serve, "CONNECTIONS", 2)
    server, url = serve.start(serve.App(net, data_dir="/nonexistent"))
    try:
        held = [connect(url) for _ in range(2)]
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(api, url)
            time.sleep(0.5)
            assert not waiting.done()
            held[0].close()
            assert waiting.result(timeout=5)[0] == 200
        held[1].close()
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("number", [
    "1" + "0" * 400, "-1" + "0" * 400, "1" + "0" * 5000,  # past Python's int-string limit
    "1e400", "-1e400", "NaN", "Infinity", "-Infinity", "256", "255.5", "-1", "-0.001"])
def test_json_numbers_outside_pixel_values_are_400_never_500(url, number, capsys):
    body = b'{"pixels": [[0, %s], [1, 0]]}' % number.encode()
    status, answer = api(url, "POST", "/api/predict", body, "application/json")
    assert (status, answer) == (400, {"error": imaging.PIXEL_RANGE}), number[:20]
    assert capsys.readouterr().err == ""  # no line of a 500 on the server's output


def test_json_at_the_edges_of_the_pixel_range_is_read(url, net, mnist):
    """0, 1 and 255 exactly are pixel values, and so is a number too small
    for a float (1e-400 reads as 0)."""
    grey = mnist[2].images[:, 7].reshape(28, 28).astype(np.float64)
    for pixels in (grey / grey.max(), np.round(255 * grey / grey.max())):
        text = json.dumps({"pixels": pixels.tolist()}).replace("0.0,", "1e-400,", 1)
        status, got = api(url, "POST", "/api/predict", text.encode(), "application/json")
        want = imaging.predict(net, [pixels])[0]
        assert status == 200 and pixels.max() in (1, 255) and got["outputs"] == want["outputs"]


def test_json_bodies_are_limited_in_size_and_nesting(url):
    # Refused by its length, unread: only the headers are sent, since a client
    # still writing a megabyte when the server closes may see a broken pipe.
    host, port = url.split("//")[1].rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                  b"application/json\r\nContent-Length: %d\r\n\r\n" % (serve.MAX_JSON + 1))
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
    head, _, raw = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].endswith(b" 413 Request Entity Too Large"), head
    assert f"{serve.MAX_JSON} byte limit" in json.loads(raw)["error"]
    def deep(n):  # n brackets deep, the object's own included
        return b'{"pixels": ' + b"[" * (n - 1) + b"0" + b"]" * (n - 1) + b"}"
    assert bodies.nesting(deep(bodies.MAX_NESTING)) == bodies.MAX_NESTING
    status, answer = api(url, "POST", "/api/predict", deep(bodies.MAX_NESTING), "application/json")
    assert status == 400 and "got shape (1, 1, 1" in answer["error"]  # read, then refused
    assert api(url, "POST", "/api/predict", deep(bodies.MAX_NESTING + 1), "application/json") == \
        (400, {"error": "malformed JSON: nested too deeply"})
    assert bodies.nesting(b'{"a": [[1], [2, [3]]], "b": "]]]"}') == 4


def test_only_the_servers_own_host_names_are_answered(net, mnist):
    """DNS rebinding: a page elsewhere whose name resolves to 127.0.0.1
    sends its own name as Host; that gets a 400 naming --allow-host, on
    every path, while this machine's names (and --allow-host's) work."""
    server, url = serve.start(serve.App(net, data_dir="/nonexistent"),
                              allow_hosts=["Digits.Example"])
    port = url.rstrip("/").rsplit(":", 1)[1]
    picture = digit_picture(mnist[2], 3)
    try:
        for host in ("localhost", "127.0.0.1", "[::1]", "digits.example", "DIGITS.example."):
            for name in (host, f"{host}:{port}"):
                assert call(url, path="/api/model", headers={"Host": name})[0] == 200, name
        for host in ("evil.example", "localhost.evil.example", "127.0.0.1.nip.io",
                     "[::2]", "0.0.0.0", "digits.example.evil"):
            for method, path, body, kind in (("GET", "/", None, None),
                                             ("GET", "/api/model", None, None),
                                             ("GET", "/api/sample?wrong=1", None, None),
                                             ("POST", "/api/predict", picture, "image/png")):
                headers = {"Host": f"{host}:{port}", **({"Content-Type": kind} if kind else {})}
                status, head, raw = call(url, method, path, body, headers)
                error = json.loads(raw)["error"]
                assert status == 400 and f"--allow-host {host.lower()}" in error, (host, error)
        assert serve.connections.host_names("::", ["Box.Local"]) == \
            {"localhost", "127.0.0.1", "[::1]", "[::]", "box.local"}
    finally:
        server.shutdown()
        server.server_close()


def test_the_command_answers_allow_host_names_and_refuses_others(trained_model, tmp_path):
    with serving(trained_model, "--data-dir", tmp_path, "--allow-host", "pad.local",
                 "--allow-host", "10.0.0.7") as url:
        for host, want in (("pad.local", 200), ("10.0.0.7:8000", 200), ("127.0.0.1", 200),
                           ("other.local", 400)):
            assert call(url, path="/api/model", headers={"Host": host})[0] == want, host
    with pytest.raises(SystemExit):
        cli.main(["serve", str(trained_model), "--allow-host", "http://x/"])


def test_body_bytes_held_at_once_are_bounded_and_given_back(net, mnist, monkeypatch):
    """With room for 3 pictures' bytes, one 4 times as large is 503 (Retry-
    After), and 20 pictures in a row all pass: each gives its bytes back."""
    picture = digit_picture(mnist[2], 3)
    monkeypatch.setattr(serve, "BODIES", 3 * len(picture))
    server, url = serve.start(serve.App(net, data_dir="/nonexistent"))
    try:
        status, head, raw = call(url, "POST", "/api/predict", picture + b"\0" * 3 * len(picture),
                                 {"Content-Type": "image/png"})
        assert status == 503 and head["Retry-After"] == str(serve.RETRY_AFTER)
        assert "too many uploads" in json.loads(raw)["error"]
        for _ in range(20):
            assert api(url, "POST", "/api/predict", picture, "image/png")[0] == 200
    finally:
        server.shutdown()
        server.server_close()


def test_several_models_are_served_as_their_ensemble(trained_net, mnist, mnist_dir, tmp_path):
    """`digitnet serve a.npz b.npz`: the page's answers are the two
    networks' outputs averaged, and /api/model names both files."""
    from digitnet import Network
    other = Network([784, 30, 10], seed=9, device="cpu")
    other.sgd(mnist[0][:2000], 1, 10, 3.0)
    paths = [tmp_path / "a.npz", tmp_path / "b.npz"]
    trained_net.save(paths[0])
    other.save(paths[1])
    proc = serve_process(*paths, "--port", 0, "--device", "cpu", "--data-dir", mnist_dir)
    try:
        line = proc.stdout.readline()
        assert line.startswith("serving ensemble of 2: [784, 30, 10]; [784, 30, 10] from "
                               "a.npz + b.npz at http://127.0.0.1:"), line
        address = line.split(" at ")[1].split()[0]
        status, info = api(address)
        assert status == 200 and info["name"] == "a.npz + b.npz"
        digit = (mnist[2].images[:, 0].reshape(28, 28) * 255).round().tolist()
        status, answer = api(address, "POST", "/api/predict", {"pixels": digit})
        column = mnist[2].images[:, :1]
        want = (trained_net.feedforward(column) + other.feedforward(column)) / 2
        assert status == 200
        np.testing.assert_allclose(answer["outputs"], want[:, 0], rtol=1e-4, atol=1e-6)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0
