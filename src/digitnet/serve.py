"""`digitnet serve`: a local web page to write digits on, and its JSON API.

Seeing a network answer your own handwriting, stroke by stroke, teaches
more about what it learned than any accuracy figure: it shows which strokes
tip a 7 into a 1, and what the 28x28 picture it actually reads looks like.
The page only draws; every prediction is made here, by `imaging.predict`,
the same code path as `digitnet predict`, so the page can never disagree
with the command line.

The server is the standard library's threaded HTTP server: one thread per
connection, so a slow or hostile client holds only its own thread, and only
for TIMEOUT seconds per request, from the moment its connection opens to
the request's last byte, headers included.  Beyond CONNECTIONS at once,
a connection waits up to QUEUE_WAIT for a free one (at most QUEUE wait),
then is answered 503 with Retry-After: never dropped without an answer.
Every request is checked before any work: its Host must be one of this
server's own names (a page elsewhere, rebinding its DNS name to 127.0.0.1,
must not read the API), only the page's own files are served (read once, at
start, into a fixed table: no path from a request ever reaches the file
system), bodies only up to MAX_BODY bytes (refused by their Content-Length,
never read) and BODIES bytes at once in all, JSON only up to MAX_JSON
bytes with every number a pixel value and pictures only up to imaging's
limits (see bodies.py), and at most PARALLEL predictions at a time, so
memory stays bounded whatever arrives.  The connection layer is in
connections.py.

    GET  /api/model             the model: description, classes, output kind,
                                test accuracy (null, with test_error, without data)
    POST /api/predict           a PNG or JPEG body, or JSON {"pixels": [[...], ...]}:
                                one item of `digitnet predict --json`, plus "input"
    GET  /api/sample?wrong=1    a random test digit the network gets wrong
                                (wrong=0: right): pixels, label, prediction
"""

import contextlib
import json
import os
import random
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

from . import backend, connections, data, imaging
from .bodies import MAGIC, picture, pixels
from .connections import HTTPError

STATIC = Path(__file__).resolve().parent / "static"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}
# A phone photo is 2-5 MB as JPEG; a canvas PNG is a few kB.
MAX_BODY = 4 * 1024 * 1024
# Body bytes held at once by all requests together: a crowd of uploads is
# answered 503 rather than holding CONNECTIONS x MAX_BODY.  Counted as the
# bytes arrive, not as Content-Length claims, so claims alone reserve nothing.
BODIES = 256 * 1024 * 1024
# A JSON body becomes Python floats, ~16 bytes of memory per byte of text:
# 1 MB holds a picture a few hundred pixels a side, far more than a digit needs.
MAX_JSON = 1024 * 1024
# One limit on a picture's size, imaging's (see there), checked here by
# imaging.size_error from the header alone.
MAX_PIXELS = imaging.MAX_PIXELS
# Predictions running at once: the rest wait their turn, so twenty clients
# uploading photos cannot hold twenty decoded photos in memory together.
PARALLEL = max(2, os.cpu_count() or 2)
# Pictures over this many pixels are decoded one at a time: each may take
# ~330 MB on the way (see imaging.MAX_PIXELS), PARALLEL of them too much.
LARGE = 4_000_000
# Seconds a request may take to arrive, in all (not per read), from the
# connection's opening to its body's last byte, headers included: a
# stalled, idle or trickling client frees its thread after it.
TIMEOUT = 20
# Connections served at once.  A thread waiting on a slow client costs
# little memory (bodies are bounded by BODIES), so there are enough for
# 64 trickling and 80 idle clients to leave room for everyone else.
CONNECTIONS = 256
# Connections beyond those wait up to QUEUE_WAIT seconds for a free one, at
# most QUEUE of them; the rest, and those that waited in vain, are answered
# 503 with Retry-After: RETRY_AFTER seconds.
QUEUE = 256
QUEUE_WAIT = 5.0
RETRY_AFTER = 2
# The page may run only its own scripts and styles (nothing from elsewhere),
# and draw pictures it made itself (data: and blob: URLs).
SECURITY = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
                                       "object-src 'none'; base-uri 'none'; "
                                       "frame-ancestors 'none'; form-action 'none'",
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "Cross-Origin-Resource-Policy": "same-origin"}


