"""Containers and formats through the one loader, with real files built here from ../shared/data
images (fixtures/containers.py): the right number of images with the right places, the right
labels from the shipped model, and each bad-input family with its code while the good items
beside it are kept."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from fixtures.containers import (
    CHART, MRI, SCREENSHOT, XRAY, animation, docx, epub, fb2, jpeg, multipage_tiff, odp, odt, png, pptx,
    pydicom_file, still, tar_of, video, zip_of,
)
from medlens.commands.classify import classify_inputs
from medlens.ingest.items import Loaded
from medlens.ingest.load import Extractor, kind_of
from medlens.ingest.media_worker import media_workers
from medlens.ingest.pdf_workers import PdfWorkers
from medlens.settings import Settings

TWO = [XRAY, CHART]


@pytest.fixture
async def extract() -> AsyncIterator[Any]:
    """`extract(data, name, **settings)`: the loader's extraction with real worker processes."""
    pools: list[Any] = []

    async def run(data: bytes, name: str = "", **changes: Any) -> Loaded:
        settings = Settings(**changes)
        pdf, media = PdfWorkers(settings), media_workers(settings)
        pools.extend((pdf, media))
        return await Extractor(settings, pdf, asyncio.to_thread, media).extract(data, name)

    yield run
    for pool in pools:
        await pool.close()


def places(loaded: Loaded) -> list[dict[str, Any]]:
    return [{**item.place.fields(), **({"error": item.error.code} if item.error else {})} for item in loaded.items]


@pytest.mark.parametrize(("name", "build", "kind", "expected"), [
    ("r.docx", lambda: docx(TWO), "office", [{"member": "word/media/image1.jpg"}, {"member": "word/media/image2.jpg"}]),
    ("s.pptx", lambda: pptx(TWO), "office", [{"member": "ppt/media/image1.jpg"}, {"member": "ppt/media/image2.jpg"}]),
    ("t.xlsx", lambda: zip_of({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<workbook/>",
                               "xl/media/image1.png": png(CHART)}), "office", [{"member": "xl/media/image1.png"}]),
    ("t.odt", lambda: odt([XRAY]), "office", [{"member": "Pictures/figure0.jpg"}]),
    ("s.odp", lambda: odp(TWO), "office", [{"member": "Pictures/figure0.jpg"}, {"member": "Pictures/figure1.jpg"}]),
    ("b.epub", lambda: epub(TWO), "document", [{"page": 1, "index": 1}, {"page": 2, "index": 1}]),
    ("b.fb2", lambda: fb2(TWO), "document", [{"page": 1, "index": 1}, {"page": 2, "index": 1}]),
    ("c.cbz", lambda: zip_of({"001.jpg": jpeg(XRAY), "002.jpg": jpeg(CHART)}), "document",
     [{"page": 1, "index": 1}, {"page": 2, "index": 1}]),
    ("t.tif", lambda: multipage_tiff([XRAY, CHART, MRI]), "frames", [{"page": 1}, {"page": 2}, {"page": 3}]),
    ("a.zip", lambda: zip_of({"scans/x.jpg": jpeg(XRAY), "notes.txt": b"not picked", "c.png": png(CHART),
                              "deck.pptx": pptx([MRI])}), "archive",
     [{"member": "scans/x.jpg"}, {"member": "c.png"}, {"member": "deck.pptx/ppt/media/image1.jpg"}]),
    ("a.tgz", lambda: tar_of({"x.jpg": jpeg(XRAY), "inner.zip": zip_of({"c.png": png(CHART)})}), "archive",
     [{"member": "x.jpg"}, {"member": "inner.zip/c.png"}]),
    ("a.tar", lambda: tar_of({"x.jpg": jpeg(XRAY)}, mode="w"), "archive", [{"member": "x.jpg"}]),
    ("v.mp4", lambda: video(TWO), "video", [{"frame": k} for k in range(8)]),
    ("v.webm", lambda: video(TWO, codec="libvpx-vp9", container="webm"), "video", [{"frame": k} for k in range(8)]),
    ("ct", lambda: pydicom_file("CT_small.dcm").read_bytes(), "dicom", [{}]),  # no suffix: the DICM preamble says it
    ("mr.dcm", lambda: pydicom_file("MR_small_jp2klossless.dcm").read_bytes(), "dicom", [{}]),
    ("two.dcm", lambda: pydicom_file("SC_rgb_rle_2frame.dcm").read_bytes(), "dicom", [{"frame": 0}, {"frame": 1}]),
])
async def test_each_container_gives_its_images_in_their_places(extract: Any, name: str, build: Any, kind: str,
                                                             expected: list[dict[str, Any]]) -> None:
    data = build()
    assert kind_of(data, name) == kind
    loaded = await extract(data, name)
    got = places(loaded)
    if kind == "video":  # times are the sampled frames' own, spread over the 2 s clip
        times = [p.pop("time_s") for p in got]
        assert times == sorted(times) and 0 < times[0] < 0.4 and 1.6 < times[-1] <= 2.0
    assert got == expected
    assert all(item.image is not None and min(item.image.size) >= 16 for item in loaded.items)


