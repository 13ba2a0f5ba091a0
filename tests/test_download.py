"""Downloads against a loopback HTTP server that imitates the public mirrors, good and bad.

The server (the standard library's, in a thread, on 127.0.0.1) serves files built at test time from
the shared data under four prefixes: `missing/` answers 404, `corrupt/` serves bytes that are not the
archive, `strict/` answers 403 to urllib's default User-Agent (as wikitext.smerity.com does) and serves
the real file to any other, and no prefix serves the file.
"""

import functools
import hashlib
import http.server
import os
import socket
import threading
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, find_shared_data

from adapt.run import main as adapt_main
from minitransformer.data.download import (
    DownloadError,
    download_trec,
    download_wikitext,
    ensure_wikitext,
    mirrors,
)
from minitransformer.data.wikitext import count_words, wikitext_path
from pretrain.run import main as pretrain_main

SHARED = find_shared_data() or REPO.parent / "shared" / "data"
needs_data = pytest.mark.skipif(
    not (SHARED / "wikitext-2").is_dir() or not (SHARED / "trec").is_dir(),
    reason="shared data with wikitext-2/ and trec/ not found (MINITRANSFORMER_DATA or ../shared/data)",
)


class Mirrors(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        kind, _, rest = self.path.lstrip("/").partition("/")
        if kind == "missing":
            self.send_error(404)
        elif kind == "strict" and self.headers.get("User-Agent", "").startswith("Python-urllib"):
            self.send_error(403)
        elif kind == "drip":  # a slow-drip server: one byte every 0.1 s, never silent long enough to time out
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass
        elif kind == "badlength":  # a broken Content-Length header, then the file
            body = (Path(self.directory) / rest).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", "abc")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
        elif kind == "corrupt":
            body = b"PK\x03\x04 this is not the archive"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.path = "/" + (rest if kind == "strict" else self.path.lstrip("/"))
            super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """Serve `tmp_path/www` on 127.0.0.1 (a free port); yields (folder, base URL)."""
    www = tmp_path / "www"
    www.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Mirrors, directory=www))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def make_wikitext_zip(path, valid_bytes=None) -> str:
    """The official wikitext-2-v1.zip layout (the train split, not in the shared data, is valid's text).

    Returns its sha256: a zip built here is not the published archive, so tests pass this hash through
    the `#sha256=` fragment, as a private mirror would.
    """
    valid = (SHARED / "wikitext-2" / "wiki.valid.tokens").read_bytes()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("wikitext-2/wiki.train.tokens", valid)
        zf.writestr("wikitext-2/wiki.valid.tokens", valid_bytes if valid_bytes is not None else valid)
        zf.writestr("wikitext-2/wiki.test.tokens", (SHARED / "wikitext-2" / "wiki.test.tokens").read_bytes())
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def refused_url() -> str:
    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"


@needs_data
def test_falls_through_bad_mirrors_to_the_good_one(server, tmp_path):
    www, url = server
    digest = make_wikitext_zip(www / "wikitext-2-v1.zip")
    override = f"{url}missing/ {url}corrupt/ {url}strict/#sha256={digest}"
    folder = download_wikitext("wikitext-2", data_dir=tmp_path / "data", base_url=override, progress=False)
    assert folder == tmp_path / "data" / "wikitext-2"
    assert [p.name for p in files_under(tmp_path / "data")] == [
        "wiki.test.tokens",
        "wiki.train.tokens",
        "wiki.valid.tokens",
    ]  # the archive itself is removed after extraction, and nothing else is left
    assert count_words(wikitext_path("wikitext-2", "test", data_dir=tmp_path / "data")) == 245_569


@needs_data
def test_the_strict_mirror_refuses_pythons_default_user_agent(server):
    www, url = server
    make_wikitext_zip(www / "wikitext-2-v1.zip")
    with pytest.raises(urllib.error.HTTPError, match="403"):
        urllib.request.urlopen(f"{url}strict/wikitext-2-v1.zip")


@needs_data
def test_every_failure_is_named_and_nothing_is_left(server, tmp_path):
    www, url = server
    make_wikitext_zip(www / "wikitext-2-v1.zip")
    dead = refused_url()
    override = f"{url}missing/ {url}corrupt/ {url} {dead}"  # the good zip lacks the published hash
    with pytest.raises(DownloadError) as error:
        download_wikitext("wikitext-2", data_dir=tmp_path / "data", base_url=override, progress=False)
    message = str(error.value)
    assert "\n" not in message
    assert f"{url}missing/wikitext-2-v1.zip (HTTP 404" in message
    assert f"{url}corrupt/wikitext-2-v1.zip (sha256 mismatch" in message
    assert f"{url}wikitext-2-v1.zip (sha256 mismatch" in message
    assert f"{dead}wikitext-2-v1.zip (" in message and "refused" in message.lower()
    for split in ("train", "valid", "test"):
        assert str(tmp_path / "data" / "wikitext-2" / f"wiki.{split}.tokens") in message
    assert "MINITRANSFORMER_DATA" in message and "--data-dir" in message
    assert files_under(tmp_path / "data") == []


