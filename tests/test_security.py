"""Token file, token comparison, Host and Origin rules, as plain functions (the middleware that
applies them is tested through the app in test_app.py)."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from medlens.errors import MedLensError
from medlens.serve import security
from medlens.serve.security import (
    bearer_token,
    host_allowed,
    is_extension_origin,
    load_or_create_token,
    origin_allowed,
    read_token,
    token_matches,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_token_is_created_once_with_private_permissions(tmp_path: Path) -> None:
    config = tmp_path / "deep" / "medlens"
    token = load_or_create_token(config)
    path = config / "token"
    assert len(token) >= 43 and token == path.read_text().strip()
    assert _mode(path) == 0o600 and _mode(config) == 0o700
    assert load_or_create_token(config) == token == read_token(config)


def test_tokens_are_random(tmp_path: Path) -> None:
    assert load_or_create_token(tmp_path / "a") != load_or_create_token(tmp_path / "b")


def test_loose_permissions_are_tightened(tmp_path: Path) -> None:
    token = load_or_create_token(tmp_path)
    (tmp_path / "token").chmod(0o644)
    assert load_or_create_token(tmp_path) == token
    assert _mode(tmp_path / "token") == 0o600


@pytest.mark.parametrize("content", ["", "short", "not a token at all, has spaces", "\x00\x01"])
def test_garbled_token_file_is_replaced(tmp_path: Path, content: str) -> None:
    (tmp_path / "token").write_text(content)
    assert read_token(tmp_path) is None
    token = load_or_create_token(tmp_path)
    assert read_token(tmp_path) == token and _mode(tmp_path / "token") == 0o600


def test_concurrent_first_starts_agree_on_one_token(tmp_path: Path) -> None:
    tokens: list[str] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        tokens.append(load_or_create_token(tmp_path))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(tokens)) == 1 and read_token(tmp_path) == tokens[0]


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None), ("Bearer", None), ("", None), (None, None),
     ("abc", None)],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_token_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = security.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(security.hmac, "compare_digest", spy)
    assert token_matches("secret", "secret") is True
    assert token_matches("secreT", "secret") is False
    assert token_matches("sécret", "secret") is False
    assert calls and all(isinstance(a, bytes) for a, _ in calls)
    assert token_matches(None, "secret") is False and token_matches("x", "") is False


@pytest.mark.parametrize(
    ("host", "ok"),
    [("127.0.0.1:8377", True), ("localhost:8377", True), ("LocalHost:8377", True), ("[::1]:8377", True),
     ("127.0.0.1", False), ("127.0.0.1:8378", False), ("evil.example:8377", False), ("127.0.0.2:8377", False),
     ("localhost.evil.example:8377", False), ("::1:8377", False), ("", False), (None, False),
     ("127.0.0.1:8377:8377", False), ("127.0.0.1:+8377", False)],
)
def test_host_allowed(host: str | None, ok: bool) -> None:
    assert host_allowed(host, 8377) is ok


@pytest.mark.parametrize(
    ("origin", "ok"),
    [(None, True), ("chrome-extension://abcdefghijklmnop", True), ("moz-extension://1234-5678", True),
     ("https://evil.example", False), ("http://127.0.0.1:8377", False), ("null", False), ("", False),
     ("chrome-extension://", False), ("file://", False)],
)
def test_origin_allowed(origin: str | None, ok: bool) -> None:
    assert origin_allowed(origin) is ok
    assert is_extension_origin(origin) is (ok and origin is not None)


def test_a_file_where_the_config_folder_should_be_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "config"
    blocker.write_text("not a folder")
    for where in (blocker, blocker / "medlens"):
        with pytest.raises(MedLensError) as info:
            load_or_create_token(where)
        assert info.value.code == "config_unwritable"
        assert str(where / "token") in info.value.message and f"{blocker} is a file" in info.value.message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config"]
