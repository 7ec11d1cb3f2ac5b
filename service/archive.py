"""One zip of several results, written while it is sent: `GET /jobs/archive` streams what `zip_stream` yields.

Only the standard library's `zipfile`, writing to a sink that cannot seek: each member carries its sizes in a data
descriptor after its bytes, so nothing is written twice and nothing waits for the end. A result is read from storage
in pieces as the client takes them, so the API holds at most about one piece (and zipfile's own small buffers) in
memory, whatever the archive's size. Members are stored, not deflated: PNG, WebP and JPEG are compressed already.
"""

import io
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath

from esrgan.service.storage import CHUNK, Blob


@dataclass(frozen=True)
class Member:
    """One file of the archive, opened only when its turn comes (an archive of many jobs holds one file open)."""

    name: str
    modified: datetime
    open: Callable[[], Blob]


class _Sink(io.RawIOBase):
    """A write-only, unseekable file whose bytes are taken out as they accumulate."""

    def __init__(self) -> None:
        self.pending = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.pending += data
        return len(data)

    def take(self) -> bytes:
        data = bytes(self.pending)
        self.pending.clear()
        return data


def unique_names(names: Iterable[str]) -> list[str]:
    """`photo_x4.png` twice becomes `photo_x4.png` and `photo_x4-2.png`: two uploads of one name both survive."""
    seen: set[str] = set()
    unique = []
    for name in names:
        path, n = PurePosixPath(name), 1
        candidate = name
        while candidate in seen:
            n += 1
            candidate = f"{path.stem}-{n}{path.suffix}"
        seen.add(candidate)
        unique.append(candidate)
    return unique


def zip_stream(members: Iterable[Member]) -> Iterator[bytes]:
    """The zip of `members`, in pieces of about `CHUNK` bytes (the last pieces of each member may be smaller)."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED) as archive:
        for member in members:
            blob = member.open()
            info = zipfile.ZipInfo(member.name, date_time=member.modified.timetuple()[:6])
            info.file_size = blob.size  # known ahead: zipfile chooses ZIP64 from it for results over 2 GiB
            info.external_attr = 0o644 << 16
            with archive.open(info, "w") as out:
                for chunk in blob.chunks:
                    out.write(chunk)
                    if len(sink.pending) >= CHUNK:
                        yield sink.take()
            yield sink.take()
    yield sink.take()  # the central directory
