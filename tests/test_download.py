"""The downloader against real HTTP servers on 127.0.0.1 serving the shared files."""

import functools
import http.server
import io
import os
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest

from digitnet import cli, download
from digitnet.download import DownloadError

SMALL = "t10k-labels-idx1-ubyte.gz"


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_request(self, code="-", size="-"):
        self.server.requested.append(self.path)

    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    """serve(folder) -> base URL of an HTTP server on 127.0.0.1 for that folder.

    serve.requested lists the paths every server was asked for.
    """
    servers = []

    def start(folder):
        handler = functools.partial(Quiet, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.requested = start.requested
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    start.requested = []
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def corrupt(tmp_path, mnist_dir):
    """A mirror whose mnist files are the real ones with bytes flipped or cut."""
    folder = tmp_path / "corrupt" / "mnist"
    folder.mkdir(parents=True)
    for name in download.FILES:
        blob = bytearray((mnist_dir / "mnist" / name).read_bytes())
        blob[len(blob) // 2] ^= 0xFF
        (folder / name).write_bytes(bytes(blob[: len(blob) - 7]))
    return folder.parent


def test_good_mirror(serve, mnist_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITNET_MIRRORS", serve(mnist_dir) + "{dataset}/")
    before = signal.getsignal(signal.SIGTERM)
    path = download.fetch("mnist", SMALL, tmp_path / "cache", progress=False)
    assert path == tmp_path / "cache" / SMALL
    assert download.sha256(path) == download.SHA256["mnist"][SMALL]
    assert signal.getsignal(signal.SIGTERM) == before  # the SIGTERM handler is handed back


def test_corrupt_first_mirror_then_a_good_one(serve, mnist_dir, corrupt, tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITNET_MIRRORS", f"{serve(corrupt)}{{dataset}}/ {serve(mnist_dir)}{{dataset}}/")
    cache = tmp_path / "cache"
    download.ensure("mnist", cache, progress=False)
    assert all(download.verified("mnist", cache).values())
    assert sorted(p.name for p in cache.iterdir()) == sorted(download.FILES)  # no temp files left


def test_all_mirrors_bad(serve, corrupt, tmp_path, monkeypatch):
    dead = serve(tmp_path / "empty")  # 404 for everything
    monkeypatch.setenv("DIGITNET_MIRRORS", f"{serve(corrupt)}{{dataset}}/ {dead}")
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError) as err:
        download.fetch("mnist", SMALL, cache, progress=False)
    message = str(err.value)
    assert "\n" not in message and "DIGITNET_DATA" in message and str(cache.resolve()) in message
    assert "hash" in message.lower() and "404" in message
    assert not cache.exists() or list(cache.iterdir()) == []  # nothing bad stays in the cache


def test_a_corrupt_cached_file_is_replaced(serve, mnist_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITNET_MIRRORS", serve(mnist_dir) + "{dataset}/")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / SMALL).write_bytes(b"not the labels")
    download.fetch("mnist", SMALL, cache, progress=False)
    assert download.verified("mnist", cache)[SMALL] is True


def test_no_network_and_no_files_says_what_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DIGITNET_MIRRORS", "http://127.0.0.1:9/")  # discard port: refused
    code = cli.main(["train", "--epochs", "1", "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert "could not download" in err and "DIGITNET_DATA" in err


def test_download_command_fetches_everything(serve, mnist_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DIGITNET_MIRRORS", serve(mnist_dir) + "{dataset}/")
    assert cli.main(["download", "--data-dir", str(tmp_path)]) == 0
    assert "mnist: 4 files verified" in capsys.readouterr().out
    assert all(download.verified("mnist", tmp_path / "mnist").values())


def test_mirror_list_default_and_override(monkeypatch):
    monkeypatch.delenv("DIGITNET_MIRRORS", raising=False)
    assert download.mirrors("mnist") == download.MIRRORS["mnist"]
    assert "yann.lecun.com" in download.mirrors("mnist")[-1]  # the unreliable original last
    monkeypatch.setenv("DIGITNET_MIRRORS", "http://a/{dataset}/ http://b/")
    assert download.mirrors("fashion-mnist") == ["http://a/fashion-mnist/", "http://b/"]


def copies(mnist_dir, folder):
    """Writable copies of the four real mnist files in `folder`."""
    folder.mkdir(parents=True)
    for name in download.FILES:
        (folder / name).write_bytes((mnist_dir / "mnist" / name).read_bytes())
    return folder


def flip_one_byte(path):
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    path.write_bytes(bytes(blob))


def temp_files(folder):
    """pooch's temporary files (tmp + 8 characters) in `folder`."""
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if download.TEMP_NAME.fullmatch(p.name)]


class Trickle(http.server.BaseHTTPRequestHandler):
    """Promises a megabyte and sends 64 bytes every 20 ms: a download that is
    still running, with a half-written temporary file, when the test signals."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(1 << 20))
        self.end_headers()
        while not self.server.stopping.is_set():
            try:
                self.wfile.write(b"\0" * 64)
                self.wfile.flush()
            except OSError:  # the client went away
                return
            time.sleep(0.02)

    def log_message(self, *args):
        pass


@pytest.fixture
def trickle():
    """Base URL of a deliberately slow HTTP server on 127.0.0.1."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    server.daemon_threads = True
    server.stopping = threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.stopping.set()
    server.shutdown()
    server.server_close()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM cannot be caught on Windows")
def test_sigterm_mid_download_leaves_no_temporary_file(trickle, tmp_path):
    cache = tmp_path / "cache"
    script = ("import sys; from digitnet import download; "
              "download.ensure('mnist', sys.argv[1], progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", script, str(cache)],
                            env=dict(os.environ, DIGITNET_MIRRORS=trickle),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not any(p.stat().st_size for p in temp_files(cache)):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the download never started"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert proc.returncode != 0
    assert list(cache.iterdir()) == []  # no partial file, no temporary file


def test_stale_temporary_files_are_swept_and_nothing_else(mnist_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITNET_MIRRORS", "http://127.0.0.1:9/")  # nothing may be fetched
    cache = copies(mnist_dir, tmp_path / "cache")
    # not pooch's names (a user's own files, some starting like one), or too young
    keep = ["tmp_notes.txt", "tmpABCDEFGH", "tmpnotes_2024.txt", "tmp12345678.bak", "tmpfresh_01"]
    for name in ["tmpk3x_9q0z", "tmp12345678", *keep]:
        (cache / name).write_bytes(b"half a download")
    long_ago = time.time() - 2 * download.STALE_SECONDS
    for path in cache.iterdir():
        if path.name != "tmpfresh_01":  # the dataset files are old too: never swept
            os.utime(path, (long_ago, long_ago))
    download.ensure("mnist", cache, progress=False)
    assert sorted(p.name for p in cache.iterdir()) == sorted([*download.FILES, *keep])


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640)], ids=["022", "027"])
def test_downloaded_files_follow_the_umask(serve, mnist_dir, tmp_path, monkeypatch, mask, mode):
    monkeypatch.setenv("DIGITNET_MIRRORS", serve(mnist_dir) + "{dataset}/")
    old = os.umask(mask)
    try:
        path = download.fetch("mnist", SMALL, tmp_path / "cache", progress=False)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_only_on_a_terminal(serve, mnist_dir, tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("DIGITNET_MIRRORS", serve(mnist_dir) + "{dataset}/")
    download.fetch("mnist", SMALL, tmp_path / "log", progress=True)  # stderr is a capture
    assert capfd.readouterr().err == ""
    for progress, drawn in ((True, True), (False, False)):
        terminal = Terminal()
        monkeypatch.setattr(sys, "stderr", terminal)
        download.fetch("mnist", SMALL, tmp_path / str(progress), progress=progress)
        assert ("100%" in terminal.getvalue()) is drawn


def test_ensure_replaces_a_bad_file_only_when_asked(serve, mnist_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITNET_MIRRORS", serve(mnist_dir) + "{dataset}/")
    cache = copies(mnist_dir, tmp_path / "cache")
    flip_one_byte(cache / SMALL)
    inodes = {name: (cache / name).stat().st_ino for name in download.FILES}

    def no_hashing(path):
        raise AssertionError(f"loading hashed {path}")
    with monkeypatch.context() as m:
        m.setattr(download, "sha256", no_hashing)
        download.ensure("mnist", cache, progress=False)  # what loading data does
    assert download.verified("mnist", cache)[SMALL] is False and serve.requested == []

    download.ensure("mnist", cache, progress=False, replace_bad=True)
    assert all(download.verified("mnist", cache).values())
    assert serve.requested == [f"/mnist/{SMALL}"]  # only the bad one was fetched
    assert {n: (cache / n).stat().st_ino != inodes[n] for n in download.FILES} == {
        n: n == SMALL for n in download.FILES}  # renamed over; the good ones untouched
    assert sorted(p.name for p in cache.iterdir()) == sorted(download.FILES)


def test_a_bad_file_stays_when_no_mirror_has_a_good_copy(serve, mnist_dir, corrupt, tmp_path,
                                                         monkeypatch):
    monkeypatch.setenv("DIGITNET_MIRRORS", f"{serve(corrupt)}{{dataset}}/ {serve(tmp_path / 'empty')}")
    cache = copies(mnist_dir, tmp_path / "cache")
    flip_one_byte(cache / SMALL)
    bad = (cache / SMALL).read_bytes()
    with pytest.raises(DownloadError) as err:
        download.ensure("mnist", cache, progress=False, replace_bad=True)
    message = str(err.value)
    assert "\n" not in message and str(cache / SMALL) in message and "left as it is" in message
    assert (cache / SMALL).read_bytes() == bad
    assert sorted(p.name for p in cache.iterdir()) == sorted(download.FILES)


def test_verified_hashes_every_byte(mnist_dir, tmp_path):
    cache = copies(mnist_dir, tmp_path / "cache")
    flip_one_byte(cache / SMALL)  # same size, one bit different
    (cache / "train-labels-idx1-ubyte.gz").unlink()
    assert download.verified("mnist", cache) == {
        "train-images-idx3-ubyte.gz": True,
        "train-labels-idx1-ubyte.gz": None,
        "t10k-images-idx3-ubyte.gz": True,
        SMALL: False,
    }