@needs_data
def test_a_member_with_the_wrong_hash_leaves_nothing(server, tmp_path):
    www, url = server
    digest = make_wikitext_zip(www / "wikitext-2-v1.zip", valid_bytes=b" = Tampered = \n")
    with pytest.raises(DownloadError, match="sha256 mismatch.*wiki.valid.tokens"):
        download_wikitext("wikitext-2", tmp_path / "data", base_url=f"{url}#sha256={digest}", progress=False)
    assert files_under(tmp_path / "data") == []


@needs_data
def test_trec_from_the_second_source_checked_by_hash(server, tmp_path, monkeypatch):
    www, url = server
    for name in ("train_5500.label", "TREC_10.label"):
        (www / name).write_bytes((SHARED / "trec" / name).read_bytes())
    monkeypatch.setenv("MINITRANSFORMER_TREC_URL", f"{url}missing/ {url}strict/")
    folder = download_trec(data_dir=tmp_path / "data", progress=False)
    assert sorted(p.name for p in folder.iterdir()) == ["TREC_10.label", "train_5500.label"]

    (www / "train_1000.label").write_bytes(b"DESC:def What is wrong ?\n")
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        download_trec(data_dir=tmp_path / "data", files=("train_1000.label",), progress=False)
    assert sorted(p.name for p in folder.iterdir()) == ["TREC_10.label", "train_5500.label"]


def test_mirror_lists_and_hash_fragments(monkeypatch):
    monkeypatch.delenv("MINITRANSFORMER_WIKITEXT_URL", raising=False)
    default = mirrors(None, "MINITRANSFORMER_WIKITEXT_URL", ("https://a.org/x", "https://b.org/"))
    assert default == [("https://a.org/x/", None), ("https://b.org/", None)]
    monkeypatch.setenv("MINITRANSFORMER_WIKITEXT_URL", "http://h/p#sha256=ab  http://g")
    assert mirrors(None, "MINITRANSFORMER_WIKITEXT_URL", ()) == [("http://h/p/", "ab"), ("http://g/", None)]
    with pytest.raises(ValueError, match="#md5=x"):
        mirrors("http://h/#md5=x", "MINITRANSFORMER_WIKITEXT_URL", ())
    with pytest.raises(ValueError, match="drop #sha256="):
        download_trec(base_url="http://h/#sha256=ab")


