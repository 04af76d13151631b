"""`medlens native-host`: what the browser runs when the extension calls `runtime.sendNativeMessage`.

It answers two requests and nothing else:

- `{"type": "connect"}`: find the server, or start it in the background (see `server_process`),
  and answer its address and the pairing token, so the extension pairs with no code;
- `{"type": "status"}`: whether a server runs and who started it, starting nothing, saying no token.

Only the extension can reach this: the browser starts the host only for the extension IDs its
host manifest lists (`allowed_origins` / `allowed_extensions`) and hands the answer only to that
extension, never to a web page. Messages use the browsers' framing on stdin/stdout (`protocol`);
everything else the host says goes to its log file, so nothing can corrupt the channel. The host
exits when the browser closes its end (end of input).
"""

from __future__ import annotations

import logging
import sys
from typing import Any, BinaryIO, Callable, Sequence

from medlens import __version__
from medlens.errors import MedLensError
from medlens.native import protocol, server_process
from medlens.native.extension_ids import ALLOWED_CALLERS
from medlens.serve.security import read_token
from medlens.settings import Settings

log = logging.getLogger(__name__)

HOST_LOG = "native-host.log"
MAX_ID_CHARS = 64


def serve_browser(settings: Settings, caller: Sequence[str], stdin: BinaryIO, stdout: BinaryIO) -> int:
    """Answer messages until the browser closes the port (exit 0) or sends something that is not a
    native message (one error answer, then exit 1: the stream cannot be trusted any more)."""
    refused = _foreign_caller(caller)
    while True:
        try:
            message = protocol.read_message(stdin)
        except protocol.ProtocolError as exc:
            log.warning("unreadable message (%s): %s", exc.code, exc.message)
            _send(stdout, _error_answer(None, MedLensError(exc.code, exc.message)))
            return 1
        if message is None:
            log.info("the browser closed the port")
            return 0
        _send(stdout, answer(settings, message) if refused is None else _error_answer(None, refused))


def answer(settings: Settings, message: Any) -> dict[str, Any]:
    """The answer to one message: a known request's, or an invalid_request error naming what is known."""
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return _error_answer(None, MedLensError("invalid_request", 'a request is a JSON object like {"type": "connect"}'))
    request_id = message.get("id")
    if request_id is not None and not (isinstance(request_id, (str, int)) and len(str(request_id)) <= MAX_ID_CHARS):
        return _error_answer(None, MedLensError("invalid_request", f"`id` must be a string or number of at most {MAX_ID_CHARS} characters"))
    handler = REQUESTS.get(message["type"])
    unknown = set(message) - {"type", "id"}
    if handler is None or unknown:
        what = f"unknown request type {message['type'][:40]!r}" if handler is None else f"unknown fields {sorted(unknown)[:5]}"
        return _error_answer(request_id, MedLensError("invalid_request", f"{what}: this host answers {sorted(REQUESTS)} with no other fields"))
    try:
        reply = handler(settings)
    except MedLensError as exc:
        log.warning("%s failed: %s", message["type"], exc)
        return _error_answer(request_id, exc, message["type"])
    log.info("%s: %s", message["type"], {k: v for k, v in reply.items() if k != "token"})
    return _with_id({"type": message["type"], "ok": True, **reply}, request_id)


def _connect(settings: Settings) -> dict[str, Any]:
    return server_process.find_or_start(settings).to_message()


def _status(settings: Settings) -> dict[str, Any]:
    """No token here: a status check must never be the way the token leaves."""
    state = server_process.probe(settings, read_token(settings.config_path) or "")
    pid = server_process.host_started_pid(settings) if state == "ours" else None
    return {"running": state == "ours", "port_taken": state == "foreign", "url": server_process.server_url(settings),
            "started_by": None if state != "ours" else "medlens" if pid else "user",
            "idle_shutdown_s": settings.native_idle_shutdown_s, "version": __version__}


REQUESTS: dict[str, Callable[[Settings], dict[str, Any]]] = {"connect": _connect, "status": _status}


def _error_answer(request_id: Any, error: MedLensError, kind: str = "error") -> dict[str, Any]:
    return _with_id({"type": kind, "ok": False, "error": error.to_dict()}, request_id)


def _with_id(reply: dict[str, Any], request_id: Any) -> dict[str, Any]:
    return reply if request_id is None else {**reply, "id": request_id}


def _send(stdout: BinaryIO, reply: dict[str, Any]) -> None:
    try:
        protocol.write_message(stdout, reply)
    except protocol.ProtocolError as exc:  # never expected: answers are a few hundred bytes
        protocol.write_message(stdout, _error_answer(reply.get("id"), MedLensError("internal", exc.message)))


def _foreign_caller(caller: Sequence[str]) -> MedLensError | None:
    """Defence in depth: the browser names its caller (Chrome: the origin; Firefox: the manifest
    path and the add-on ID). A named caller that is not MedLens is refused even if a host manifest
    was edited to let it in. Run by hand (no caller named), the host answers: whoever can run it
    can read the token file anyway."""
    named = [arg for arg in caller if arg.startswith("chrome-extension://")
             or ("/" not in arg and ("@" in arg or arg.startswith("{")))]  # a Firefox ID, not the manifest's path
    if not named or any(arg.rstrip("/") in ALLOWED_CALLERS for arg in named):
        return None
    log.warning("refused caller %s", named)
    return MedLensError("forbidden_origin", "this native host serves only the MedLens extension")


def main(settings: Settings, caller: Sequence[str]) -> int:
    """Wire the real streams: messages on the binary stdout only, logs to the log file, and Python's
    own sys.stdout pointed at stderr so a stray print can never break the framing."""
    handler = logging.FileHandler(server_process.log_path(settings, HOST_LOG), encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for other in list(root.handlers):
        if other is not handler:
            root.removeHandler(other)
    messages_out = sys.stdout.buffer
    sys.stdout = sys.stderr
    log.info("started by %s", list(caller))
    return serve_browser(settings, caller, sys.stdin.buffer, messages_out)
