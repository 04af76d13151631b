"""The security audit's hostile-input families (issue 20): each was reproduced on the old code
(the figure in its docstring) and must now cost only its own item, quickly and in bounded memory."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import tracemalloc
from io import BytesIO
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from PIL import Image

from fixtures.bombs import hostile_page, jpeg_without_scan_data, pdf_of_large_images, progressive_scan_bomb
from fixtures.data import image
from fixtures.server import server_settings
from medlens import cli
from medlens.errors import MedLensError, plain_reason
from medlens.image_modes import to_rgb
from medlens.ingest.decode import decode_image, jpeg_scans
from medlens.ingest.page import page_images
from medlens.ingest.pdf import extract_pdf_images
from medlens.serve.app import init_app, runner_options
from medlens.serve.json_body import parse_json_body
from medlens.settings import Settings
from medlens.terminal_text import printable

PHOTO = "non-medical/photo/skimage-data_astronaut.jpg"


def _code(data: bytes, settings: Settings) -> MedLensError:
    with pytest.raises(MedLensError) as info:
        decode_image(data, settings)
    return info.value


# ---------------------------------------------------------------- images


def test_progressive_scan_bomb_is_refused_before_decoding() -> None:
    """Old: 6,000 repeats of one ~100-byte scan (121 kB) took 24.8 s to decode, holding a decode thread."""
    error = _code(progressive_scan_bomb(6000), Settings())
    assert error.code == "decode_failed" and "max_jpeg_scans" in error.message


def test_ordinary_progressive_and_baseline_jpegs_still_decode() -> None:
    with Image.open(image(PHOTO)) as src:
        photo = src.convert("RGB")
    for progressive in (False, True):
        buf = BytesIO()
        photo.save(buf, "JPEG", progressive=progressive, quality=90)
        scans, entropy = jpeg_scans(buf.getvalue(), 64)
        assert (scans > 1) == progressive and entropy > 1000
        assert decode_image(buf.getvalue(), Settings()).width == 512
    few = progressive_scan_bomb(3, side=64)  # a handful of repeated scans is still a picture
    assert decode_image(few, Settings(), target_side=0).image.size == (64, 64)
    assert _code(few, Settings(max_jpeg_scans=5)).code == "decode_failed"


@pytest.mark.parametrize("scan_header", [True, False], ids=["empty-scan", "no-scan"])
def test_jpeg_with_no_scan_data_is_decode_failed(scan_header: bool) -> None:
    """Old: a JPEG with every header but not one byte of scan data was classified "ok" (grey)."""
    error = _code(jpeg_without_scan_data(scan_header=scan_header), Settings())
    assert error.code == "decode_failed"


def test_sixteen_bit_windowing_stays_within_its_block_budget() -> None:
    """Old: float64 windowing took ~35 bytes a pixel on top of the image (a 7000 x 7000 16-bit PNG
    of 95 kB peaked at 1.7 GB); now the scratch is one float32 row block plus the 8-bit result."""
    side = 2000
    ramp = np.tile(np.linspace(0, 65535, side).astype(np.uint16), (side, 1))
    img = Image.fromarray(ramp)
    assert img.mode.startswith("I;16")
    block = 1 << 20
    tracemalloc.start()
    try:
        rgb = to_rgb(img, block_bytes=block)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    pixels = side * side
    # the 16-bit pixels twice (Pillow's bytes, then the array), the uint8 result, a float32 block
    assert peak < 6 * pixels + 2 * block + 4 * (1 << 20), peak
    assert rgb.mode == "RGB" and rgb.getpixel((0, 0)) == (0, 0, 0) and rgb.getpixel((side - 1, 0)) == (255, 255, 255)


def test_float_images_with_nan_and_inf_window_sensibly() -> None:
    arr = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    arr[0, :8] = [np.nan, np.inf, -np.inf, 0, 0, 0, 0, 0]
    rgb = to_rgb(Image.fromarray(arr, mode="F"), block_bytes=64)  # a block of one row
    values = np.asarray(rgb)[..., 0]
    assert values[0, 1] == 255 and values[0, 2] == 0 and values[-1, -1] == 255


def test_decode_errors_carry_no_object_reprs_or_addresses() -> None:
    """Old: `cannot identify image file <_io.BytesIO object at 0x7ff2…>` reached pages in badge titles."""
    error = _code(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, Settings())
    assert error.code == "decode_failed"
    assert "0x" not in error.message and "object at" not in error.message, error.message
    assert plain_reason(ValueError("bad <_io.BytesIO object at 0x7f12deadbeef> here")) == "bad the input here"


# ---------------------------------------------------------------- the CLI's terminal


def test_printable_escapes_controls_and_reordering_characters() -> None:
    assert printable("ok name.png") == "ok name.png"
    assert printable("a\x1b]52;c;SGVsbG8=\x07b") == "a\\e]52;c;SGVsbG8=\\x07b"
    assert printable("row\nsplit\r\t") == "row\\nsplit\\r\\t"
    assert printable("x\u202egnp.exe\x9b2J") == "x\\u202egnp.exe\\x9b2J"
    assert printable("Röntgen 肺.png") == "Röntgen 肺.png"


def test_classify_table_escapes_hostile_file_names_and_json_stays_exact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Old: a file named with OSC 52 / title escapes and a newline was printed raw into the table."""
    monkeypatch.setenv("MEDLENS_CONFIG_DIR", str(tmp_path / "config"))
    name = "scan\x1b]0;owned\x07\x1b]52;c;cm0gLXJmIH4=\x07\nfake row.png"
    path = tmp_path / name
    path.write_bytes(b"not an image at all, just text\n")
    assert cli.main(["classify", "--no-progress", str(path)]) == 1
    out, err = capsys.readouterr()
    assert "\x1b" not in out + err and "\x07" not in out + err
    assert len(out.strip().splitlines()) == 2  # header + one row: the newline did not split it
    assert "52;c;cm0gLXJmIH4=\\x07\\nfake" in out
    assert cli.main(["classify", "--json", "--no-progress", str(path)]) == 1
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["source"] == str(path)  # exact, escapes and all: a program reads this


