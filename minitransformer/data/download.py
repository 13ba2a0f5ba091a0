"""Fetch WikiText and TREC from public sources, trying mirrors in order, sha256-verified, written atomically.

Every file is streamed to a temporary name and renamed only once complete and verified, so an
interrupted or corrupted download never looks finished. A source that fails in any way (no network,
HTTP error, wrong bytes) moves on to the next one; when all fail, one error names every URL tried,
why each failed, and where to put the files by hand.

Sources (the README lists them with their hashes):
- WikiText: the dataset author's mirror `wikitext.smerity.com` (it answers 403 to Python's default
  User-Agent, so every request sends `USER_AGENT`), then the Internet Archive's capture of the original
  S3 location (dead since 2024), and for wikitext-103-raw a Hugging Face Hub dataset repo serving the
  same zip. Archives are checked against their published sha256, members against known hashes.
- TREC: the UIUC Cognitive Computation Group page, then the Internet Archive's capture of it; every
  file is checked against the sha256 of the files in `../shared/data/trec`.

`$MINITRANSFORMER_WIKITEXT_URL` / `$MINITRANSFORMER_TREC_URL` replace the list (private mirrors, tests):
one or more base URLs separated by spaces; a WikiText base URL may end in `#sha256=HEX`, the hash its
archive must have (a private build of the zip), else the published one is required.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from tqdm.auto import tqdm

from minitransformer import __version__
from minitransformer.data.paths import DATA_ENV, default_cache_dir, find_data_dir, locate
from minitransformer.data.wikitext import SPLITS, WIKITEXT
from minitransformer.runs.errors import DownloadError
from minitransformer.runs.io import atomic_path, pid_alive

__all__ = ["DownloadError", "download_trec", "download_wikitext", "ensure_trec", "ensure_wikitext"]

USER_AGENT = f"minitransformer/{__version__}"
TIMEOUT_S = 60  # per socket operation
STALL_S = 60  # a download that sends under STALL_BYTES in this long is abandoned for the next source
STALL_BYTES = 16 * 1024
READ_BYTES = 64 * 1024
# The Internet Archive serves a capture's original bytes under `<year>id_/<url>` (the capture nearest
# to that year); the original S3 bucket of WikiText worked until early 2024.
WAYBACK = "https://web.archive.org/web/{year}id_/"
WIKITEXT_MIRRORS = (
    "https://wikitext.smerity.com/",
    WAYBACK.format(year=2023) + "https://s3.amazonaws.com/research.metamind.io/wikitext/",
)
# A Hub dataset repo holding the identical zip; URL pattern `https://huggingface.co/datasets/<repo>/
# resolve/<revision>/<file>` as `huggingface_hub.hf_hub_url(..., repo_type="dataset")` builds it.
WIKITEXT_EXTRA_MIRRORS = {
    "wikitext-103-raw-v1.zip": (
        "https://huggingface.co/datasets/mattdangerw/wikitext-103-raw/resolve/main/",
    ),
}
WIKITEXT_URL_ENV = "MINITRANSFORMER_WIKITEXT_URL"
TREC_URL = "https://cogcomp.seas.upenn.edu/Data/QA/QC/"
TREC_MIRRORS = (TREC_URL, WAYBACK.format(year=2024) + TREC_URL)
TREC_URL_ENV = "MINITRANSFORMER_TREC_URL"
TREC_FILES = ("train_5500.label", "TREC_10.label")
TREC_SHA256 = {  # sha256 of the files in ../shared/data/trec (its README)
    "TREC_10.label": "033f22c028c2bbba9ca682f68ffe204dc1aa6e1cf35dd6207f2d4ca67f0d0e8e",
    "train_1000.label": "551a964ed7a1e13e0d772475c119ac6d1e5fc6e5507caadf86400359458194ab",
    "train_2000.label": "b9de0bead8a41d7841279d82f904f278215844a0d58eea97e45a85a7bcb94a0f",
    "train_3000.label": "d56611d95f4cc46894560df27e8001b9d1ea091fc96cfc42cf9662df9f5a6279",
    "train_4000.label": "da42b7b72617938f9332d4a1d55c91e73bb50e5b5394a56d88f627561eb89b06",
    "train_5500.label": "f96f211c9d180d3fa25b1841febd9be6f0a6fc65e5b6a99344b5946163b35009",
}

Source = tuple[str, str | None]  # (URL, expected sha256 or None)


# -- one file from the first source that works ----------------------------------------------------


def _stream(
    source: BinaryIO,
    out: BinaryIO | None = None,
    on_block: Callable[[int], object] | None = None,
    stall_s: float | None = None,
) -> str:
    """Read `source` to the end (copying it to `out` if given, telling `on_block` each block's size); its sha256.

    Reads are small and return what has arrived (`read1`), so the progress bar moves on a slow link. With
    `stall_s`, a source that sends under STALL_BYTES in any `stall_s` seconds (a slow drip that never trips
    the socket timeout) raises DownloadError."""
    digest = hashlib.sha256()
    read = getattr(source, "read1", None) or source.read
    window_start, window_bytes = time.monotonic(), 0
    while block := read(READ_BYTES):
        if out is not None:
            out.write(block)
        digest.update(block)
        if on_block is not None:
            on_block(len(block))
        if stall_s is not None:
            window_bytes += len(block)
            if window_bytes >= STALL_BYTES:
                window_start, window_bytes = time.monotonic(), 0
            elif time.monotonic() - window_start > stall_s:
                raise DownloadError(f"stalled: under {STALL_BYTES} bytes in {stall_s:g} s")
    return digest.hexdigest()


def _verify(actual: str, expected: str | None, what: str) -> None:
    if expected is not None and actual != expected:
        raise DownloadError(f"sha256 mismatch for {what}: got {actual}, expected {expected}")


def _copy_hashed(
    source: BinaryIO,
    dest: Path,
    sha256: str | None,
    what: str,
    on_block: Callable[[int], object] | None = None,
    stall_s: float | None = None,
) -> None:
    """Stream `source` into `dest` atomically; raise DownloadError (leaving no file) on a wrong sha256."""
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as out:
            actual = _stream(source, out, on_block, stall_s)
        _verify(actual, sha256, what)


def _fetch_one(url: str, dest: Path, sha256: str | None, progress: bool, name: str) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        length = (response.headers.get("Content-Length") or "").strip()
        size = int(length) if length.isdigit() and int(length) > 0 else None  # "abc": size unknown
        with tqdm(
            total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=name, disable=not progress
        ) as bar:
            _copy_hashed(response, dest, sha256, "the download", bar.update, STALL_S)


def _reason(error: Exception) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return str(error) or type(error).__name__


def fetch(
    sources: Sequence[Source],
    dest: str | Path,
    needed: list[Path] | None = None,
    progress: bool = True,
    name: str | None = None,
    check: Callable[[str], object] | None = None,
) -> str:
    """Download the first of `sources` that answers with the expected bytes to `dest`; return its URL.

    `name` (default: `dest`'s) is what the progress bar and the error call the file. `check(url)`, run
    after each download, may raise DownloadError (e.g. an archive without the expected members): the
    next source is tried.

    When every source fails, the DownloadError names each URL and why, and `needed` (default: `dest`),
    the files to put in place by hand.
    """
    dest = Path(dest)
    failures = []  # (url, why it failed)
    for url, sha256 in sources:
        try:
            _fetch_one(url, dest, sha256, progress, name or dest.name)
            if check is not None:
                check(url)
            return url
        except (OSError, http.client.HTTPException, DownloadError, ValueError) as error:  # URLError: OSError
            failures.append((url, _reason(error)))
    tried = "; ".join(f"{url} ({why})" for url, why in failures)
    files = ", ".join(map(str, needed or [dest]))
    raise DownloadError(
        f"could not download {name or dest.name}: tried {tried}. Without network access, put these "
        f"files in place by hand: {files} (or pass --data-dir / set {DATA_ENV} to a folder that holds them)",
        tuple(dict.fromkeys(why for _, why in failures)),  # each distinct reason once
    )


def mirrors(override: str | None, env: str, default: Sequence[str]) -> list[Source]:
    """Base URLs (each ending in /) with their `#sha256=` hash if any: `override`, else `$env`, else `default`."""
    given = override if override is not None else os.environ.get(env)
    if given is not None and not given.strip():
        raise ValueError(
            f"{env} is set but empty ({given!r}): give one or more base URLs separated by spaces, or unset it"
        )
    text = given or " ".join(default)
    bases = []
    for entry in text.split():
        url, _, fragment = entry.partition("#")
        if fragment and not fragment.startswith("sha256="):
            raise ValueError(
                f"{env}: {entry!r} has fragment #{fragment}; the only one understood is #sha256=HEX"
            )
        bases.append((url.rstrip("/") + "/", fragment.removeprefix("sha256=") or None))
    return bases


# -- the datasets ---------------------------------------------------------------------------------


def download_wikitext(
    dataset: str = "wikitext-2",
    data_dir: str | Path | None = None,
    base_url: str | None = None,
    progress: bool = True,
) -> Path:
    """Fetch `<dataset>-v1.zip` and extract its three splits to `data_dir/<folder>/`.

    `data_dir` defaults to `~/.cache/minitransformer`; `base_url` (one or more, see the module doc) to
    `$MINITRANSFORMER_WIKITEXT_URL`, else the public mirrors. Returns the dataset folder; files already
    there are kept.
    """
    if dataset not in WIKITEXT:
        raise ValueError(f"unknown WikiText dataset {dataset!r}: choose one of {sorted(WIKITEXT)}")
    spec = WIKITEXT[dataset]
    root = Path(data_dir) if data_dir is not None else default_cache_dir()
    targets = {split: root / spec.relative(split) for split in SPLITS}
    if all(path.is_file() for path in targets.values()):
        return root / spec.folder
    default = WIKITEXT_MIRRORS + WIKITEXT_EXTRA_MIRRORS.get(spec.archive, ())
    sources = [
        (base + spec.archive, sha256 or spec.archive_sha256)
        for base, sha256 in mirrors(base_url, WIKITEXT_URL_ENV, default)
    ]
    archive = root / f".{spec.archive}.{os.getpid()}"  # per process: torchrun's ranks may all download
    for left in root.glob(f".{spec.archive}.*"):  # a killed process's archive
        pid = left.name.rsplit(".", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            left.unlink(missing_ok=True)

    def extract(url: str) -> None:
        """Check the archive's members, then write them; a wrong archive is a DownloadError (next source)."""
        try:
            with zipfile.ZipFile(archive) as zf:
                names = set(zf.namelist())
                missing = [spec.relative(split) for split in SPLITS if spec.relative(split) not in names]
                if missing:
                    raise DownloadError(f"not the expected archive: it lacks {missing}")
                for split in SPLITS:  # check every known hash before writing anything
                    with zf.open(spec.relative(split)) as member:
                        _verify(_stream(member), spec.sha256.get(split), f"{url}:{spec.relative(split)}")
                for split, path in targets.items():
                    with zf.open(spec.relative(split)) as member:
                        _copy_hashed(member, path, spec.sha256.get(split), f"{url}:{spec.relative(split)}")
        except zipfile.BadZipFile as error:
            raise DownloadError(f"not a valid zip archive ({error})") from error
        finally:
            archive.unlink(missing_ok=True)

    fetch(sources, archive, list(targets.values()), progress, name=spec.archive, check=extract)
    return root / spec.folder


def download_trec(
    data_dir: str | Path | None = None,
    base_url: str | None = None,
    files: tuple[str, ...] = TREC_FILES,
    progress: bool = True,
) -> Path:
    """Fetch the TREC files (sha256-checked) into `data_dir/trec/` (default `~/.cache/minitransformer`).

    `base_url` (one or more) defaults to `$MINITRANSFORMER_TREC_URL`, else the public sources.
    """
    unknown = [name for name in files if name not in TREC_SHA256]
    if unknown:
        raise ValueError(f"unknown TREC files {unknown}: choose from {sorted(TREC_SHA256)}")
    bases = mirrors(base_url, TREC_URL_ENV, TREC_MIRRORS)
    if any(sha256 for _, sha256 in bases):
        raise ValueError(f"{TREC_URL_ENV}: TREC files are checked against their known sha256; drop #sha256=")
    folder = (Path(data_dir) if data_dir is not None else default_cache_dir()) / "trec"
    needed = [folder / name for name in files]
    for name, path in zip(files, needed):
        if not path.is_file():
            fetch([(base + name, TREC_SHA256[name]) for base, _ in bases], path, needed, progress)
    return folder


# -- what the command lines call: download only what is not found ---------------------------------


def _found(relative: str, data_dir: str | Path | None) -> bool:
    find_data_dir(data_dir)  # an explicit data_dir that does not exist is an error, not "not found"
    try:
        locate(relative, data_dir)
        return True
    except FileNotFoundError:
        return False


def ensure_wikitext(dataset: str, data_dir: str | Path | None = None, progress: bool = True) -> str | None:
    """Download a WikiText `dataset` (a name in WIKITEXT) unless its three splits are found.

    Returns None, or a warning when the download failed but valid and test are found (the offline
    data of this project has no train split): the caller then trains on valid and evaluates on test.
    Other names (a folder, a file) are left alone.
    """
    if dataset not in WIKITEXT:
        return None
    found = {split: _found(WIKITEXT[dataset].relative(split), data_dir) for split in SPLITS}
    if all(found.values()):
        return None
    try:
        download_wikitext(dataset, data_dir, progress=progress)
    except DownloadError as error:
        if found["valid"] and found["test"]:  # the documented offline setup: one short line
            why = "; ".join(error.reasons) or "no source answered"
            return (
                f"no {dataset} train split here and it could not be downloaded ({why}): training on "
                f"valid, evaluating on test (--no-download skips the attempt)"
            )
        raise
    return None


def ensure_trec(
    data_dir: str | Path | None = None, files: Sequence[str] = TREC_FILES, progress: bool = True
) -> None:
    """Download the known TREC `files` that are not found (names not in TREC_SHA256 are left to the reader)."""
    missing = tuple(name for name in files if name in TREC_SHA256 and not _found(f"trec/{name}", data_dir))
    if missing:
        download_trec(data_dir, files=missing, progress=progress)
