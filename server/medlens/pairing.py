"""Pairing codes in one step: `medlens pair` offers a short one-time code, the server trades it for
the token (`serve/pairing.py` is the route). Storage only, used by the CLI and the server alike.

Why this is as safe as pasting the token by hand:

- Only the person at the terminal sees the code, and whoever can run `medlens pair` can read the
  0600 token file anyway: the code hands out nothing its holder could not already read.
- The offer lives in `<config_dir>/pairing.json` (mode 0600, the same private folder as the
  token), written by the CLI and read by the server; nothing travels over the network to create
  it, so no web page, other user or other program can start a pairing.
- The server answers `POST /v1/pair` only to a browser extension's Origin (web pages were already
  refused by the security middleware; a missing Origin is refused here too), only before the
  offer's expiry (minutes), for a few attempts in all, and only once: the file is deleted on
  success, on expiry and when the attempts are spent. Every attempt is counted in the file
  *before* the code is compared, under an exclusive OS file lock (`pairing.lock`) held from the
  read to the write, so no crash, race or number of server processes sharing the config folder
  gives free guesses (two servers unlocked allowed 7 compared tries on a 5-try code).
- 8 characters of Crockford base32 are 40 bits: a guesser with 5 attempts wins with probability
  5 / 2^40 (about 5e-12). The file keeps only a salted HMAC of the code, compared in constant time.

The state is a file rather than server memory so that `medlens pair` works whether or not the
server is already running, needs no token on the command line and survives a server restart.
"""

from __future__ import annotations

import hashlib
import hmac
import fcntl
import json
import os
import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from medlens.errors import MedLensError
from medlens.serve.security import _cause

PAIRING_FILE = "pairing.json"
LOCK_FILE = "pairing.lock"
# Crockford base32: no I, L, O or U, so a code read aloud or off a screen is hard to mistype.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 8
_TYPO = str.maketrans({"O": "0", "I": "1", "L": "1"})


@dataclass(frozen=True)
class PairingOffer:
    """What `medlens pair` shows: the code (only ever in memory and on the terminal) and its limits."""

    code: str
    expires_at: float
    attempts: int

    @property
    def display(self) -> str:
        return format_code(self.code)


def pairing_path(config_dir: str | Path) -> Path:
    return Path(config_dir) / PAIRING_FILE


def new_code() -> str:
    """CODE_LENGTH characters from the OS CSPRNG."""
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def format_code(code: str) -> str:
    """`7KQ2M9XD` -> `7KQ2-M9XD`: two groups are easier to copy by eye."""
    half = len(code) // 2
    return f"{code[:half]}-{code[half:]}"


def normalize_code(text: Any) -> str | None:
    """What a person typed -> the canonical code, or None when it cannot be one. Case, spaces and
    dashes do not matter, and O/I/L count as 0/1 (Crockford's rule), so a typo is not a lost try."""
    if not isinstance(text, str) or len(text) > 64:
        return None
    cleaned = "".join(ch for ch in text.upper() if ch not in " -_\t").translate(_TYPO)
    if len(cleaned) != CODE_LENGTH or any(ch not in ALPHABET for ch in cleaned):
        return None
    return cleaned


def _digest(salt: bytes, code: str) -> bytes:
    return hmac.new(salt, code.encode("ascii"), hashlib.sha256).digest()


def _write_state(config_dir: Path, state: dict[str, Any]) -> None:
    """Atomically (write a 0600 temp file, then rename), so the server never reads half a file.

    A folder that cannot be written (read-only, full, a file in its place) is `config_unwritable`,
    as for the token, and leaves no temporary file behind.
    """
    tmp = config_dir / f".{PAIRING_FILE}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        config_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            json.dump(state, fh)
        os.replace(tmp, pairing_path(config_dir))
    except OSError as exc:
        raise MedLensError(
            "config_unwritable",
            f"cannot write the pairing code {pairing_path(config_dir)}: {_cause(exc, config_dir)}. Fix that, or "
            "choose another config folder with --config-dir or MEDLENS_CONFIG_DIR",
        ) from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def _read_state(config_dir: Path) -> dict[str, Any] | None:
    try:
        state = json.loads(pairing_path(config_dir).read_text(encoding="ascii"))
        return {
            "salt": str(state["salt"]),
            "hash": str(state["hash"]),
            "expires_at": float(state["expires_at"]),
            "attempts_left": int(state["attempts_left"]),
        }
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None


@contextmanager
def _exclusive(config_dir: Path) -> Iterator[None]:
    """Hold the config folder's pairing lock (flock: released by the OS if the holder dies)."""
    try:
        config_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(config_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise MedLensError(
            "config_unwritable",
            f"cannot lock the pairing code {config_dir / LOCK_FILE}: {_cause(exc, config_dir)}. Fix that, or "
            "choose another config folder with --config-dir or MEDLENS_CONFIG_DIR",
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def cancel(config_dir: str | Path) -> None:
    """Withdraw any waiting code (used up, expired, or replaced by a new one)."""
    pairing_path(config_dir).unlink(missing_ok=True)


def offer(config_dir: str | Path, *, ttl_s: float, attempts: int, now: float | None = None) -> PairingOffer:
    """A new one-time code, replacing any earlier one (only the latest code printed works)."""
    if ttl_s <= 0 or attempts <= 0:
        raise MedLensError("invalid_request", "pairing needs a positive lifetime and at least one attempt")
    now = time.time() if now is None else now
    code = new_code()
    salt = secrets.token_bytes(16)
    state = {"salt": salt.hex(), "hash": _digest(salt, code).hex(), "expires_at": now + ttl_s, "attempts_left": attempts}
    with _exclusive(Path(config_dir)):
        _write_state(Path(config_dir), state)
    return PairingOffer(code=code, expires_at=now + ttl_s, attempts=attempts)


def redeem(config_dir: str | Path, given: Any, *, now: float | None = None) -> MedLensError | None:
    """Spend one attempt on `given`: None when it is the waiting code (which is then used up), else
    the error to answer. The read, the count and the write back happen under the folder's lock,
    so attempts from any number of threads and processes are counted one after another."""
    directory = Path(config_dir)
    now = time.time() if now is None else now
    with _exclusive(directory):
        return _redeem_locked(directory, given, now)


def _redeem_locked(directory: Path, given: Any, now: float) -> MedLensError | None:
    state = _read_state(directory)
    if state is None:
        return MedLensError("pairing_code_expired", "no pairing code is waiting: run `medlens pair` and type the code it prints")
    if state["expires_at"] <= now or state["attempts_left"] <= 0:
        cancel(directory)
        return MedLensError("pairing_code_expired", "the pairing code has expired: run `medlens pair` again")
    state["attempts_left"] -= 1
    if state["attempts_left"] > 0:
        _write_state(directory, state)  # counted before comparing
    else:
        cancel(directory)
    code = normalize_code(given)
    salt = bytes.fromhex(state["salt"])
    expected = bytes.fromhex(state["hash"])
    # Compare a digest even for a malformed code, so the answer's timing says nothing either way.
    matches = hmac.compare_digest(_digest(salt, code or "-" * CODE_LENGTH), expected) and code is not None
    if matches:
        cancel(directory)
        return None
    left = state["attempts_left"]
    if left <= 0:
        return MedLensError("pairing_code_expired", "wrong pairing code, and no attempts are left: run `medlens pair` again")
    return MedLensError("pairing_code_wrong", f"wrong pairing code ({left} attempt{'s' if left != 1 else ''} left)")