# ---------------------------------------------------------------- pages


XRAY = "medical/xray/pydicom-data_RG1_J2KI.jpg"


@pytest.mark.timeout(120)
async def test_hostile_markup_is_parsed_off_the_loop_in_linear_time(api: Any, test_site: Any) -> None:
    """Old: html.parser on the event loop; 150 KiB of `<a` froze every route for 12-50 s, 5 MiB past 120 s."""
    url = test_site.serve("hostile.html", hostile_page(5 * 1024 - 1), "text/html")
    status, body = await api.post_json("/v1/classify/page", {"url": url})
    assert status == 200, body
    assert body["images_found"] == 0 and body["results"] == []


def test_page_parse_stops_at_its_tag_budget_and_its_clock() -> None:
    html = "<!doctype html>" + "".join(f'<img src="/{n}.png" alt="">' for n in range(5000))
    full = page_images(html, "https://example.org/", Settings())
    assert len(full.urls) == 5000 and not full.truncated
    capped = page_images(html, "https://example.org/", Settings(max_page_tags=300))
    assert capped.truncated and 0 < len(capped.urls) <= 150  # each <img> is a tag and two attributes
    assert capped.urls == full.urls[: len(capped.urls)]
    big = html * 40  # more than one parse chunk
    timed_out = page_images(big, "https://example.org/", Settings(page_parse_time_s=0))
    assert timed_out.truncated and timed_out.urls == full.urls[: len(timed_out.urls)]


@pytest.mark.parametrize("charset", ["idna", "punycode", "base64", "no-such-codec", "utf-16", '"utf-8"', "rot13"])
async def test_odd_charsets_are_one_page_not_a_500(api: Any, test_site: Any, charset: str) -> None:
    """Old: a page served as `charset=idna` answered 500 internal."""
    page = f'<!doctype html><title>x</title><img src="{test_site.url("/images/" + XRAY)}">'.encode()
    url = test_site.serve(f"charset-{charset.strip(chr(34))}.html", page, f"text/html; charset={charset}")
    status, body = await api.post_json("/v1/classify/page", {"url": url})
    assert status == 200, body
    if charset != "utf-16":  # bytes that are not UTF-16 decode to nothing useful, but never fail
        assert [r["label"] for r in body["results"]] == ["medical"], body


def test_classify_keeps_every_row_when_a_page_has_an_odd_charset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, test_site: Any
) -> None:
    """Old: `medlens classify` aborted with a traceback on a `charset=idna` page and lost every row."""
    monkeypatch.setenv("MEDLENS_CONFIG_DIR", str(tmp_path / "config"))
    page = f'<!doctype html><img src="{test_site.url("/images/" + XRAY)}">'.encode()
    url = test_site.serve("idna.html", page, "text/html; charset=idna")
    code = cli.main(["classify", "--json", "--no-progress", "--allow-private", str(image(PHOTO)), url, str(image(XRAY))])
    rows = json.loads(capsys.readouterr().out)
    assert code == 0, rows
    assert [r["status"] for r in rows] == ["ok", "ok", "ok"]
    assert rows[1]["label"] == "medical"