def static_files(folder=STATIC):
    """{"/name": (content type, bytes)} for the page's files, read once.

    A fixed table, not a folder: a request path is only ever a key, so `..`,
    `%2e%2e`, absolute paths or links cannot reach any other file.
    """
    table = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix in TYPES:
            table["/" + path.name] = (TYPES[path.suffix], path.read_bytes())
    if "/index.html" not in table:
        raise RuntimeError(f"{folder}: the page's files are missing (a broken install?)")
    table["/"] = table["/index.html"]
    return table


class App:
    """The one model the server shows, and what it knows about it.

    The test set's predictions are computed once, on first need (or by
    `start` in the background): the sample button and the accuracy read
    them, and without data the rest of the page still works.
    """

    def __init__(self, net, name="model", dataset="mnist", data_dir=None, seed=None):
        self.net, self.name = net, name
        self.classes = imaging.class_names(net, dataset)
        # The data that matches the model's classes, whatever --dataset says.
        self.dataset = data.dataset_of(self.classes) or dataset
        self.data_dir = data_dir
        self.rng = random.Random(seed)
        self.slots = threading.BoundedSemaphore(PARALLEL)
        self.large = threading.Lock()
        self._lock = threading.Lock()
        self._evaluation = None

    def evaluation(self):
        """(test set, outputs (n, 10), predicted (n,)), or a one-line error string."""
        with self._lock:
            if self._evaluation is None:
                self._evaluation = self._evaluate()
            return self._evaluation

    def start(self, notice=None):
        """Evaluate in the background, so the first visitor need not wait;
        `notice(line)` hears when there is no test set."""
        def run():
            found = self.evaluation()
            if isinstance(found, str) and notice:
                notice(f"digitnet: notice: {found}; the page works without it")
        threading.Thread(target=run, daemon=True).start()

    def _evaluate(self):
        directory = data.place(self.dataset, self.data_dir).path
        try:  # the test split only: serving needs no 50,000 training images
            test = data.read_split(directory, "t10k", data.CLASSES[self.dataset])
        except (data.DataError, OSError) as exc:
            return (f"no {self.dataset} test set ({str(exc).splitlines()[0]}); "
                    f"`digitnet download --dataset {self.dataset}` fetches it")
        outputs = self.net.outputs(test.images).astype(np.float64)
        return test, outputs, np.argmax(outputs, axis=1)

    def describe(self):
        """GET /api/model."""
        net, found = self.net, self.evaluation()
        # the file's name only: where it lives is nobody else's business
        info = {"name": Path(self.name).name, "description": net.describe(), "config": net.config(),
                "dataset": self.dataset, "classes": list(self.classes), "output": net.output,
                "device": backend.describe(net.xp)}
        if isinstance(found, str):
            info.update(test_accuracy=None, test_error=found)
        else:
            test, _, predicted = found
            correct = int(np.count_nonzero(predicted == test.labels))
            info.update(test_accuracy=correct / len(test), test_correct=correct,
                        test_total=len(test))
        return info

    def predict(self, source, size=0):
        """One picture (bytes or a 2-D array) of `size` pixels through
        imaging.predict."""
        with self.slots, (self.large if size > LARGE else contextlib.nullcontext()):
            result = imaging.predict(self.net, [source], self.dataset, with_input=True)[0]
        if "error" in result:
            message, prefix = result["error"], result["path"] + ": "
            raise HTTPError(400, message[len(prefix):] if message.startswith(prefix) else message)
        # float32 values print as 0.10559999942779541: half the answer's bytes
        result["input"] = [[round(v, 4) for v in row] for row in result["input"]]
        return result

    def sample(self, wrong):
        """GET /api/sample: a random test digit the network gets wrong (or right)."""
        found = self.evaluation()
        if isinstance(found, str):
            raise HTTPError(503, found)
        test, outputs, predicted = found
        pool = np.flatnonzero((predicted != test.labels) == wrong)
        if not pool.size:
            raise HTTPError(404, f"the network gets no test digit {'wrong' if wrong else 'right'}")
        i = int(pool[self.rng.randrange(pool.size)])
        k, label = int(predicted[i]), int(test.labels[i])
        pixels = test.images[:, i].reshape(28, 28).astype(np.float64)
        return {"index": i, "wrong": bool(k != label), "label": label,
                "label_name": self.classes[label], "pixels": np.round(pixels, 4).tolist(),
                "prediction": {"digit": k, "label": self.classes[k],
                               "outputs": [round(float(v), 6) for v in outputs[i]]}}


