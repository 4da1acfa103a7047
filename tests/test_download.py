"""The downloader against real HTTP servers on 127.0.0.1 serving the shared files."""

import functools
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from digitnet import cli, download
from digitnet.download import DownloadError

SMALL = "t10k-labels-idx1-ubyte.gz"


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    """serve(folder) -> base URL of an HTTP server on 127.0.0.1 for that folder."""
    servers = []

    def start(folder):
        handler = functools.partial(Quiet, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

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
    path = download.fetch("mnist", SMALL, tmp_path / "cache", progress=False)
    assert path == tmp_path / "cache" / SMALL
    assert download.sha256(path) == download.SHA256["mnist"][SMALL]


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