# ---------------------------------------------------------------- request bodies and connections


def test_flat_json_is_refused_from_its_bytes_before_parsing() -> None:
    """Old: a 30 MB body of `1,1,1,…` became 15 M ints (+1.2 GB, 3.4 s on the event loop) first."""
    raw = b'{"urls": [' + b"1," * (4 * 1024 * 1024) + b"1]}"
    tracemalloc.start()
    try:
        with pytest.raises(MedLensError) as info:
            parse_json_body(raw, max_depth=32, max_values=10_000)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.code == "invalid_json" and "max_json_values" in info.value.message
    assert peak < 3 * len(raw), peak  # the strings-blanked copy as it is built, never 4 M objects (~150 MB)


def test_json_strings_may_hold_brackets_quotes_and_megabytes() -> None:
    data_url = "data:image/png;base64," + "A" * 2_000_000 + "[[[{{{"
    body = {"urls": [data_url, 'a "quoted" [x] {y}', "\\\\", "\\\"[[["], "page_url": "https://example.org/?a=[1]"}
    assert parse_json_body(json.dumps(body).encode(), max_depth=2, max_values=30) == body  # the bound counts brackets in strings too
    for raw, values, words in ((b"[" * 40 + b"]" * 40, 100, "nested"), (b'{"a": [1, 2, 3, 4]}', 4, "values"),
                               (b"{not json", 4, "not valid")):
        with pytest.raises(MedLensError, match=words):
            parse_json_body(raw, max_depth=32, max_values=values)


async def test_every_multipart_part_counts_against_the_body_cap(make_api: Any) -> None:
    """Old: parts not named `file` were skipped unread and uncounted (100 MB accepted)."""
    api = await make_api(max_body_bytes=1024 * 1024)
    for route in ("/v1/classify/image", "/v1/classify/pdf"):
        writer = aiohttp.MultipartWriter("form-data")
        writer.append(BytesIO(b"x" * (2 * 1024 * 1024))).set_content_disposition("form-data", name="padding")
        writer.append(image(PHOTO).read_bytes()).set_content_disposition("form-data", name="file", filename="p.jpg")
        resp = await api.client.post(route, data=writer, headers=api.headers())
        assert (resp.status, (await resp.json())["error"]["code"]) == (413, "body_too_large"), route


@contextlib.asynccontextmanager
async def _served(classifier: Any, tmp_path: Path, **changes: Any) -> AsyncIterator[int]:
    """The real app behind the runner `medlens serve` builds (its options included), on a loopback port."""
    settings = server_settings(tmp_path / "config", **changes)
    runner = web.AppRunner(init_app(settings, classifier=classifier), access_log=None, **runner_options(settings))
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    async with asyncio.timeout(seconds):
        return await reader.read()  # until the server closes the connection