async def test_dicom_windowing_modality_tag_and_monochrome1(extract: Any) -> None:
    import numpy as np
    import pydicom

    ct = await extract(pydicom_file("CT_small.dcm").read_bytes(), "ct.dcm")
    (item,) = ct.items
    assert item.dicom_modality == "CT" and item.image is not None
    pixels = np.asarray(item.image.convert("L"))
    assert pixels.min() == 0 and pixels.max() == 255  # the window spans the full grey range
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    ds.PhotometricInterpretation = "MONOCHROME1"
    buf = io.BytesIO()
    ds.save_as(buf)
    inverted = (await extract(buf.getvalue(), "ct1.dcm")).items[0]
    assert inverted.image is not None
    assert np.array_equal(np.asarray(inverted.image.convert("L")), 255 - pixels)


@pytest.mark.parametrize("fmt", ["AVIF", "JPEG2000", "HEIF", "JXL"])
async def test_new_still_formats_decode(extract: Any, fmt: str) -> None:
    loaded = await extract(still(XRAY, fmt), "x")
    assert loaded.kind == "image" and loaded.items[0].width == 482


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
async def test_animations_give_spread_frames_in_one_group(extract: Any, fmt: str) -> None:
    frames = [CHART, SCREENSHOT, XRAY, CHART, SCREENSHOT, CHART, MRI]
    loaded = await extract(animation(frames, fmt), f"a.{fmt.lower()}", frames_per_image=4)
    assert loaded.pick == "most_medical" and [p["frame"] for p in places(loaded)] == [0, 2, 4, 6]
    assert {item.group for item in loaded.items} == {""}


# ---------------------------------------------------------------- bad inputs, good neighbours


def zip_bomb_member() -> bytes:
    return zip_of({"ok.jpg": jpeg(XRAY), "bomb.png": b"\0" * 30_000_000})


def traversal_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ok.jpg", jpeg(XRAY))
        zf.writestr("../../etc/evil.png", png(CHART))
        zf.writestr("/abs/evil.png", png(CHART))
        link = zipfile.ZipInfo("link.png")
        link.external_attr = 0o120777 << 16  # a symlink, as `zip --symlinks` records it
        zf.writestr(link, "/etc/passwd")
    return buf.getvalue()


