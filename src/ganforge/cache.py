"""The cache folder, and verified downloads into it.

Everything ganforge downloads, or computes once and keeps, lives under one folder, the
*cache root* (:func:`cache_root`): the ``cache_dir`` argument when given, else
``$GANFORGE_CACHE`` when set, else ``~/.cache/ganforge`` (``~`` is expanded in each)::

    datasets/<name>/          named data sets (ganforge.data.named)
    weights/                  network weights, e.g. the FID Inception (ganforge.metrics.inception)
    features/domain-<key>/    domain feature networks (ganforge.metrics.domain)
    stats/                    features of reference image sets (ganforge.metrics.features)

:func:`download` fetches a file whose SHA-256 is known: it streams the response into a
temporary file next to the destination, hashing on the way, and moves it into place
(atomically) only when it is complete and the hash matches, so a damaged or interrupted
download never leaves a file behind. When every URL fails (offline, say), it raises a
:class:`DownloadError` whose one-line message names the file and where to place it by hand.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from ganforge.errors import GanforgeError

CACHE_ENV = "GANFORGE_CACHE"

_TIMEOUT_S = 30  # per network operation (connect, each read)
_USER_AGENT = "ganforge-downloader"
_BLOCK = 1 << 20  # bytes read, hashed and written at a time


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``cache_dir`` if given, else ``$GANFORGE_CACHE`` if set, else ``~/.cache/ganforge``.

    An empty ``cache_dir`` or ``$GANFORGE_CACHE`` counts as not given. The folder is not created.
    """
    if cache_dir is not None and os.fspath(cache_dir) != "":
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ganforge"


def sha256_of(path: str | os.PathLike) -> str:
    """The SHA-256 of a file, as 64 lowercase hex digits (read in blocks, never whole)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


class DownloadError(GanforgeError):
    """A file could not be downloaded: no URL could be read, or none served the expected content.

    ``failures``: ``(url, reason)`` for each URL tried, in order, each reason one line.
    """

    def __init__(self, dest: Path, failures: list[tuple[str, str]]):
        self.dest = dest
        self.failures = failures
        if len(failures) == 1:
            why = f"from {failures[0][0]} ({failures[0][1]})"
        else:
            why = "(" + "; ".join(f"{url}: {reason}" for url, reason in failures) + ")"
        super().__init__(f"could not download {dest.name} {why}; place the file at {dest}")


def download(
    urls: str | Sequence[str],
    dest: str | os.PathLike,
    sha256: str,
    *,
    desc: str | None = None,
    progress: bool = True,
    timeout: float = _TIMEOUT_S,
) -> Path:
    """Download ``dest`` from the first of ``urls`` that serves content with the given SHA-256.

    Each URL is streamed to a temporary file in ``dest``'s folder (created if needed),
    hashed while it arrives, and moved onto ``dest`` only when complete and matching; a
    failed or mismatching download is deleted and the next URL is tried. ``desc`` labels
    the progress bar (default: the file name). Returns ``dest``; raises
    :class:`DownloadError` naming every URL tried, why it failed, and where to put the
    file by hand.
    """
    dest = Path(dest)
    urls = [urls] if isinstance(urls, str) else list(urls)
    failures = []
    for url in urls:
        try:
            _download_one(url, dest, sha256.lower(), desc or dest.name, progress, timeout)
            return dest
        except (OSError, http.client.HTTPException, ValueError) as e:
            failures.append((url, _reason(e)))
    raise DownloadError(dest, failures)


def _download_one(url: str, dest: Path, sha256: str, desc: str, progress: bool, timeout: float) -> None:
    """Stream ``url`` into ``dest`` atomically; ValueError if the content's SHA-256 differs."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
            with urllib.request.urlopen(request, timeout=timeout) as response:
                headers = getattr(response, "headers", None)
                length = headers.get("Content-Length") if headers is not None else None
                total = int(length) if length and length.isdigit() else None
                with tqdm(total=total, desc=f"downloading {desc}", unit="B", unit_scale=True,
                          disable=not progress) as bar:
                    for block in iter(lambda: response.read(_BLOCK), b""):
                        digest.update(block)
                        out.write(block)
                        bar.update(len(block))
        actual = digest.hexdigest()
        if actual != sha256:
            raise ValueError(f"downloaded file has sha256 {actual}, expected {sha256}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _reason(e: BaseException) -> str:
    """Why a download failed, on one line (``URLError``'s ``<urlopen error ...>`` wrapper dropped)."""
    reason = e.reason if type(e) is urllib.error.URLError else e
    text = " ".join(str(reason).split())
    return text or type(e).__name__


__all__ = ["CACHE_ENV", "DownloadError", "cache_root", "download", "sha256_of"]
