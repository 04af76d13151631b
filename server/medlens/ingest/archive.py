"""The members of a ZIP or tar archive, read safely: the stdlib's zipfile and tarfile do the
parsing; what is added here are the refusals an archive from a stranger needs.

- a member whose name is absolute or climbs out (`../`), or that is a link, device or FIFO, is
  `unsafe_member` (it is never written anywhere, but such a name says the file was made to hurt);
- a member that claims to unpack more than `max_archive_ratio` times its compressed size, or an
  archive (with the archives inside it) that unpacks past `max_archive_bytes`, is `archive_bomb`,
  decided from the headers before a byte is inflated, and enforced while reading (headers lie);
- an encrypted member is `encrypted`; at most `max_archive_members` members are looked at.

Each refusal is one member's error: the members beside it are still read. Office files (DOCX,
PPTX, XLSX, ODT, ODP, ODS) are ZIPs too; `office.py` reads their media folders through here.
"""

from __future__ import annotations

import io
import posixpath
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from typing import Callable, Iterator

from medlens.errors import MedLensError
from medlens.settings import Settings

_CHUNK = 1024 * 1024


@dataclass
class Member:
    """One archive member: its bytes, or why it was not read."""

    name: str
    data: bytes | None = None
    error: MedLensError | None = None


class UnpackBudget:
    """Bytes an archive and everything inside it may still unpack to (shared by nested archives)."""

    def __init__(self, total: int) -> None:
        self.left = total
        self.total = total

    def take(self, size: int, name: str) -> None:
        if size > self.left:
            raise MedLensError("archive_bomb", f"{name}: the archive unpacks to more than {self.total} bytes "
                               "(max_archive_bytes)")
        self.left -= size


def unsafe_name(name: str) -> str | None:
    """Why a member name is unsafe (absolute, a drive, climbs out with ..), or None."""
    clean = name.replace("\\", "/")
    if clean.startswith("/") or (len(clean) > 1 and clean[1] == ":"):
        return "an absolute path"
    if ".." in clean.split("/") or posixpath.normpath(clean).startswith(".."):
        return "a path that climbs out of the archive (..)"
    if "\x00" in clean:
        return "a NUL character in its name"
    return None


def zip_members(data: bytes, settings: Settings, budget: UnpackBudget,
                wanted: Callable[[str], bool]) -> tuple[list[Member], bool]:
    """The wanted members of a ZIP (in archive order) and whether some were left out (the cap)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise MedLensError("decode_failed", f"cannot read the ZIP archive: {exc}") from exc
    with archive:
        infos = [info for info in archive.infolist() if not info.is_dir()]
        truncated = len(infos) > settings.max_archive_members
        members = [_zip_member(archive, info, settings, budget) for info in infos[: settings.max_archive_members]
                   if wanted(info.filename)]
    return members, truncated


def _zip_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, settings: Settings, budget: UnpackBudget) -> Member:
    name = info.filename
    try:
        why = unsafe_name(name)
        if why:
            raise MedLensError("unsafe_member", f"{name}: refused, {why}")
        file_type = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip's maker recorded none
        if file_type and file_type not in (stat.S_IFREG, stat.S_IFDIR):
            raise MedLensError("unsafe_member", f"{name}: refused, a link or special file, not a file")
        if info.flag_bits & 0x1:
            raise MedLensError("encrypted", f"{name}: the member is encrypted and needs a password")
        ratio = info.file_size / max(1, info.compress_size)
        if ratio > settings.max_archive_ratio:
            raise MedLensError("archive_bomb", f"{name}: unpacks {ratio:.0f} times its size, more than "
                               f"max_archive_ratio {settings.max_archive_ratio:g}")
        if info.file_size > settings.max_file_bytes:
            raise MedLensError("too_large", f"{name}: {info.file_size} bytes, over the limit of {settings.max_file_bytes}")
        budget.take(info.file_size, name)
        with archive.open(info) as fh:
            body = _read_capped(fh, info.file_size, name)
    except MedLensError as exc:
        return Member(name, error=exc)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError) as exc:
        return Member(name, error=MedLensError("decode_failed", f"{name}: cannot unpack the member: {exc}"))
    return Member(name, body)


def _read_capped(fh: io.BufferedIOBase, declared: int, name: str) -> bytes:
    """At most the declared size (a header that under-states it is a bomb, not a bigger read)."""
    buf = bytearray()
    while chunk := fh.read(_CHUNK):
        buf += chunk
        if len(buf) > declared:
            raise MedLensError("archive_bomb", f"{name}: unpacks to more than its header says")
    return bytes(buf)


def is_tar(data: bytes) -> bool:
    """A tar, or a gzip/bzip2/xz-compressed one (tarfile finds out, reading only the first header)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            return archive.next() is not None
    except (tarfile.TarError, OSError, EOFError, ValueError):
        return False


def tar_members(data: bytes, settings: Settings, budget: UnpackBudget,
                wanted: Callable[[str], bool]) -> tuple[list[Member], bool]:
    """The wanted file members of a tar (compressed or not), in order, and whether some were left out."""
    members: list[Member] = []
    seen = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            for info in _iter_tar(archive, budget):
                seen += 1
                if seen > settings.max_archive_members:
                    return members, True
                if info.isdir() or not wanted(info.name):
                    continue
                members.append(_tar_member(archive, info, settings, budget))
    except MedLensError as exc:
        if not members:
            raise
        members.append(Member("(rest of the archive)", error=exc))
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        if not members:
            raise MedLensError("decode_failed", f"cannot read the tar archive: {exc}") from exc
        members.append(Member("(rest of the archive)", error=MedLensError("decode_failed", f"the archive is cut short: {exc}")))
    return members, False


def _iter_tar(archive: tarfile.TarFile, budget: UnpackBudget) -> Iterator[tarfile.TarInfo]:
    # A compressed tar is inflated as it is walked: its headers' offsets say how far, so a
    # gzip of zeros is stopped at the byte budget, not at the end of the disk.
    while (info := archive.next()) is not None:
        if info.offset_data > budget.total:
            raise MedLensError("archive_bomb", f"the archive unpacks to more than {budget.total} bytes (max_archive_bytes)")
        yield info


def _tar_member(archive: tarfile.TarFile, info: tarfile.TarInfo, settings: Settings, budget: UnpackBudget) -> Member:
    name = info.name
    try:
        why = unsafe_name(name)
        if why:
            raise MedLensError("unsafe_member", f"{name}: refused, {why}")
        if not info.isfile():
            raise MedLensError("unsafe_member", f"{name}: refused, a link or special file, not a file")
        if info.size > settings.max_file_bytes:
            raise MedLensError("too_large", f"{name}: {info.size} bytes, over the limit of {settings.max_file_bytes}")
        budget.take(info.size, name)
        fh = archive.extractfile(info)
        if fh is None:
            raise MedLensError("unsafe_member", f"{name}: refused, not a regular file")
        with fh:
            body = _read_capped(fh, info.size, name)
    except MedLensError as exc:
        return Member(name, error=exc)
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        return Member(name, error=MedLensError("decode_failed", f"{name}: cannot unpack the member: {exc}"))
    return Member(name, body)