def tar_with_link() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        body = jpeg(XRAY)
        info = tarfile.TarInfo("ok.jpg")
        info.size = len(body)
        tf.addfile(info, io.BytesIO(body))
        link = tarfile.TarInfo("passwd.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    return buf.getvalue()


def encrypted_docx() -> bytes:
    from msoffcrypto.format.ooxml import OOXMLFile

    out = io.BytesIO()
    OOXMLFile(io.BytesIO(docx([XRAY]))).encrypt("secret", out)
    return out.getvalue()


async def test_bad_members_get_their_codes_beside_good_ones(extract: Any) -> None:
    bomb = await extract(zip_bomb_member(), "b.zip")
    assert places(bomb) == [{"member": "ok.jpg"}, {"member": "bomb.png", "error": "archive_bomb"}]
    unsafe = await extract(traversal_zip(), "t.zip")
    assert places(unsafe) == [{"member": "ok.jpg"}, {"member": "../../etc/evil.png", "error": "unsafe_member"},
                              {"member": "/abs/evil.png", "error": "unsafe_member"},
                              {"member": "link.png", "error": "unsafe_member"}]
    linked = await extract(tar_with_link(), "l.tar")
    assert places(linked) == [{"member": "ok.jpg"}, {"member": "passwd.png", "error": "unsafe_member"}]
    total = await extract(zip_of({"a.jpg": jpeg(XRAY), "b.jpg": jpeg(XRAY)}), "t.zip",
                          max_archive_bytes=len(jpeg(XRAY)) + 10)
    assert places(total) == [{"member": "a.jpg"}, {"member": "b.jpg", "error": "archive_bomb"}]
    nested = zip_of({"x.jpg": jpeg(XRAY), "in.zip": zip_of({"deeper.zip": zip_of({"c.png": png(CHART)})})})
    deep = await extract(nested, "n.zip", max_archive_depth=2)
    assert places(deep) == [{"member": "x.jpg"}, {"member": "in.zip/deeper.zip", "error": "archive_bomb"}]
    office = await extract(zip_of({"e.docx": encrypted_docx(), "ok.docx": docx([XRAY])}), "o.zip")
    assert places(office) == [{"member": "e.docx", "error": "encrypted"}, {"member": "ok.docx/word/media/image1.jpg"}]


@pytest.mark.parametrize(("build", "changes", "code"), [
    (encrypted_docx, {}, "encrypted"),
    (lambda: (lambda v: v[: len(v) // 2])(video(TWO)), {}, "decode_failed"),  # truncated MP4: its index is cut off
    (lambda: video(TWO), {"max_video_s": 1.0}, "too_long"),
    (lambda: pydicom_file("rtplan.dcm").read_bytes(), {}, "no_images"),
    (lambda: zip_of({"x.jpg": jpeg(XRAY)})[:60], {}, "decode_failed"),
])
async def test_a_bad_container_as_a_whole_gets_its_code(extract: Any, build: Any, changes: dict[str, Any], code: str) -> None:
    from medlens.errors import MedLensError

    with pytest.raises(MedLensError) as info:
        await extract(build(), "", **changes)
    assert info.value.code == code


@pytest.mark.parametrize(("module", "name", "build"), [
    ("pydicom", "ct.dcm", lambda: pydicom_file("CT_small.dcm").read_bytes()),
    ("av", "v.mp4", lambda: video(TWO)),
])
def test_a_missing_extra_is_missing_dependency_naming_it(tmp_path: Path, module: str, name: str, build: Any) -> None:
    """What a lean install looks like to Python (the module cannot be imported), in a fresh
    interpreter, media workers included (they inherit the blocked import through a sitecustomize)."""
    (tmp_path / name).write_bytes(build())
    (tmp_path / "sitecustomize.py").write_text(f"import sys\nsys.modules[{module!r}] = None\n", encoding="utf-8")
    code = (
        "import asyncio, sys\n"
        "from medlens.ingest.load import Extractor\n"
        "from medlens.ingest.media_worker import media_workers\n"
        "from medlens.ingest.pdf_workers import PdfWorkers\n"
        "from medlens.errors import MedLensError\n"
        "from medlens.settings import Settings\n"
        "async def main():\n"
        "    s = Settings()\n"
        "    async with PdfWorkers(s) as p, media_workers(s) as m:\n"
        "        try:\n"
        f"            await Extractor(s, p, asyncio.to_thread, m).extract(open({str(tmp_path / name)!r}, 'rb').read(), {name!r})\n"
        "        except MedLensError as exc:\n"
        "            print(exc.code, exc.message)\n"
        "asyncio.run(main())\n"
    )
    env = {**__import__("os").environ, "PYTHONPATH": f"{tmp_path}:{__import__('os').environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert proc.stdout.startswith("missing_dependency "), proc.stdout + proc.stderr
    assert f"medlens[{'dicom' if module == 'pydicom' else 'video'}]" in proc.stdout


async def test_svg_emf_and_wmf_are_unsupported(extract: Any) -> None:
    from medlens.errors import MedLensError

    emf = b"\x01\x00\x00\x00" + b"\x00" * 36 + b" EMF" + b"\x00" * 60
    wmf = b"\xd7\xcd\xc6\x9a" + b"\x00" * 60
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
    loaded = await extract(zip_of({"word/media/image1.emf": emf, "word/media/image2.wmf": wmf,
                                   "word/media/image3.jpg": jpeg(XRAY), "[Content_Types].xml": b"<Types/>",
                                   "word/document.xml": b"<w/>"}), "r.docx")
    assert places(loaded) == [{"member": "word/media/image1.emf", "error": "unsupported_format"},
                              {"member": "word/media/image2.wmf", "error": "unsupported_format"},
                              {"member": "word/media/image3.jpg"}]
    with pytest.raises(MedLensError) as info:
        await extract(svg, "x.svg")
    assert info.value.code == "unsupported_format"


# ---------------------------------------------------------------- labels through the model


async def test_labels_through_classify(tmp_path: Path, classifier: Any) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "deck.pptx").write_bytes(pptx([XRAY, CHART]))
    (corpus / "clip.mp4").write_bytes(video([CHART, XRAY]))
    (corpus / "anim.gif").write_bytes(animation([CHART, SCREENSHOT, XRAY], "GIF"))
    (corpus / "ct.dcm").write_bytes(pydicom_file("CT_small.dcm").read_bytes())
    rows = await classify_inputs([str(corpus / n) for n in ("deck.pptx", "clip.mp4", "anim.gif", "ct.dcm")],
                                 Settings(), classifier=classifier)
    labels = [(Path(r["source"]).name, r.get("member"), r.get("frame"), r.get("role"), r["label"]) for r in rows]
    assert labels[:2] == [("deck.pptx", "ppt/media/image1.jpg", None, None, "medical"),
                          ("deck.pptx", "ppt/media/image2.jpg", None, None, "non-medical")]
    clip = [r for r in rows if r["source"].endswith("clip.mp4")]
    assert [r["label"] for r in clip[:8]] == ["non-medical"] * 4 + ["medical"] * 4  # chart first, then the X-ray
    assert clip[8]["role"] == "summary" and clip[8]["label"] == "medical" and clip[8]["time_s"] > 1.0
    (anim,) = [r for r in rows if r["source"].endswith("anim.gif")]
    assert (anim["frame"], anim["label"]) == (2, "medical")  # the most medical frame, with its index
    (ct,) = [r for r in rows if r["source"].endswith("ct.dcm")]
    assert (ct["label"], ct["dicom_modality"]) == ("medical", "CT")
