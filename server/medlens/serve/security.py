"""The checks that make a local server safe to run next to a browser, as plain functions.

A server on 127.0.0.1 that fetches URLs is reachable by every web page the user opens: a page can
POST to it without a preflight (text/plain), and DNS rebinding can make a page's own hostname
resolve to 127.0.0.1. So three independent checks, each enough on its own for its attack:

- Host: only `127.0.0.1:PORT`, `localhost:PORT` or `[::1]:PORT` (defeats DNS rebinding, where
  the Host header carries the attacker's name).
- Origin: absent (CLI, curl), a browser extension's, or the server's own page (`http://` + the
  checked Host); any other web origin is refused outright.
- Token: a per-install secret in the user's config folder that only the user can paste into the
  extension; compared in constant time.
- The page's session: a per-process secret the page obtains only by proving it holds the token
  (`POST /v1/session` with the token from its `?token=` address), keeps in its tab's
  sessionStorage (isolated by scheme, name *and port*) and sends as `Authorization: Bearer`.
  Unlike a cookie, the browser never attaches it by itself, to this port or any other.
- The peer: only loopback clients, unless the user chose to listen beyond loopback; then every
  `/v1` route wants the token or the page's session, from every client.

The middleware in `middlewares.py` applies these; nothing here knows about aiohttp.
"""

from __future__ import annotations

import errno
import hmac
import ipaddress
import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from medlens.errors import MedLensError

TOKEN_FILE = "token"
TOKEN_BYTES = 32
EXTENSION_SCHEMES = ("chrome-extension://", "moz-extension://")
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
# secrets.token_urlsafe(32) gives 43 characters of the URL-safe base64 alphabet.
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43,}$")


# ---------------------------------------------------------------- token


def token_path(config_dir: str | Path) -> Path:
    return Path(config_dir) / TOKEN_FILE


def new_token() -> str:
    """A fresh random token: 32 bytes from the OS CSPRNG, URL-safe base64 (fits an HTTP header)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def read_token(config_dir: str | Path) -> str | None:
    """The stored token, or None when there is none (or it is not a token we could have written)."""
    path = token_path(config_dir)
    try:
        text = path.read_text(encoding="ascii").strip()
    except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
        return None
    return text if _TOKEN_RE.match(text) else None


def load_or_create_token(config_dir: str | Path) -> str:
    """The install's token, created on first use as `<config_dir>/token` with mode 0600.

    The new file is written in full under a temporary name and then hard-linked into place,
    which fails if a token appeared meanwhile: two processes starting at once agree on one
    token, and nobody ever reads a half-written file. A file with looser permissions (copied
    around, restored from a backup) is tightened back to 0600; a garbled one is replaced.

    Any failure to create the folder or write the file (read-only, full, a file where the folder
    should be) is `config_unwritable`, naming the token file and the cause, and leaves no
    temporary file behind.
    """
    directory = Path(config_dir)
    try:
        return _load_or_create(directory, token_path(directory))
    except OSError as exc:
        raise MedLensError(
            "config_unwritable",
            f"cannot write the pairing token {token_path(directory)}: {_cause(exc, directory)}. Fix that, or choose "
            "another config folder with --config-dir or MEDLENS_CONFIG_DIR",
        ) from None


def _load_or_create(directory: Path, path: Path) -> str:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:  # a file where the folder should be
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(directory)) from None
    existing = read_token(directory)
    if existing is not None:
        _tighten(path)
        return existing
    tmp = _write_private(directory, new_token())
    try:
        os.link(tmp, path)
    except FileExistsError:
        raced = read_token(directory)
        if raced is not None:  # someone else's token won
            _tighten(path)
            return raced
        os.replace(tmp, path)  # the existing file is garbage
    except OSError:  # no hard links on this filesystem
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    token = read_token(directory)
    if token is None:
        raise OSError(errno.EIO, "the token file reads back differently from what was written", str(path))
    return token


_CAUSES = {
    errno.EROFS: "the file system is read-only",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EISDIR: "a folder stands where the token file should be",
}


def _cause(exc: OSError, directory: Path) -> str:
    """The real reason in words, naming the file at fault when it is not the token or its temporary copy."""
    if exc.errno == errno.ENOTDIR:
        blocker = next((p for p in (directory, *directory.parents) if p.exists() and not p.is_dir()), directory)
        return f"{blocker} is a file, not a folder"
    reason = _CAUSES.get(exc.errno or 0, exc.strerror or str(exc))
    culprit = Path(exc.filename) if exc.filename else None
    if culprit is not None and culprit.parent != directory:
        reason += f" ({culprit})"
    return reason


def _write_private(directory: Path, token: str) -> Path:
    tmp = directory / f".{TOKEN_FILE}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(token + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not leave an empty file per attempt
        raise
    return tmp


def _tighten(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        path.chmod(0o600)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, else None."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison, so response timing does not leak how much of a guess was right."""
    if given is None or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


# ---------------------------------------------------------------- Host and Origin


def host_allowed(host: str | None, port: int) -> bool:
    """Whether a Host header names this server by a loopback name and the port it listens on."""
    if not host:
        return False
    name, sep, port_text = host.strip().lower().rpartition(":")
    if not sep or name not in LOOPBACK_NAMES:
        return False
    return port_text.isdigit() and int(port_text) == port


def is_extension_origin(origin: str | None) -> bool:
    """A Chrome or Firefox extension's origin (`chrome-extension://<id>`, `moz-extension://<uuid>`)."""
    if not origin:
        return False
    lowered = origin.strip().lower()
    return any(lowered.startswith(s) and len(lowered) > len(s) for s in EXTENSION_SCHEMES)


def origin_allowed(origin: str | None) -> bool:
    """No Origin (not a browser page: CLI, curl, same-origin GET) or an extension's origin.

    `Origin: null` (sandboxed iframes, file: pages, some redirects) is a web page too: refused.
    """
    return origin is None or is_extension_origin(origin)


# ---------------------------------------------------------------- the server's own page


def new_page_secret() -> str:
    """The page's session secret: new for every server process, so a leaked one dies with it."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def is_own_origin(origin: str | None, host: str | None) -> bool:
    """Whether `Origin` is this server's own page: `http://` plus the (already checked) Host.

    Browsers set Origin themselves and scripts cannot change it, so only a page loaded from this
    very scheme, name and port matches; another loopback port or a rebound name does not.
    """
    if not origin or not host:
        return False
    return origin.strip().lower() == "http://" + host.strip().lower()


# ---------------------------------------------------------------- who is at the other end


def is_loopback_address(address: str | None) -> bool:
    """Whether a peer address is this machine's loopback (127.0.0.0/8, ::1, or v4-mapped 127.x)."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def binds_beyond_loopback(host: str) -> bool:
    """Whether listening on `host` lets other machines connect: anything but a loopback name or address."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return False
    return not is_loopback_address(name)  # "" and "0.0.0.0" mean every interface


@dataclass(frozen=True)
class Access:
    """Who a request proved to be; the middleware decides it once, routes read it."""

    extension: bool = False
    token: bool = False
    page: bool = False

    @property
    def identified(self) -> bool:
        """Extension, token or page: may see the server's details (model, limits, queue)."""
        return self.extension or self.token or self.page

    @property
    def authorized(self) -> bool:
        """Holds a credential for the classify routes: the install token or the page's session."""
        return self.token or self.page