def test_offline_with_partial_data_falls_back_to_what_is_found(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MINITRANSFORMER_WIKITEXT_URL", refused_url())
    data = tmp_path / "data" / "wikitext-2"
    data.mkdir(parents=True)
    for split in ("valid", "test"):  # what this project's offline data holds
        (data / f"wiki.{split}.tokens").write_text(" = A = \n")
    note = ensure_wikitext("wikitext-2", tmp_path / "data", progress=False)
    assert (
        note.startswith("no wikitext-2 train split here") and "training on valid, evaluating on test" in note
    )
    assert "\n" not in note and len(note) < 200  # one short line
    assert "refused" in note.lower()  # with the reason
    (data / "wiki.test.tokens").unlink()  # nothing to fall back on: the error itself
    with pytest.raises(DownloadError):
        ensure_wikitext("wikitext-2", tmp_path / "data", progress=False)
    assert ensure_wikitext(str(data), None) is None  # a folder of one's own is never downloaded


def test_offline_cli_error_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MINITRANSFORMER_DATA", raising=False)
    dead = refused_url()
    monkeypatch.setenv("MINITRANSFORMER_WIKITEXT_URL", dead)
    assert pretrain_main(["--output-dir", str(tmp_path / "run"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: could not download wikitext-2-v1.zip") and err.count("\n") == 1, err
    assert dead in err and str(tmp_path / "home" / ".cache" / "minitransformer" / "wikitext-2") in err
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert files_under(tmp_path / "home") == []

    assert pretrain_main(["--output-dir", str(tmp_path / "run"), "--no-download", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: wikitext-2/wiki.valid.tokens not found") and "Traceback" not in err

    assert pretrain_main(["--data-dir", str(tmp_path / "typo"), "--output-dir", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert (
        err == f"error: --data-dir {tmp_path / 'typo'} is not an existing folder: fix the path or create it\n"
    )

    monkeypatch.setenv("MINITRANSFORMER_TREC_URL", dead)
    assert adapt_main(["--pretrained", "none", "--output-dir", str(tmp_path / "adapt"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: could not download train_5500.label") and err.count("\n") == 1, err
    assert str(tmp_path / "home" / ".cache" / "minitransformer" / "trec" / "TREC_10.label") in err
    assert not (tmp_path / "adapt").exists() and files_under(tmp_path / "home") == []


@needs_data
def test_a_slow_drip_is_abandoned_for_the_next_mirror(server, tmp_path, monkeypatch):
    """Issue 27 item 14: a 1 byte / 5 s server never timed out (reads waited for 1 MB blocks)."""
    import minitransformer.data.download as download

    www, url = server
    (www / "TREC_10.label").write_bytes((SHARED / "trec" / "TREC_10.label").read_bytes())
    monkeypatch.setattr(download, "STALL_S", 0.5)
    monkeypatch.setenv("MINITRANSFORMER_TREC_URL", f"{url}drip/ {url}")
    started = time.monotonic()
    folder = download_trec(data_dir=tmp_path / "data", files=("TREC_10.label",), progress=False)
    assert time.monotonic() - started < 5 and (folder / "TREC_10.label").is_file()
    monkeypatch.setenv("MINITRANSFORMER_TREC_URL", f"{url}drip/")
    with pytest.raises(DownloadError, match=r"drip/TREC_10.label \(stalled: under 16384 bytes in 0.5 s\)"):
        download_trec(data_dir=tmp_path / "other", files=("TREC_10.label",), progress=False)


@needs_data
def test_a_killed_downloads_temp_file_is_removed_by_the_next(server, tmp_path, monkeypatch):
    """Issue 27 item 14: a 0-byte `.train_5500.label.*.tmp` of a killed process stayed for good."""
    www, url = server
    (www / "TREC_10.label").write_bytes((SHARED / "trec" / "TREC_10.label").read_bytes())
    folder = tmp_path / "data" / "trec"
    folder.mkdir(parents=True)
    dead = folder / f".TREC_10.label.{socket.gethostname()}-99999999.abcd.tmp"
    live = folder / f".TREC_10.label.{socket.gethostname()}-{os.getppid()}.efgh.tmp"
    dead.touch(), live.touch()
    monkeypatch.setenv("MINITRANSFORMER_TREC_URL", url)
    download_trec(data_dir=tmp_path / "data", files=("TREC_10.label",), progress=False)
    assert not dead.exists() and live.exists()  # another live process's write is left alone


@needs_data
def test_a_bad_content_length_or_a_wrong_archive_moves_to_the_next_mirror(server, tmp_path, monkeypatch):
    """Issue 27 item 24: `Content-Length: abc` gave "invalid literal for int()" naming no URL; a zip that
    passed a user #sha256 but lacked the members stopped instead of trying the next mirror; a blank
    MINITRANSFORMER_TREC_URL said "tried ."."""
    www, url = server
    (www / "TREC_10.label").write_bytes((SHARED / "trec" / "TREC_10.label").read_bytes())
    monkeypatch.setenv("MINITRANSFORMER_TREC_URL", f"{url}badlength/")
    folder = download_trec(data_dir=tmp_path / "data", files=("TREC_10.label",), progress=False)
    assert (folder / "TREC_10.label").is_file()

    (www / "wrong").mkdir()
    with zipfile.ZipFile(www / "wrong" / "wikitext-2-v1.zip", "w") as zf:
        zf.writestr("other/file.txt", "not wikitext")
    wrong = hashlib.sha256((www / "wrong" / "wikitext-2-v1.zip").read_bytes()).hexdigest()
    good = make_wikitext_zip(www / "wikitext-2-v1.zip")
    override = f"{url}wrong/#sha256={wrong} {url}#sha256={good}"
    download_wikitext("wikitext-2", data_dir=tmp_path / "wiki", base_url=override, progress=False)
    assert len(files_under(tmp_path / "wiki")) == 3

    monkeypatch.setenv("MINITRANSFORMER_TREC_URL", " ")
    with pytest.raises(ValueError, match="MINITRANSFORMER_TREC_URL is set but empty"):
        download_trec(data_dir=tmp_path / "none", progress=False)


def test_a_password_in_a_mirror_url_is_never_printed(tmp_path, monkeypatch, capsys):
    """Issue 34 case 19: `http://user:pass@host/...` came back in the error line, password and all."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MINITRANSFORMER_DATA", raising=False)
    dead = refused_url().replace("http://", "http://alice:s3cret@")
    monkeypatch.setenv("MINITRANSFORMER_WIKITEXT_URL", dead)
    assert pretrain_main(["--output-dir", str(tmp_path / "run"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: could not download") and "http://***@127.0.0.1:" in err
    assert "s3cret" not in err and "alice" not in err
    with pytest.raises(DownloadError) as error:
        download_wikitext("wikitext-2", data_dir=tmp_path / "data", base_url=dead, progress=False)
    assert "s3cret" not in str(error.value) and not any("s3cret" in r for r in error.value.reasons)