class Handler(BaseHTTPRequestHandler):
    """One connection: route, check, answer; every error a one-line JSON."""

    server_version = "digitnet"
    timeout = TIMEOUT
    error_content_type = "application/json"

    def setup(self):
        super().setup()
        # one deadline for all of a request's reads (see handle_one_request)
        self.reads, self.rfile = connections.deadline_reader(self.connection)

    def handle_one_request(self):
        """A request must arrive whole within TIMEOUT of the connection
        opening, or of the previous answer: an idle or trickling client is
        dropped then, whatever it does between."""
        self.reads.deadline = time.monotonic() + TIMEOUT
        self.held = 0  # body bytes counted against the server's BODIES
        try:
            super().handle_one_request()
        finally:
            self.release()

    def release(self):
        """Give the body's bytes back to the server's BODIES: before the answer
        leaves, so a client that sends its next request on reading it never
        finds them still held."""
        self.server.bodies.give(self.held)
        self.held = 0

    def do_GET(self):
        self.answer(self.get)

    def do_HEAD(self):
        self.answer(self.get, head=True)

    def do_POST(self):
        self.unread = True  # until body() has read it all
        self.answer(self.post)

    def check_host(self):
        """Only this server's own names: a page on another site whose name
        was made to resolve to 127.0.0.1 (DNS rebinding) sends its own."""
        header = self.headers.get("Host")
        if header is None:  # no browser omits it; a rebinding attack needs one
            return
        name = connections.host_name(header)
        if name not in self.server.hosts:
            raise HTTPError(400, f"unknown Host {name[:60]!r}: this server answers only to "
                                 f"{', '.join(sorted(self.server.hosts))}; "
                                 f"start it with --allow-host {name[:60]} to add it")

    def get(self):
        url = urlsplit(self.path)
        app = self.server.app
        if url.path == "/api/model":
            return app.describe()
        if url.path == "/api/sample":
            query = parse_qs(url.query)
            value = query.get("wrong", ["0"])[-1]
            if value not in ("0", "1"):
                raise HTTPError(400, f"wrong must be 0 or 1, got {value[:20]!r}")
            return app.sample(value == "1")
        if url.path == "/api/predict":
            raise HTTPError(405, "POST a picture to /api/predict", {"Allow": "POST"})
        if url.path in self.server.files:
            return self.server.files[url.path]
        raise HTTPError(404, "not found")

    def post(self):
        path = urlsplit(self.path).path
        if path in self.server.files or path in ("/api/model", "/api/sample"):
            raise HTTPError(405, f"{path} does not take POST", {"Allow": "GET, HEAD"})
        if path != "/api/predict":
            raise HTTPError(404, "not found")
        kind = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind not in MAGIC and kind != "application/json":
            raise HTTPError(415, "send image/png, image/jpeg or application/json")
        body = self.body(MAX_JSON if kind == "application/json" else MAX_BODY)
        source, size = pixels(body) if kind == "application/json" else picture(body, kind)
        return self.server.app.predict(source, size)

    def body(self, most):
        """The request body, by its Content-Length; a body over `most` bytes
        is refused by its length alone, before one byte of it is read."""
        if "Transfer-Encoding" in self.headers:
            raise HTTPError(411, "send a Content-Length (chunked bodies are not accepted)")
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            raise HTTPError(411, "a POST needs a Content-Length")
        length = lengths[0].strip()
        if not (length.isascii() and length.isdigit()) or len(set(lengths)) > 1:
            raise HTTPError(400, f"bad Content-Length {', '.join(lengths)[:40]!r}")
        length = int(length)
        if length > most:
            raise HTTPError(413, f"body of {length} bytes is over the {most} byte limit")
        if (self.headers.get("Expect", "").lower() == "100-continue"
                and self.request_version == "HTTP/1.1"):  # curl waits for it on uploads
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.wfile.flush()
        chunks, got = [], 0
        while got < length:  # each read ends by the request's deadline
            chunk = self.rfile.read1(min(65536, length - got))
            if not chunk:
                raise ConnectionError("the client closed before sending its body")
            if not self.server.bodies.take(len(chunk)):
                raise HTTPError(503, "busy: too many uploads at once; try again",
                                {"Retry-After": str(RETRY_AFTER)})
            self.held += len(chunk)
            chunks.append(chunk)
            got += len(chunk)
        self.unread = False
        return b"".join(chunks)

    def answer(self, route, head=False):
        """Run `route` and send what it returns: a dict as JSON, or a file."""
        try:
            self.check_host()
            result = route()
        except HTTPError as exc:
            return self.send(exc.status, {"error": str(exc)}, head, exc.headers)
        except (ConnectionError, TimeoutError, socket.timeout):
            self.close_connection = True
            return None
        except MemoryError:
            return self.send(503, {"error": "out of memory; try a smaller picture"}, head,
                             {"Retry-After": str(RETRY_AFTER)})
        except Exception as exc:  # noqa: BLE001 - a bug must not take the server down
            print(f"digitnet: serve: {self.command} {self.path[:80]}: "
                  f"{type(exc).__name__}: {str(exc)[:200]}", file=sys.stderr, flush=True)
            return self.send(500, {"error": "internal error (see the server's output)"}, head)
        return self.send(200, result, head)

    def send(self, status, result, head=False, headers=None):
        self.release()  # the body is done with, whatever the answer
        if isinstance(result, tuple):
            kind, payload = result
        else:
            kind = "application/json"
            payload = (json.dumps(result, separators=(",", ":")) + "\n").encode()
        try:
            self.connection.settimeout(TIMEOUT)  # the answer gets its own time to leave
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Cache-Control", "no-store")
            for key, value in {**SECURITY, **(headers or {})}.items():
                self.send_header(key, value)
            if getattr(self, "unread", False):
                # never parse the rest of a refused body as the next request
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if not head:
                self.wfile.write(payload)
            self.wfile.flush()
        except (ConnectionError, TimeoutError, socket.timeout):
            self.close_connection = True
        if getattr(self, "unread", False):
            connections.linger(self.connection)

    def send_error(self, code, message=None, explain=None):
        """The standard library's own refusals (a malformed request line, an
        unknown method, headers too long) as one-line JSON too."""
        self.close_connection = True
        self.request_version = "HTTP/1.0"  # garbage parses as HTTP/0.9, which has no status line
        reason = message or HTTPStatus(code).phrase
        self.send(code, {"error": reason.splitlines()[0][:200]}, self.command == "HEAD")

    def version_string(self):  # no Python version for the world to see
        return self.server_version

    def log_message(self, format, *args):
        """Quiet: one line per request would bury the server's own lines."""


