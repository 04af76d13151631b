"""One-step pairing: the one-time code's rules (pure functions on a real config folder), the
`/v1/pair` route on the real app (Origin, once-only, attempts), and `medlens pair` itself."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fixtures.server import EXTENSION_ORIGIN, MakeApi
from medlens.cli import main
from medlens import pairing
from medlens.pairing import normalize_code, offer, pairing_path, redeem

NOW = 1_000_000.0


def test_codes_are_short_random_and_unambiguous() -> None:
    codes = {pairing.new_code() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        assert len(code) == 8 and set(code) <= set(pairing.ALPHABET)
        assert not set(code) & set("ILOU")
    assert pairing.format_code("7KQ2M9XD") == "7KQ2-M9XD"


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [("7KQ2-M9XD", "7KQ2M9XD"), ("7kq2 m9xd", "7KQ2M9XD"), (" 7kq2m9xd ", "7KQ2M9XD"), ("7KQ2-M9XO", "7KQ2M9X0"),
     ("IL00-0000", "11000000")],
)
def test_typed_codes_are_normalised(typed: str, canonical: str) -> None:
    assert normalize_code(typed) == canonical


@pytest.mark.parametrize("typed", ["", "7KQ2-M9X", "7KQ2-M9XD1", "7KQ2-M9X!", None, 12345678, "U" * 8, "x" * 100])
def test_malformed_codes_are_refused(typed: Any) -> None:
    assert normalize_code(typed) is None


def test_offer_is_private_and_keeps_no_plain_code(tmp_path: Path) -> None:
    made = offer(tmp_path / "cfg", ttl_s=120, attempts=5, now=NOW)
    path = pairing_path(tmp_path / "cfg")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "cfg").stat().st_mode) == 0o700
    text = path.read_text()
    assert made.code not in text and made.display not in text
    state = json.loads(text)
    assert state["expires_at"] == NOW + 120 and state["attempts_left"] == 5


def test_the_right_code_works_once(tmp_path: Path) -> None:
    made = offer(tmp_path, ttl_s=120, attempts=5, now=NOW)
    assert redeem(tmp_path, made.display.lower(), now=NOW + 1) is None
    assert not pairing_path(tmp_path).exists()
    again = redeem(tmp_path, made.code, now=NOW + 2)
    assert again is not None and again.code == "pairing_code_expired" and again.http_status == 410


def test_an_expired_code_is_refused_and_removed(tmp_path: Path) -> None:
    made = offer(tmp_path, ttl_s=120, attempts=5, now=NOW)
    error = redeem(tmp_path, made.code, now=NOW + 120)
    assert error is not None and error.code == "pairing_code_expired"
    assert not pairing_path(tmp_path).exists()


def test_attempts_are_counted_and_then_the_code_is_spent(tmp_path: Path) -> None:
    made = offer(tmp_path, ttl_s=120, attempts=3, now=NOW)
    wrong = "0000-0000" if made.code != "00000000" else "1111-1111"
    first = redeem(tmp_path, wrong, now=NOW + 1)
    assert first is not None and first.code == "pairing_code_wrong" and first.http_status == 403
    assert "2 attempts left" in first.message
    assert json.loads(pairing_path(tmp_path).read_text())["attempts_left"] == 2
    malformed = redeem(tmp_path, "not a code", now=NOW + 2)  # a malformed code costs a try too
    assert malformed is not None and "1 attempt left" in malformed.message
    last = redeem(tmp_path, wrong, now=NOW + 3)
    assert last is not None and last.code == "pairing_code_expired"
    assert not pairing_path(tmp_path).exists()
    late = redeem(tmp_path, made.code, now=NOW + 4)  # the right code after the tries are spent
    assert late is not None and late.code == "pairing_code_expired"


def test_the_last_attempt_may_be_the_right_one(tmp_path: Path) -> None:
    made = offer(tmp_path, ttl_s=120, attempts=2, now=NOW)
    assert redeem(tmp_path, "ZZZZ-ZZZZ" if made.code != "ZZZZZZZZ" else "0000-0000", now=NOW + 1) is not None
    assert redeem(tmp_path, made.code, now=NOW + 2) is None


def test_a_new_code_replaces_the_old_one(tmp_path: Path) -> None:
    old = offer(tmp_path, ttl_s=120, attempts=5, now=NOW)
    new = offer(tmp_path, ttl_s=120, attempts=5, now=NOW + 1)
    if old.code != new.code:
        error = redeem(tmp_path, old.code, now=NOW + 2)
        assert error is not None and error.code == "pairing_code_wrong"
    assert redeem(tmp_path, new.code, now=NOW + 3) is None


def test_no_code_waiting_and_a_garbled_file(tmp_path: Path) -> None:
    error = redeem(tmp_path, "7KQ2-M9XD")
    assert error is not None and error.code == "pairing_code_expired" and "medlens pair" in error.message
    pairing_path(tmp_path).write_text("{not json")
    error = redeem(tmp_path, "7KQ2-M9XD")
    assert error is not None and error.code == "pairing_code_expired"


def test_offer_needs_a_lifetime_and_attempts(tmp_path: Path) -> None:
    from medlens.errors import MedLensError

    with pytest.raises(MedLensError):
        offer(tmp_path, ttl_s=0, attempts=5)
    with pytest.raises(MedLensError):
        offer(tmp_path, ttl_s=60, attempts=0)


# ---------------------------------------------------------------- the route on the real app


async def _pair(api: Any, code: Any, *, origin: str | None = EXTENSION_ORIGIN, **kw: Any) -> tuple[int, dict[str, Any]]:
    headers = {"Origin": origin} if origin else {}
    resp = await api.client.post("/v1/pair", json={"code": code}, headers=headers, **kw)
    return resp.status, await resp.json()


async def test_route_trades_the_code_for_the_token_once(make_api: MakeApi) -> None:
    api = await make_api()
    made = offer(api.settings.config_path, ttl_s=120, attempts=5)
    status, body = await _pair(api, made.display)
    assert status == 200 and body == {"token": api.token, "paired": True}
    assert resp_cors(await api.client.post("/v1/pair", json={"code": made.display}, headers={"Origin": EXTENSION_ORIGIN}))
    status, body = await _pair(api, made.display, origin="moz-extension://5e0c1a7e-3d51-4c1b-9a7e-6b3f2d9c8a11")
    assert status == 410 and body["error"]["code"] == "pairing_code_expired"
    # the token it handed out opens the classify routes
    resp = await api.client.get("/v1/health", headers=api.headers())
    assert (await resp.json())["paired"] is True


def resp_cors(resp: Any) -> bool:
    """The extension can read the route's answers, errors included (CORS for its Origin only)."""
    return resp.headers.get("Access-Control-Allow-Origin") == EXTENSION_ORIGIN


