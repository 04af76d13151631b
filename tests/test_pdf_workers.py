"""PdfWorkers: warm extraction processes, reused across documents, replaced when they time out,
crash, are abandoned or have done their share, and never started for bytes that are not a PDF."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from fixtures.processes import extraction_children
from medlens.errors import MedLensError
from medlens.ingest.pdf import extract_pdf_images
from medlens.ingest.pdf_workers import PdfWorkers
from medlens.settings import Settings


def _read(docs_dir: Path, name: str) -> bytes:
    return (docs_dir / name).read_bytes()


async def _until(condition, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


async def _error(workers: PdfWorkers, data: bytes) -> str:
    with pytest.raises(MedLensError) as info:
        await workers.extract(data)
    return info.value.code


async def test_one_warm_process_serves_many_documents_and_errors(docs_dir: Path) -> None:
    settings = Settings(pdf_workers=1)
    report = _read(docs_dir, "report.pdf")
    direct = extract_pdf_images(report, settings, reduce_to=settings.pdf_image_side)  # what a worker hands over
    async with PdfWorkers(settings) as workers:
        first = await workers.extract(report)
        (pid,) = extraction_children()
        assert await _error(workers, _read(docs_dir, "encrypted.pdf")) == "pdf_encrypted"
        assert await _error(workers, b"%PDF-1.7\n" + bytes(range(256)) * 20) == "pdf_malformed"
        again = await workers.extract(report)
        assert (await workers.extract(_read(docs_dir, "no-images.pdf"))).images == []
        assert extraction_children() == [pid] and workers.started == 1
    assert extraction_children() == []
    for got in (first, again):
        assert [(i.page, i.index, i.bbox) for i in got.images] == [(i.page, i.index, i.bbox) for i in direct.images]
        assert all(a.image.tobytes() == b.image.tobytes() for a, b in zip(got.images, direct.images))


@pytest.mark.parametrize(("data", "code"), [(b"", "pdf_malformed"), (b"GIF89a not a pdf", "pdf_malformed"),
                                            (b"%PDF-1.7\n" + b"x" * 2000, "too_large")])
async def test_bytes_that_cannot_be_a_pdf_start_no_process(data: bytes, code: str) -> None:
    async with PdfWorkers(Settings(max_pdf_bytes=1000)) as workers:
        assert await _error(workers, data) == code
        assert workers.started == 0 and extraction_children() == []


async def test_a_document_over_the_time_limit_kills_its_process_and_the_next_one_works(docs_dir: Path) -> None:
    async with PdfWorkers(Settings(pdf_workers=1, pdf_time_limit_s=0.05)) as workers:
        workers.warm_up()
        await _until(lambda: len(extraction_children()) == 1 and workers.idle == 1)
        (slow,) = extraction_children()
        assert await _error(workers, _read(docs_dir, "many-images.pdf")) == "pdf_timeout"
        await _until(lambda: slow not in extraction_children())
        await _until(lambda: workers.idle == 1)  # its successor is started at once, in the background
        assert (await workers.extract(_read(docs_dir, "no-images.pdf"))).pages == 2
        assert workers.started == 2


async def test_a_crashed_process_costs_its_document_only(docs_dir: Path) -> None:
    async with PdfWorkers(Settings(pdf_workers=1)) as workers:
        workers.warm_up()
        await _until(lambda: workers.idle == 1)
        (doomed,) = extraction_children()
        extraction = asyncio.ensure_future(workers.extract(_read(docs_dir, "many-images.pdf")))
        await asyncio.sleep(0.05)
        os.kill(doomed, signal.SIGKILL)
        with pytest.raises(MedLensError) as info:
            await extraction
        assert info.value.code == "pdf_malformed"
        assert len((await workers.extract(_read(docs_dir, "report.pdf"))).images) == 16
        assert doomed not in extraction_children()


async def test_a_process_that_died_while_idle_is_replaced_not_fed(docs_dir: Path) -> None:
    async with PdfWorkers(Settings(pdf_workers=1)) as workers:
        workers.warm_up()
        await _until(lambda: workers.idle == 1)
        (dead,) = extraction_children()
        os.kill(dead, signal.SIGKILL)
        await _until(lambda: workers.idle == 0)  # the pool has seen it exit (not only the kernel)
        assert len((await workers.extract(_read(docs_dir, "report.pdf"))).images) == 16
        assert dead not in extraction_children() and workers.started == 2


async def test_an_abandoned_document_takes_its_process_with_it(docs_dir: Path) -> None:
    async with PdfWorkers(Settings(pdf_workers=1)) as workers:
        workers.warm_up()
        await _until(lambda: workers.idle == 1)
        (busy,) = extraction_children()
        extraction = asyncio.ensure_future(workers.extract(_read(docs_dir, "many-images.pdf")))
        await asyncio.sleep(0.05)
        extraction.cancel()
        await asyncio.gather(extraction, return_exceptions=True)
        await _until(lambda: busy not in extraction_children())
        assert len((await workers.extract(_read(docs_dir, "report.pdf"))).images) == 16  # no stale answer read


async def test_processes_are_recycled_after_their_share_of_documents(docs_dir: Path) -> None:
    data = _read(docs_dir, "no-images.pdf")
    served_by: list[int] = []
    async with PdfWorkers(Settings(pdf_workers=1, pdf_worker_max_jobs=2)) as workers:
        workers.warm_up()
        for _ in range(5):
            await _until(lambda: workers.idle == 1 and len(extraction_children()) == 1)
            served_by.extend(extraction_children())
            await workers.extract(data)
        assert workers.started == 3
    a, b, c = dict.fromkeys(served_by)
    assert served_by == [a, a, b, b, c]
    assert extraction_children() == []


async def test_more_documents_than_processes_wait_their_turn(docs_dir: Path) -> None:
    report = _read(docs_dir, "report.pdf")
    async with PdfWorkers(Settings(pdf_workers=2)) as workers:
        results = await asyncio.gather(*(workers.extract(report) for _ in range(5)))
        assert [len(r.images) for r in results] == [16] * 5
        assert len(extraction_children()) <= 2 and workers.started == 2


async def test_no_pool_means_a_fresh_process_per_document(docs_dir: Path) -> None:
    async with PdfWorkers(Settings(pdf_workers=0)) as workers:
        assert len((await workers.extract(_read(docs_dir, "report.pdf"))).images) == 16
        assert await _error(workers, _read(docs_dir, "encrypted.pdf")) == "pdf_encrypted"
        assert workers.started == 0 and extraction_children() == []
