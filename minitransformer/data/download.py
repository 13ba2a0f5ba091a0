"""Fetch WikiText and TREC from their canonical public sources, verified and written atomically.

Every file is streamed to a temporary name and renamed only once complete and verified, so an
interrupted or corrupted download never looks finished. Without network access the error says which
files are needed and where to put them by hand.

Verification: the TREC files have known sha256 (from `../shared/data/README.md`). For WikiText the
hashes of the official zips could not be checked offline when this was written, so the archives are
not hash-checked; the extracted files are, where their sha256 is known (`WikiTextSpec.sha256`:
WikiText-2 valid and test), and every expected member must be present.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import BinaryIO

from minitransformer.data.paths import DATA_ENV, default_cache_dir
from minitransformer.data.wikitext import SPLITS, WIKITEXT
from minitransformer.io import atomic_path

WIKITEXT_URL = "https://s3.amazonaws.com/research.metamind.io/wikitext/"
WIKITEXT_URL_ENV = "MINITRANSFORMER_WIKITEXT_URL"
TREC_URL = "https://cogcomp.seas.upenn.edu/Data/QA/QC/"
TREC_URL_ENV = "MINITRANSFORMER_TREC_URL"
TREC_FILES = ("train_5500.label", "TREC_10.label")
TREC_SHA256 = {
    "TREC_10.label": "033f22c028c2bbba9ca682f68ffe204dc1aa6e1cf35dd6207f2d4ca67f0d0e8e",
    "train_1000.label": "551a964ed7a1e13e0d772475c119ac6d1e5fc6e5507caadf86400359458194ab",
    "train_2000.label": "b9de0bead8a41d7841279d82f904f278215844a0d58eea97e45a85a7bcb94a0f",
    "train_3000.label": "d56611d95f4cc46894560df27e8001b9d1ea091fc96cfc42cf9662df9f5a6279",
    "train_4000.label": "da42b7b72617938f9332d4a1d55c91e73bb50e5b5394a56d88f627561eb89b06",
    "train_5500.label": "f96f211c9d180d3fa25b1841febd9be6f0a6fc65e5b6a99344b5946163b35009",
}


class DownloadError(RuntimeError):
    """A download failed (network, HTTP or checksum); no partial file was left behind."""


def _stream(source: BinaryIO, out: BinaryIO | None = None) -> str:
    """Read `source` to the end (copying it to `out` if given) and return its sha256."""
    digest = hashlib.sha256()
    for block in iter(lambda: source.read(1 << 20), b""):
        if out is not None:
            out.write(block)
        digest.update(block)
    return digest.hexdigest()


def _verify(actual: str, expected: str | None, what: str) -> None:
    if expected is not None and actual != expected:
        raise DownloadError(f"sha256 mismatch for {what}: got {actual}, expected {expected}")


def _copy_hashed(source: BinaryIO, dest: Path, sha256: str | None, what: str) -> None:
    """Stream `source` into `dest` atomically; raise DownloadError (leaving no file) on a wrong sha256."""
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as out:
            actual = _stream(source, out)
        _verify(actual, sha256, what)


def download_file(
    url: str, dest: str | Path, sha256: str | None = None, needed: list[Path] | None = None
) -> Path:
    """Download `url` to `dest` (atomic, sha256-checked when given).

    On a network failure the error names `needed` (default: `dest`), the files to put in place by hand.
    """
    dest = Path(dest)
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            _copy_hashed(response, dest, sha256, url)
    except (urllib.error.URLError, OSError) as error:
        files = ", ".join(map(str, needed or [dest]))
        reason = error if isinstance(error, urllib.error.HTTPError) else getattr(error, "reason", error)
        raise DownloadError(
            f"could not download {url} ({reason}). Without network access, put these files in place "
            f"by hand: {files} (or pass --data-dir / set {DATA_ENV} to a folder that holds them)"
        ) from error
    return dest


def _base_url(base_url: str | None, env: str, default: str) -> str:
    return (base_url or os.environ.get(env) or default).rstrip("/") + "/"


def download_wikitext(
    dataset: str = "wikitext-2", data_dir: str | Path | None = None, base_url: str | None = None
) -> Path:
    """Fetch the official `<dataset>-v1.zip` and extract its three splits to `data_dir/<folder>/`.

    `data_dir` defaults to `~/.cache/minitransformer`; `base_url` to `$MINITRANSFORMER_WIKITEXT_URL`,
    else the official S3 location. Returns the dataset folder; files already there are kept.
    """
    if dataset not in WIKITEXT:
        raise ValueError(f"unknown WikiText dataset {dataset!r}: choose one of {sorted(WIKITEXT)}")
    spec = WIKITEXT[dataset]
    root = Path(data_dir) if data_dir is not None else default_cache_dir()
    targets = {split: root / spec.relative(split) for split in SPLITS}
    if all(path.is_file() for path in targets.values()):
        return root / spec.folder
    archive = root / spec.archive
    url = _base_url(base_url, WIKITEXT_URL_ENV, WIKITEXT_URL) + spec.archive
    download_file(url, archive, needed=list(targets.values()))
    try:
        with zipfile.ZipFile(archive) as zf:
            names = set(zf.namelist())
            missing = [spec.relative(split) for split in SPLITS if spec.relative(split) not in names]
            if missing:
                raise DownloadError(f"{url} is not the expected archive: it lacks {missing}")
            for split in SPLITS:  # check every known hash before writing anything
                with zf.open(spec.relative(split)) as member:
                    _verify(_stream(member), spec.sha256.get(split), f"{url}:{spec.relative(split)}")
            for split, path in targets.items():
                with zf.open(spec.relative(split)) as member:
                    _copy_hashed(member, path, spec.sha256.get(split), f"{url}:{spec.relative(split)}")
    except zipfile.BadZipFile as error:
        raise DownloadError(f"{url} is not a valid zip archive ({error})") from error
    finally:
        archive.unlink(missing_ok=True)
    return root / spec.folder


def download_trec(
    data_dir: str | Path | None = None, base_url: str | None = None, files: tuple[str, ...] = TREC_FILES
) -> Path:
    """Fetch the TREC files (sha256-checked) into `data_dir/trec/` (default `~/.cache/minitransformer`).

    `base_url` defaults to `$MINITRANSFORMER_TREC_URL`, else the UIUC Cognitive Computation Group page.
    """
    unknown = [name for name in files if name not in TREC_SHA256]
    if unknown:
        raise ValueError(f"unknown TREC files {unknown}: choose from {sorted(TREC_SHA256)}")
    folder = (Path(data_dir) if data_dir is not None else default_cache_dir()) / "trec"
    base = _base_url(base_url, TREC_URL_ENV, TREC_URL)
    needed = [folder / name for name in files]
    for name, path in zip(files, needed):
        if not path.is_file():
            download_file(base + name, path, TREC_SHA256[name], needed=needed)
    return folder
