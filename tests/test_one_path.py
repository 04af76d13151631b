"""One corpus through every path: `medlens classify`, `medlens batch` (local; Ray in the slow
test), the upload route, the URL route (files served by a real loopback HTTP server) and the
video route give the same rows, places, labels and error codes, because they all load through
ingest/load.py. (The web page posts its drops to the upload route checked here.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import FormData, web

from fixtures.containers import (
    CHART, MRI, SCREENSHOT, XRAY, animation, docx, epub, jpeg, multipage_tiff, png, pptx, pydicom_file, tar_of, video,
    zip_of,
)
from fixtures.server import MakeApi
from medlens.batch.job import BatchOptions, run_batch
from medlens.batch.output import read_rows
from medlens.commands.classify import classify_inputs
from medlens.ingest.sources import expand_inputs
from medlens.pipeline.pipeline import flatten
from medlens.settings import Settings

PROBABILITY_TOL = 1e-3


def build_corpus(folder: Path) -> dict[str, bytes]:
    files = {
        "deck.pptx": pptx([XRAY, CHART]),
        "report.docx": docx([MRI]),
        "bundle.zip": zip_of({"scans/x.jpg": jpeg(XRAY), "../evil.png": png(CHART),
                              "inner.tgz": tar_of({"c.png": png(CHART)}), "notes.txt": b"skipped by suffix"}),
        "nothing.zip": zip_of({"notes.txt": b"no pictures here"}),
        "anim.gif": animation([CHART, SCREENSHOT, XRAY], "GIF"),
        "scan.tif": multipage_tiff([MRI, CHART]),
        "ct.dcm": pydicom_file("CT_small.dcm").read_bytes(),
        "plan.dcm": pydicom_file("rtplan.dcm").read_bytes(),
        "clip.mp4": video([CHART, XRAY]),
        "book.epub": epub([XRAY]),
        "photo.jpg": jpeg(SCREENSHOT),
        "broken.png": png(CHART)[:300],
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def _code(row: dict[str, Any]) -> str | None:
    if "error_code" in row:
        return row["error_code"]
    return row["error"]["code"] if row.get("error") else None


def normalise(rows: list[dict[str, Any]], file_of: Any) -> dict[tuple, tuple]:
    """(file, member, page, index, frame, role) -> (status, label, code, time, probability)."""
    out: dict[tuple, tuple] = {}
    for row in rows:
        key = (file_of(row), row.get("member"), row.get("page"), row.get("index"), row.get("frame"), row.get("role"))
        assert key not in out, f"two rows for {key}"
        time_s = row.get("time_s")
        out[key] = (row["status"], row["label"], _code(row), round(time_s, 2) if time_s is not None else None,
                    row["probability"])
    return out


def assert_same(left: dict[tuple, tuple], right: dict[tuple, tuple], what: str) -> None:
    assert left.keys() == right.keys(), f"{what}: {sorted(set(left) ^ set(right), key=str)}"
    for key, a in left.items():
        b = right[key]
        assert a[:4] == b[:4], (what, key, a, b)
        if a[4] is not None:
            assert abs(a[4] - b[4]) <= PROBABILITY_TOL, (what, key, a, b)


def api_rows(results: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    rows = []
    for name, answer in zip(names, results):
        rows.extend({**row, "_file": name} for row in flatten(answer))
    return rows


async def test_one_corpus_through_every_path(tmp_path: Path, classifier: Any, make_api: MakeApi,
                                             aiohttp_server: Any) -> None:
    folder = tmp_path / "corpus"
    files = build_corpus(folder)
    names = sorted(files)

    cli = normalise(await classify_inputs(expand_inputs([str(folder)]), Settings(), classifier=classifier),
                    lambda r: Path(r["source"]).name)
    assert cli[("anim.gif", None, None, None, 2, None)][:2] == ("ok", "medical")  # the most medical frame
    assert cli[("bundle.zip", "../evil.png", None, None, None, None)][2] == "unsafe_member"
    assert cli[("bundle.zip", "inner.tgz/c.png", None, None, None, None)][:2] == ("ok", "non-medical")
    assert cli[("nothing.zip", None, None, None, None, None)][:3] == ("skipped", None, "no_images")
    assert cli[("plan.dcm", None, None, None, None, None)][2] == "no_images"
    assert cli[("broken.png", None, None, None, None, None)][2] == "decode_failed"
    assert cli[("ct.dcm", None, None, None, None, None)][:2] == ("ok", "medical")
    assert sum(1 for key in cli if key[0] == "clip.mp4") == 9  # 8 frames and the video's summary

    run_batch([str(folder)], tmp_path / "out", Settings(), BatchOptions(progress=False), classifier=classifier)
    assert_same(cli, normalise(read_rows(tmp_path / "out"), lambda r: Path(r["source"]).name), "batch")

    api = await make_api()
    form = FormData()
    for name in names:
        form.add_field("file", files[name], filename=name, content_type="application/octet-stream")
    resp = await api.client.post("/v1/classify/image", data=form, headers=api.headers())
    assert resp.status == 200
    uploaded = (await resp.json())["results"]
    assert_same(cli, normalise(api_rows(uploaded, names), lambda r: r["_file"]), "upload route")

    site = web.Application()
    site.router.add_static("/files/", folder)
    server = await aiohttp_server(site)
    urls = [str(server.make_url(f"/files/{name}")) for name in names]
    fetched = await api.classify(urls)
    assert_same(cli, normalise(api_rows(fetched, names), lambda r: r["_file"]), "URL route")

    resp = await api.client.post("/v1/classify/video?name=clip.mp4", data=files["clip.mp4"],
                                 headers=api.headers(**{"Content-Type": "video/mp4"}))
    answer = await resp.json()
    assert resp.status == 200 and answer["frames"] == 8 and answer["duration_s"] == pytest.approx(2.0, abs=0.2)
    rows = [{**r, "_file": "clip.mp4"} for r in answer["results"]] + [{**answer["summary"], "role": "summary",
                                                                      "_file": "clip.mp4"}]
    video_cli = {key: value for key, value in cli.items() if key[0] == "clip.mp4"}
    assert_same(video_cli, normalise(rows, lambda r: r["_file"]), "video route")
    assert all(r["thumbnail"].startswith("data:image/jpeg;base64,") for r in answer["results"])


@pytest.mark.slow
def test_the_ray_engine_gives_the_same_rows(tmp_path: Path, classifier: Any, ray_cluster: Any) -> None:
    folder = tmp_path / "corpus"
    build_corpus(folder)
    run_batch([str(folder)], tmp_path / "local", Settings(), BatchOptions(progress=False), classifier=classifier)
    run_batch([str(folder)], tmp_path / "ray", Settings(), BatchOptions(engine="ray", progress=False, workers=1))
    name = lambda r: Path(r["source"]).name  # noqa: E731
    assert_same(normalise(read_rows(tmp_path / "local"), name), normalise(read_rows(tmp_path / "ray"), name), "ray")
