"""The native host, as the browser runs it: a real `medlens native-host` subprocess over pipes.

Framing and validation (fast): answers only known requests, refuses oversized, malformed and
foreign messages, writes nothing but messages to stdout, exits when the browser closes the port.
Server start (slow, the real model): one server for concurrent hosts, a stale lock taken over, a
killed server restarted by the next request, and the idle shutdown of a server the host started.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from fixtures.native import HEADER, NativeHome, alive, frame, wait_gone
from medlens.native import protocol
from medlens.native.extension_ids import FIREFOX_EXTENSION_ID


def test_unknown_requests_get_an_error_and_the_host_keeps_answering(native_home: NativeHome):
    rc, replies = native_home.host({"type": "shutdown"}, {"type": "status", "extra": 1}, [1, 2], {"type": 7},
                                   {"type": "status", "id": "x" * 65}, {"type": "status", "id": 3})
    assert rc == 0  # end of input: the browser closed the port
    assert [r["ok"] for r in replies] == [False, False, False, False, False, True]
    assert {r["error"]["code"] for r in replies[:5]} == {"invalid_request"}
    assert "connect" in replies[0]["error"]["message"] and "status" in replies[0]["error"]["message"]
    assert replies[5]["id"] == 3 and replies[5]["type"] == "status"


def test_status_starts_nothing_and_says_no_token(native_home: NativeHome):
    rc, [reply] = native_home.host({"type": "status"})
    assert rc == 0
    assert reply["ok"] and reply["running"] is False and reply["started_by"] is None
    assert reply["url"] == f"http://127.0.0.1:{native_home.port}"
    assert "token" not in json.dumps(reply) and native_home.server_pid() is None


def test_a_message_that_is_not_json_ends_the_session(native_home: NativeHome):
    body = b"{not json"
    rc, replies = native_home.host({"type": "status"}, raw=HEADER.pack(len(body)) + body + frame({"type": "status"}))
    assert rc == 1
    assert [r["ok"] for r in replies] == [True, False]  # nothing after the bad message is read
    assert replies[1]["error"]["code"] == "invalid_json"


def test_an_oversized_length_is_refused_before_its_body_is_read(native_home: NativeHome):
    """The host answers while the browser is still writing: nothing of the body was read."""
    proc = subprocess.Popen([sys.executable, "-m", "medlens.cli", "native-host"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=native_home.env)
    try:
        proc.stdin.write(HEADER.pack(protocol.MAX_INCOMING_BYTES + 1) + b"x" * 100)
        proc.stdin.flush()
        header = proc.stdout.read(HEADER.size)
        reply = json.loads(proc.stdout.read(HEADER.unpack(header)[0]))
        assert reply["ok"] is False and reply["error"]["code"] == "body_too_large"
        assert proc.wait(timeout=30) == 1
    finally:
        proc.kill()
        proc.communicate()


def test_a_message_cut_short_is_an_error(native_home: NativeHome):
    rc, [reply] = native_home.host(raw=HEADER.pack(50) + b'{"type":')
    assert rc == 1 and reply["error"]["code"] == "invalid_json"


def test_a_caller_that_is_not_medlens_is_refused(native_home: NativeHome):
    rc, [reply] = native_home.host({"type": "status"}, caller="chrome-extension://abcdefghijklmnopabcdefghijklmnop/")
    assert rc == 0 and reply["error"]["code"] == "forbidden_origin"
    rc, [reply] = native_home.host({"type": "status"}, caller="other@example.org")
    assert reply["error"]["code"] == "forbidden_origin"
    rc, [reply] = native_home.host({"type": "status"}, caller=FIREFOX_EXTENSION_ID)
    assert reply["ok"] is True


def test_firefox_arguments_name_the_manifest_and_the_add_on(native_home: NativeHome):
    """Firefox runs the host with the host manifest's path (which may hold an @) and the add-on ID."""
    manifest = "/home/a@b/.mozilla/native-messaging-hosts/medlens.json"
    for add_on, ok in ((FIREFOX_EXTENSION_ID, True), ("other@example.org", False), ("{0c3c0b1e-5f2a}", False)):
        rc, [reply] = native_home.host({"type": "status"}, caller=manifest, extra_args=[add_on])
        assert reply["ok"] is ok, (add_on, reply)


def test_an_answer_over_the_browsers_limit_is_refused():
    assert len(protocol.encode({"a": "x" * 1000})) < protocol.MAX_OUTGOING_BYTES
    with pytest.raises(protocol.ProtocolError) as err:
        protocol.encode({"a": "x" * protocol.MAX_OUTGOING_BYTES})
    assert err.value.code == "body_too_large"


def _health(home: NativeHome, token: str) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{home.port}/v1/health", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.mark.slow
def test_connect_starts_one_server_takes_a_stale_lock_and_restarts_after_a_crash(native_home: NativeHome):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    native_home.config_dir.mkdir(parents=True)
    native_home.lock.write_text(json.dumps({"pid": int(dead.stdout), "port": native_home.port}))  # a crash's leftover

    replies: list[list] = []
    hosts = [threading.Thread(target=lambda: replies.append(native_home.host({"type": "connect"})[1])) for _ in range(3)]
    for t in hosts:
        t.start()
    for t in hosts:
        t.join()
    answers = [r[0] for r in replies]
    assert all(a["ok"] for a in answers), answers
    assert sum(a["started_now"] for a in answers) == 1  # one host started it, the others waited for it
    assert {a["port"] for a in answers} == {native_home.port} and len({a["token"] for a in answers}) == 1
    token = answers[0]["token"]
    assert token == (native_home.config_dir / "token").read_text().strip()
    pid = native_home.server_pid()
    assert pid != int(dead.stdout) and alive(pid)
    assert _health(native_home, token)["paired"] is True

    _, [status] = native_home.host({"type": "status"})
    assert status["running"] is True and status["started_by"] == "medlens"
    logs = native_home.root / ".cache" / "medlens" / "logs"
    assert token not in (logs / "native-host.log").read_text()
    for path in (logs, logs / "serve.log", logs / "native-host.log"):  # serve.log's banner has the page's token address
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path == logs else 0o600), path

    native_home.kill_server()  # a crash: the kernel drops the lock with the process
    _, [again] = native_home.host({"type": "connect"})
    assert again["ok"] and again["started_now"] is True and again["token"] == token
    assert native_home.server_pid() != pid and _health(native_home, token)["status"] == "ok"


@pytest.mark.slow
def test_a_server_the_host_started_stops_when_idle(tmp_path):
    home = NativeHome(tmp_path / "home", idle_s=3)
    home.root.mkdir()
    try:
        _, [reply] = home.host({"type": "connect"})
        assert reply["ok"], reply
        pid = home.server_pid()
        time.sleep(2)
        assert _health(home, reply["token"])["status"] == "ok"  # a request: the idle clock starts again
        assert alive(pid)
        assert wait_gone(pid, timeout=60), "the idle server did not stop"
        log = (home.root / ".cache" / "medlens" / "logs" / "serve.log").read_text()
        assert "idle_shutdown_s" in log and "MedLens: stopped." in log
        _, [status] = home.host({"type": "status"})
        assert status["running"] is False
    finally:
        home.kill_server()
