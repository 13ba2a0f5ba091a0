"""Downloader against a loopback HTTP server serving files built from the shared data."""

import functools
import http.server
import os
import socket
import threading
import zipfile
from pathlib import Path

import pytest

from minitransformer.data.download import DownloadError, download_trec, download_wikitext
from minitransformer.data.wikitext import count_words, wikitext_path

SHARED = Path(os.environ.get("MINITRANSFORMER_DATA", "/nonexistent"))
needs_data = pytest.mark.skipif(
    not (SHARED / "wikitext-2").is_dir() or not (SHARED / "trec").is_dir(),
    reason="MINITRANSFORMER_DATA with wikitext-2/ and trec/ not set",
)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """Serve `tmp_path/www` on 127.0.0.1 (a free port); yields (folder, base URL)."""
    www = tmp_path / "www"
    www.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=www))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def make_wikitext_zip(path, valid_bytes=None):
    """The official wikitext-2-v1.zip layout; the train split (not in the shared data) is valid's text."""
    valid = (SHARED / "wikitext-2" / "wiki.valid.tokens").read_bytes()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("wikitext-2/wiki.train.tokens", valid)
        zf.writestr("wikitext-2/wiki.valid.tokens", valid_bytes if valid_bytes is not None else valid)
        zf.writestr("wikitext-2/wiki.test.tokens", (SHARED / "wikitext-2" / "wiki.test.tokens").read_bytes())


@needs_data
def test_wikitext_download_extracts_verified_splits(server, tmp_path):
    www, url = server
    make_wikitext_zip(www / "wikitext-2-v1.zip")
    folder = download_wikitext("wikitext-2", data_dir=tmp_path / "data", base_url=url)
    assert folder == tmp_path / "data" / "wikitext-2"
    assert sorted(p.name for p in (tmp_path / "data").rglob("*")) == [
        "wiki.test.tokens",
        "wiki.train.tokens",
        "wiki.valid.tokens",
        "wikitext-2",
    ]  # the archive itself is removed after extraction
    assert count_words(wikitext_path("wikitext-2", "test", data_dir=tmp_path / "data")) == 245_569


@needs_data
def test_base_url_from_environment(server, tmp_path, monkeypatch):
    www, url = server
    make_wikitext_zip(www / "wikitext-2-v1.zip")
    monkeypatch.setenv("MINITRANSFORMER_WIKITEXT_URL", url)
    assert (download_wikitext("wikitext-2", data_dir=tmp_path / "data") / "wiki.valid.tokens").is_file()


@needs_data
def test_wikitext_checksum_failure_leaves_nothing(server, tmp_path):
    www, url = server
    make_wikitext_zip(www / "wikitext-2-v1.zip", valid_bytes=b" = Tampered = \n")
    with pytest.raises(DownloadError, match="sha256 mismatch.*wiki.valid.tokens"):
        download_wikitext("wikitext-2", data_dir=tmp_path / "data", base_url=url)
    assert [p for p in (tmp_path / "data").rglob("*") if p.is_file()] == []


@needs_data
def test_trec_download_and_checksum(server, tmp_path):
    www, url = server
    for name in ("train_5500.label", "TREC_10.label"):
        (www / name).write_bytes((SHARED / "trec" / name).read_bytes())
    folder = download_trec(data_dir=tmp_path / "data", base_url=url)
    assert sorted(p.name for p in folder.iterdir()) == ["TREC_10.label", "train_5500.label"]

    (www / "train_1000.label").write_bytes(b"DESC:def What is wrong ?\n")
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        download_trec(data_dir=tmp_path / "data", base_url=url, files=("train_1000.label",))
    assert sorted(p.name for p in folder.iterdir()) == ["TREC_10.label", "train_5500.label"]


def test_http_error_is_a_download_error(server, tmp_path):
    _, url = server
    with pytest.raises(DownloadError, match="404"):
        download_wikitext("wikitext-103", data_dir=tmp_path, base_url=url)


def test_offline_message_names_files_and_where(tmp_path):
    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError) as error:
        download_wikitext("wikitext-2", data_dir=tmp_path, base_url=f"http://127.0.0.1:{port}")
    message = str(error.value)
    assert "refused" in message.lower() and "Without network access" in message
    for split in ("train", "valid", "test"):
        assert str(tmp_path / "wikitext-2" / f"wiki.{split}.tokens") in message
    assert "MINITRANSFORMER_DATA" in message
    assert list(tmp_path.iterdir()) == []