@pytest.mark.parametrize("origin", [None, "http://127.0.0.1:9999", "https://evil.example", "null"])
async def test_route_refuses_anything_but_an_extension(make_api: MakeApi, origin: str | None) -> None:
    api = await make_api()
    made = offer(api.settings.config_path, ttl_s=120, attempts=5)
    status, body = await _pair(api, made.code, origin=origin)
    assert status == 403 and body["error"]["code"] == "forbidden_origin"
    assert "token" not in body
    # refused before any attempt was spent: the extension can still pair with it
    assert json.loads(pairing_path(api.settings.config_path).read_text())["attempts_left"] == 5
    assert (await _pair(api, made.code))[0] == 200


async def test_route_counts_wrong_codes_and_refuses_bad_bodies(make_api: MakeApi) -> None:
    api = await make_api(pairing_attempts=2)
    made = offer(api.settings.config_path, ttl_s=120, attempts=api.settings.pairing_attempts)
    wrong = "0000-0000" if made.code != "00000000" else "1111-1111"
    status, body = await _pair(api, wrong)
    assert status == 403 and body["error"]["code"] == "pairing_code_wrong"
    status, body = await _pair(api, wrong)
    assert status == 410 and body["error"]["code"] == "pairing_code_expired"
    status, body = await _pair(api, made.code)
    assert status == 410, "the right code must not work once the tries are spent"
    resp = await api.client.post("/v1/pair", data="x" * 5000, headers={"Origin": EXTENSION_ORIGIN})
    assert resp.status == 413
    resp = await api.client.post("/v1/pair", data="{nope", headers={"Origin": EXTENSION_ORIGIN})
    assert resp.status == 400
    resp = await api.client.post("/v1/pair", json={"token": "x"}, headers={"Origin": EXTENSION_ORIGIN})
    assert resp.status == 400