async def test_idle_and_trickling_connections_are_closed(classifier: Any, tmp_path: Path) -> None:
    """Old: no header or idle timeout (aiohttp's default keeps an idle connection an hour; 500 stayed open)."""
    async with _served(classifier, tmp_path, idle_timeout_s=1.0) as port:
        silent_reader, silent = await asyncio.open_connection("127.0.0.1", port)
        trickle_reader, trickle = await asyncio.open_connection("127.0.0.1", port)
        trickle.write(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # headers that never end
        await trickle.drain()
        assert await _closed_within(silent_reader, 15) == b""
        assert await _closed_within(trickle_reader, 15) == b""
        for writer in (silent, trickle):
            writer.close()


async def test_a_body_that_never_arrives_is_a_408(classifier: Any, tmp_path: Path) -> None:
    async with _served(classifier, tmp_path, body_timeout_s=1.0, token_required=False) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"POST /v1/classify HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                     "Connection: close\r\nContent-Length: 1000\r\n\r\n{\"urls\": [".encode())
        await writer.drain()
        answer = await _closed_within(reader, 20)
        assert answer.startswith(b"HTTP/1.1 408") and b'"body_timeout"' in answer, answer[:300]
        writer.close()


async def test_malformed_requests_log_one_warning_line(
    classifier: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Old: every malformed request logged an ERROR with a traceback."""
    caplog.set_level(logging.DEBUG, logger="aiohttp.server")
    async with _served(classifier, tmp_path) as port:
        for garbage in (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nno colon here\r\n\r\n", b"GET /\x00 HTTP/1.1\r\n\r\n",
                        b"GET / HTTP/1.1\r\nContent-Length: -5\r\n\r\n"):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(garbage)
            await writer.drain()
            assert (await _closed_within(reader, 10)).split(b" ", 2)[1] == b"400"
            writer.close()
    records = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert records and all(r.levelno == logging.WARNING and r.exc_info is None for r in records), records
    assert all(r.getMessage().startswith("malformed request from 127.0.0.1: ") for r in records)
    assert all("\n" not in r.getMessage() and "0x" not in r.getMessage() for r in records)


async def test_every_api_answer_says_nosniff_same_origin_and_no_store(api: Any) -> None:
    """Old: API answers had none of the three."""
    answers = [
        await api.client.get("/v1/health"),
        await api.client.get("/v1/health", headers=api.headers()),
        await api.client.post("/v1/classify", json={"urls": []}),  # 401
        await api.client.get("/v1/nothing-here"),  # 404
        await api.client.post("/v1/classify", json={"urls": []}, headers=api.headers()),
        await api.client.get("/v1/health", headers={"Origin": "https://attacker.example"}),  # 403
    ]
    for resp in answers:
        assert resp.headers["X-Content-Type-Options"] == "nosniff", resp
        assert resp.headers["Cross-Origin-Resource-Policy"] == "same-origin"
        assert resp.headers["Cache-Control"] == "no-store"


# ---------------------------------------------------------------- pixel budgets


def test_a_pdf_keeps_images_only_up_to_its_pixel_budget() -> None:
    """Old: ten 49-Mpx images in a 1.4 MB PDF added 2.3 GB to the worker and 2.1 GB to the server."""
    data = pdf_of_large_images(6, 600)  # 0.36 Mpx each
    everything = extract_pdf_images(data, Settings())
    assert len(everything.images) == 6 and not everything.truncated
    capped = extract_pdf_images(data, Settings(max_pdf_pixels=3 * 360_000))
    assert len(capped.images) == 3 and capped.truncated and capped.skipped_large == 3
    assert [i.page for i in capped.images] == [1, 2, 3]


async def test_a_request_decodes_images_only_up_to_its_pixel_budget(make_api: Any) -> None:
    api = await make_api(max_request_pixels=3 * 512 * 512, cache_entries=0)
    with Image.open(image(PHOTO)) as src:
        photo = src.convert("RGB")
    form = aiohttp.FormData()
    for n in range(5):  # five distinct 512x512 PNGs (PNGs decode at full size)
        buf = BytesIO()
        photo.rotate(90 * (n % 4)).crop((0, 0, 512 - n, 512)).save(buf, "PNG")
        form.add_field("file", buf.getvalue(), filename=f"{n}.png", content_type="image/png")
    resp = await api.client.post("/v1/classify/image", data=form, headers=api.headers())
    results = (await resp.json())["results"]
    assert sorted(r["status"] for r in results) == ["error", "error", "ok", "ok", "ok"], results
    assert all(r["error"]["code"] == "too_many_pixels" for r in results if r["status"] == "error")
    again = aiohttp.FormData()  # the next request has a budget of its own
    buf = BytesIO()
    photo.save(buf, "PNG")
    again.add_field("file", buf.getvalue(), filename="again.png", content_type="image/png")
    resp = await api.client.post("/v1/classify/image", data=again, headers=api.headers())
    assert [r["status"] for r in (await resp.json())["results"]] == ["ok"]


def test_pdf_images_leave_their_process_at_the_model_side() -> None:
    """What the worker hands over is what the model gets: the same pixels as reducing on the server."""
    from medlens.pipeline.sizing import MODEL_SIDE, shrink_for_model

    assert Settings().pdf_image_side == MODEL_SIDE
    data = pdf_of_large_images(2, 1000)
    full = extract_pdf_images(data, Settings())
    small = extract_pdf_images(data, Settings(), reduce_to=MODEL_SIDE)
    for a, b in zip(full.images, small.images):
        assert (b.width, b.height) == (a.width, a.height) == (1000, 1000) and b.image.size == (250, 250)
        assert shrink_for_model(a.image).tobytes() == b.image.tobytes() and b.thumbnail == a.thumbnail


async def test_pdf_answer_from_a_worker_reports_the_original_size(make_api: Any) -> None:
    api = await make_api()
    resp = await api.client.post("/v1/classify/pdf?name=big.pdf", data=pdf_of_large_images(2, 1000),
                                 headers={**api.headers(), "Content-Type": "application/pdf"})
    body = await resp.json()
    assert resp.status == 200 and body["images"] == 2, body
    assert [(r["width"], r["height"]) for r in body["results"]] == [(1000, 1000)] * 2