BUSY = connections.response(
    503, "Service Unavailable",
    b'{"error":"busy: too many connections at once; try again"}\n',
    [f"Retry-After: {RETRY_AFTER}", "Cache-Control: no-store",
     *(f"{k}: {v}" for k, v in SECURITY.items())])


class Server(connections.LimitedServer):
    """The page's server: CONNECTIONS at once, QUEUE more waiting, the rest
    answered BUSY (see connections.LimitedServer); Host names checked
    against `host` and `allow_hosts`."""

    def __init__(self, app, host, port, allow_hosts=()):
        self.app, self.files = app, static_files()
        self.hosts = connections.host_names(host, allow_hosts)
        self.bodies = connections.Budget(BODIES)
        super().__init__((host, port), Handler, CONNECTIONS, QUEUE, QUEUE_WAIT, BUSY)

    def handle_error(self, request, client_address):
        """A connection that failed outside a handler: one line, not a traceback."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionError, TimeoutError, socket.timeout)):
            print(f"digitnet: serve: {client_address[0]}: {type(exc).__name__}: {exc}",
                  file=sys.stderr, flush=True)

    @property
    def url(self):
        host, port = self.server_address[:2]
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def start(app, host="127.0.0.1", port=0, allow_hosts=()):
    """A Server for `app`, serving from a daemon thread: (server, url).
    For tests and notebooks; `server.shutdown()` stops it."""
    server = Server(app, host, port, allow_hosts)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.url