async def test_route_refuses_an_expired_code(make_api: MakeApi) -> None:
    api = await make_api()
    made = offer(api.settings.config_path, ttl_s=60, attempts=5, now=NOW)  # expired long ago
    status, body = await _pair(api, made.code)
    assert status == 410 and body["error"]["code"] == "pairing_code_expired"


# ---------------------------------------------------------------- `medlens pair`


def test_cli_prints_a_code_the_server_accepts(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "cfg"
    assert main(["--config-dir", str(config), "--set", "pairing_attempts=3", "pair", "--ttl", "90"]) == 0
    out = capsys.readouterr().out
    match = re.search(r"Pairing code: ([0-9A-Z]{4}-[0-9A-Z]{4})", out)
    assert match, out
    assert "1 min 30 s" in out and "3 tries" in out and "medlens token" in out
    assert (config / "token").exists(), "pair creates the token the server will hand out"
    state = json.loads(pairing_path(config).read_text())
    assert state["attempts_left"] == 3
    assert redeem(config, match.group(1)) is None
    assert main(["--config-dir", str(config), "pair", "--code-only"]) == 0
    assert re.fullmatch(r"[0-9A-Z]{4}-[0-9A-Z]{4}\n", capsys.readouterr().out)


async def test_route_reads_a_body_sent_in_pieces(make_api: MakeApi) -> None:
    """A chunked body arrives in parts; the route must read all of them (and still cap the total)."""
    api = await make_api()
    made = offer(api.settings.config_path, ttl_s=120, attempts=5)

    async def pieces(parts: list[bytes]) -> Any:
        for part in parts:
            yield part

    body = [b'{"co', b'de": "', made.display[:3].encode(), made.display[3:].encode(), b'"}']
    resp = await api.client.post("/v1/pair", data=pieces(body), headers={"Origin": EXTENSION_ORIGIN})
    assert resp.status == 200 and (await resp.json())["token"] == api.token
    resp = await api.client.post("/v1/pair", data=pieces([b" " * 600, b" " * 600]), headers={"Origin": EXTENSION_ORIGIN})
    assert resp.status == 413


def test_pair_in_a_folder_that_is_a_file_says_so(tmp_path: Path):
    """The same clear error as the token's: no traceback, the pairing file and the real cause named."""
    blocker = tmp_path / "config"
    blocker.write_text("a file, not a folder")
    done = subprocess.run([sys.executable, "-m", "medlens.cli", "--config-dir", str(blocker), "pair"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "config_unwritable" in done.stderr and "pairing" in done.stderr and "not a folder" in done.stderr


def test_processes_sharing_a_config_folder_share_one_budget_of_tries(tmp_path: Path) -> None:
    """Old: the count file was read and rewritten without a lock; two servers sharing a config
    folder compared 7 tries on a 5-try code. Now any number of processes compare exactly 5."""
    config, go = tmp_path / "config", tmp_path / "go"
    offer(config, ttl_s=120, attempts=5)
    script = Path(__file__).with_name("pairing_race.py")
    racers = [subprocess.Popen([sys.executable, str(script), str(config), str(go), "3"], stdout=subprocess.PIPE, text=True)
              for _ in range(8)]
    time.sleep(1.0)  # every racer imported and waiting
    go.touch()
    answers = [line for proc in racers for line in proc.communicate(timeout=60)[0].splitlines()]
    assert all(proc.returncode == 0 for proc in racers)
    compared = [a for a in answers if a.startswith("wrong pairing code")]
    assert len(answers) == 24 and len(compared) == 5, answers
