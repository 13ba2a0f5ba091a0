"""How the command-line programs report mistakes a user can make: one line, non-zero exit, no traceback.

Set MINITRANSFORMER_DEBUG=1 to see the traceback anyway.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable

URL_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@")


def mask_urls(text: str) -> str:
    """`text` with the user name and password of every URL in it replaced by `***` (a mirror URL may
    carry them: `http://user:pass@host/...`), for messages that may be shown or logged."""
    return URL_USERINFO.sub(r"\1***@", text)


class DownloadError(RuntimeError):
    """Data could not be fetched from any source (network, HTTP or checksum); nothing partial was kept."""

    def __init__(self, message: str, reasons: tuple[str, ...] = ()):
        super().__init__(mask_urls(message))
        # why each source failed, e.g. "Name or service not known"
        self.reasons = tuple(mask_urls(r) for r in reasons)


class MissingExtraError(ImportError):
    """An optional feature needs a package from one of the project's extras (the message says which)."""


class WriteError(OSError):
    """A file could not be written (disk full, read-only, no permission); nothing partial was kept."""

    def __init__(self, path: os.PathLike, code: int | None):
        meaning = os.strerror(code) if code else "the write failed (is the disk full?)"
        self.message = f"could not write {path}: {meaning}; free space or choose another folder, then rerun"
        super().__init__(self.message)
        self.errno, self.filename = code, str(path)

    def __str__(self) -> str:
        return self.message


# Errors that describe a problem with the user's input, files or network rather than a bug in this library.
USER_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    ValueError,
    FloatingPointError,
    PermissionError,
    DownloadError,
    MissingExtraError,
    WriteError,
)


def run_cli(main: Callable[[], object]) -> int:
    """Run `main`; print a user error as `error: ...` on stderr and return 1 instead of raising."""
    try:
        main()
    except USER_ERRORS as e:
        if os.environ.get("MINITRANSFORMER_DEBUG"):
            raise
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"error: {mask_urls(message)}", file=sys.stderr)
        return 1
    except OSError as e:  # disk full, read-only or vanished folder, ...: the file and the cause
        if os.environ.get("MINITRANSFORMER_DEBUG") or not (e.errno and e.filename):
            raise
        print(f"error: {e.filename}: {e.strerror}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
