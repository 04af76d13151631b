"""`ExtractionWorkers`: a few warm extraction processes, each killable, each replaced in time.

One pool class serves every kind of heavy or crash-prone extraction, each kind with its own
child program and protocol (`ChildKind`): PDFs (`PdfWorkers`, `python -m medlens.ingest.pdf`)
and videos and e-books (`media_workers`, `python -m medlens.ingest.media_worker`). What follows
is said of PDFs; the media kind has the same rules with `video_time_limit_s` and
`extraction_timeout`.

Starting Python and importing MuPDF costs about a second, which a fresh process per PDF paid on
every document, even an empty or broken one. So the server keeps up to `pdf_workers` processes
running `python -m medlens.ingest.pdf` and hands each PDF to an idle one; the protocol is the
child's own (see `pdf.py`). A process is still the unit of failure:

- a PDF that takes longer than `pdf_time_limit_s` gets its process killed (pdf_timeout);
- a process that dies mid-document (a MuPDF crash) costs that document only (pdf_malformed);
- a request that goes away mid-document takes its process with it (its answer is unread);
- after `pdf_worker_max_jobs` documents a process is retired, so whatever a hostile file left
  behind in it does not live on.

Each process lost is replaced in the background, so the next PDF finds one warm. Bytes that are
empty, too large or not a PDF at all are refused before any process is involved. With
`pdf_workers = 0` every PDF gets a fresh process of its own (the old way, kept for comparison).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from medlens.errors import MedLensError
from medlens.ingest.child_protocol import ChildReported, close_input, read_frame_async
from medlens.ingest.pdf import (
    READY,
    PdfExtraction,
    check_pdf_bytes,
    extract_pdf_images_limited,
    read_answer,
    request_frames,
    start_child,
)
from medlens.settings import Settings

log = logging.getLogger(__name__)

# How long a new process may take to import MuPDF and say READY before it counts as broken.
START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ChildKind:
    """One kind of extraction process: how to start it, talk to it and name its failures."""

    what: str                                            # in messages: "PDF", "video or e-book"
    start: Callable[[], Awaitable[asyncio.subprocess.Process]]
    ready: bytes                                         # what the child says once its imports are done
    request: Callable[[bytes, Settings, dict[str, Any]], bytes]
    answer: Callable[[asyncio.StreamReader], Awaitable[Any]]
    time_limit: Callable[[Settings], float]
    timeout_code: str
    crash_code: str
    check: Callable[[bytes, Settings], None]             # refusals that need no process


PDF_CHILD = ChildKind(
    "PDF", start_child, READY, lambda data, settings, job: request_frames(data, settings), read_answer,
    lambda settings: settings.pdf_time_limit_s, "pdf_timeout", "pdf_malformed", check_pdf_bytes,
)


class _DeadBeforeSent(Exception):
    """The process was gone before it could take the document."""


@dataclass(eq=False)
class _Worker:
    proc: asyncio.subprocess.Process
    jobs: int = 0

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        close_input(self.proc)


class ExtractionWorkers:
    """Use as `async with ExtractionWorkers(settings, kind, size) as workers: await workers.extract(data)`."""

    def __init__(self, settings: Settings, kind: ChildKind, size: int) -> None:
        self.settings = settings
        self.kind = kind
        self.size = max(0, size)
        self.max_jobs = max(1, settings.pdf_worker_max_jobs)
        self.started = 0  # processes started so far (health of the pool, for tests and benchmarks)
        self._idle: list[_Worker] = []
        self._live: set[_Worker] = set()
        self._slots = asyncio.Semaphore(max(1, self.size))
        self._starting: set[asyncio.Task[None]] = set()
        self._reaping: set[asyncio.Future[int]] = set()
        self._closed = False

    async def __aenter__(self) -> "ExtractionWorkers":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def idle(self) -> int:
        """Processes started and waiting for a document (one known to have died is not waiting)."""
        return sum(worker.alive for worker in self._idle)

    def warm_up(self) -> None:
        """Start the processes now, in the background, so the first PDF finds them ready."""
        for _ in range(self.size - len(self._idle) - len(self._starting)):
            self._replace_later()

    async def close(self) -> None:
        self._closed = True
        for task in list(self._starting):
            task.cancel()
        while self._starting or self._reaping:  # a cancelled start leaves a process to reap
            await asyncio.gather(*self._starting, *self._reaping, return_exceptions=True)
            await asyncio.sleep(0)
        for worker in list(self._live):
            close_input(worker.proc)  # an idle child exits on end of input
        for worker in list(self._live):
            try:
                await asyncio.wait_for(worker.proc.wait(), 2.0)
            except TimeoutError:
                worker.kill()
                await worker.proc.wait()
        self._live.clear()
        self._idle.clear()

    async def extract(self, data: bytes, **job: Any) -> Any:
        """The child's answer for `data` (and the `job` fields), from a warm process within the time limit."""
        self.kind.check(data, self.settings)
        if self.size == 0:
            return await self.one_off(data)
        if self._closed:
            raise MedLensError("internal", f"{self.kind.what} extraction is shutting down")
        async with self._slots:
            worker = self._take_idle() or await self._start()
            for attempt in (1, 2):
                try:
                    result = await self._run(worker, data, job)
                except _DeadBeforeSent:  # died while idle: not this PDF's fault, so one fresh try
                    self._retire(worker)
                    if attempt == 2:
                        raise MedLensError("internal", f"{self.kind.what} extraction processes keep dying") from None
                    worker = await self._start()
                    continue
                except ChildReported:  # a clean "no": the process is fine for the next PDF
                    self._release(worker)
                    raise
                except BaseException:  # timed out, crashed, or the caller left mid-answer
                    self._retire(worker)
                    raise
                self._release(worker)
                return result
            raise AssertionError("unreachable")

    async def one_off(self, data: bytes) -> Any:
        """Without warm processes (size 0): a fresh process for this one document (PDFs only)."""
        raise MedLensError("internal", f"{self.kind.what} extraction needs at least one worker process")

    def _take_idle(self) -> _Worker | None:
        while self._idle:
            worker = self._idle.pop()
            if worker.alive:
                return worker
            self._forget(worker)  # died while idle (killed from outside): the caller starts a fresh one
        return None

    def _release(self, worker: _Worker) -> None:
        worker.jobs += 1
        if worker.jobs >= self.max_jobs:
            self._retire(worker)
        elif len(self._idle) >= self.size or self._closed:
            self._forget(worker)  # a spare (a replacement came up meanwhile): no successor needed
        else:
            self._idle.append(worker)

    async def _run(self, worker: _Worker, data: bytes, job: dict[str, Any]) -> Any:
        proc = worker.proc
        assert proc.stdin is not None and proc.stdout is not None
        limit = self.kind.time_limit(self.settings)
        try:
            async with asyncio.timeout(limit):
                try:
                    proc.stdin.write(self.kind.request(data, self.settings, job))
                    await proc.stdin.drain()
                except ConnectionError as exc:
                    raise _DeadBeforeSent() from exc
                return await self.kind.answer(proc.stdout)
        except TimeoutError as exc:
            raise MedLensError(self.kind.timeout_code, f"{self.kind.what} extraction took longer than {limit}s") from exc
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, KeyError, TypeError) as exc:
            worker.kill()
            code = await proc.wait()
            raise MedLensError(self.kind.crash_code, f"{self.kind.what} extraction failed (worker exit code {code})") from exc

    async def _start(self) -> _Worker:
        proc = await self.kind.start()
        worker = _Worker(proc)
        self._live.add(worker)
        self.started += 1
        assert proc.stdout is not None
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                ready = await read_frame_async(proc.stdout)
            if ready != self.kind.ready:
                raise ValueError(ready[:40])
        except BaseException as exc:
            self._forget(worker)
            if isinstance(exc, (asyncio.IncompleteReadError, ValueError, TimeoutError)):
                raise MedLensError("internal", f"a {self.kind.what} extraction process failed to start") from exc
            raise
        return worker

    def _retire(self, worker: _Worker) -> None:
        """Stop a process (killed mid-document, crashed, or done its share) and start its successor."""
        self._forget(worker)
        if not self._closed:
            self._replace_later()

    def _forget(self, worker: _Worker) -> None:
        worker.kill()
        self._live.discard(worker)
        if worker in self._idle:
            self._idle.remove(worker)
        reaper = asyncio.ensure_future(worker.proc.wait())
        self._reaping.add(reaper)
        reaper.add_done_callback(self._reaping.discard)

    def _replace_later(self) -> None:
        task = asyncio.ensure_future(self._start_idle())
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)

    async def _start_idle(self) -> None:
        try:
            worker = await self._start()
        except MedLensError:
            log.warning("a %s extraction process failed to start; the next one will try again", self.kind.what)
            return
        if self._closed or len(self._idle) >= self.size:
            self._forget(worker)
        else:
            self._idle.append(worker)


class PdfWorkers(ExtractionWorkers):
    """The PDF pool: `pdf_workers` processes; `extract(data)` -> `PdfExtraction`."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, PDF_CHILD, settings.pdf_workers)

    async def extract(self, data: bytes, **job: Any) -> PdfExtraction:
        return await super().extract(data, **job)

    async def one_off(self, data: bytes) -> PdfExtraction:
        return await extract_pdf_images_limited(data, self.settings)
