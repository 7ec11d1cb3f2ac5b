"""Fetch one weights file into a cache: resume, retry, verify, then an atomic rename.

The bytes go to `dest.part` first; a later call resumes it with an HTTP Range request. Only a file whose sha256 (or
the first hex digits of it, as BasicSR names carry: `ESRGAN_SRx4_DF2KOST_official-ff704c30.pth`) matches is renamed to
`dest`, so whatever sits at `dest` has been verified; a mismatch is deleted and refused.
"""

import hashlib
import http.client
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

CHUNK = 1 << 20
RETRIABLE_STATUS = {408, 429, 500, 502, 503, 504}
_NAME_PREFIX = re.compile(r"-([0-9a-f]{8})\.(?:pth|pt|safetensors)$")


class DownloadError(RuntimeError):
    """A download that could not be completed; the message says what to do next."""


class ChecksumError(DownloadError):
    """The bytes arrived but are not the file we asked for (and have been deleted)."""


def name_prefix(filename: str) -> str | None:
    """The sha256 prefix that BasicSR-style names end with (`...-ff704c30.pth`), if any."""
    match = _NAME_PREFIX.search(filename)
    return match.group(1) if match else None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, sha256: str | None = None, sha256_prefix: str | None = None) -> str:
    """The file's sha256, or ChecksumError if it disagrees with the full digest or the prefix given."""
    actual = sha256_file(path)
    if sha256 and actual != sha256.lower():
        raise ChecksumError(f"{path.name}: sha256 is {actual}, expected {sha256.lower()}")
    if sha256_prefix and not actual.startswith(sha256_prefix.lower()):
        raise ChecksumError(f"{path.name}: sha256 is {actual}, expected one starting {sha256_prefix.lower()}")
    return actual


def _download_once(url: str, part: Path, progress: bool, timeout: float) -> None:
    """One HTTP attempt, appending to `part` when the server honours our Range request."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "esrgan-service"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # our partial file is no prefix of theirs (or already complete): start over
            part.unlink()
        raise
    with response:
        if "text/html" in response.headers.get("Content-Type", ""):
            raise DownloadError(f"{url} answered with a web page, not a weights file (a sign-in or confirmation page?)")
        resumed = response.status == 206
        if not resumed:
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with (
            part.open("ab" if resumed else "wb") as out,
            tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=part.stem, disable=not progress) as bar,
        ):
            while block := response.read(CHUNK):
                out.write(block)
                bar.update(len(block))
    if total is not None and part.stat().st_size < total:
        raise ConnectionError(f"connection closed after {part.stat().st_size} of {total} bytes")


def fetch(
    url: str,
    dest: Path,
    sha256: str | None = None,
    sha256_prefix: str | None = None,
    progress: bool = True,
    *,
    attempts: int = 4,
    backoff: float = 1.0,
    timeout: float = 60.0,
) -> Path:
    """Download `url` to `dest` unless a verified copy is already there; return `dest`.

    Without a checksum, a BasicSR-style name (`...-<8 hex>.pth`) still gets its prefix verified. Network errors,
    5xx/429 answers and short reads are retried `attempts` times with exponential `backoff` seconds, resuming the
    partial file each time; other HTTP errors and checksum mismatches fail at once.
    """
    dest = Path(dest)
    sha256_prefix = sha256_prefix or (None if sha256 else name_prefix(dest.name))
    if dest.exists():
        try:
            verify(dest, sha256, sha256_prefix)
            return dest
        except ChecksumError:
            dest.unlink()  # a stale or damaged cache entry: fetch it again
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error: Exception | None = None
    for attempt in range(attempts):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            _download_once(url, part, progress, timeout)
            break
        except urllib.error.HTTPError as exc:
            if exc.code not in RETRIABLE_STATUS and exc.code != 416:
                raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
            last_error = exc
        except (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException) as exc:
            last_error = exc
    else:
        raise DownloadError(
            f"{url}: gave up after {attempts} attempts ({last_error}); run the command again to resume "
            f"{part}, or download the file by hand and put it at {dest}"
        )
    try:
        verify(part, sha256, sha256_prefix)
    except ChecksumError as exc:
        part.unlink()
        raise ChecksumError(f"{url}: refused and deleted the download: {exc}") from exc
    os.replace(part, dest)
    return dest
