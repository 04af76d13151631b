"""The in-process engine: no Ray. One Loader fetches and decodes while this thread classifies.

Same per-batch code as the Ray engine (`Loader`, `classify_rows`), and the same ingestion and
model as `medlens classify`. Sources are streamed from the inputs in batches of
`sources_per_task`; at most `workers + 1` batches are loading at once, so memory is bounded by
what is in flight, not by the corpus.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future
from itertools import islice
from typing import Any, Callable, Iterator

from medlens.batch.classifying import classify_rows, label_rows, model_name
from medlens.batch.keys import SourceKeys
from medlens.batch.loading import Loader, Row, done_row
from medlens.batch.output import PartWriter
from medlens.settings import Settings


def run_local(
    sources: Iterator[str], settings: Settings, writer: PartWriter, opts: Any, on_done: Callable[[int], Any],
    *, done: SourceKeys, classifier: Any = None,
) -> dict[str, Any]:
    from medlens.model.classifier import Classifier

    model = classifier if classifier is not None else Classifier.from_settings(settings)
    name = model_name(model)
    batches = _batches(_first_occurrences(sources, writer), max(1, opts.sources_per_task))
    with Loader(settings) as loader:
        in_flight: deque[tuple[Future[list[Row]], list[str]]] = deque()

        def submit() -> None:
            batch = next(batches, None)
            if batch is not None:
                todo, already = done.split(batch)
                in_flight.append((loader.submit(todo), already))

        for _ in range(max(1, opts.workers) + 1):
            submit()
        while in_flight:
            future, already = in_flight.popleft()
            rows = future.result()
            submit()
            classify_rows(model, rows, batch_size=opts.batch_size, threshold=opts.threshold)
            on_done(writer.add(label_rows(rows, model=name) + [done_row(s) for s in already]))
    writer.flush()
    return {"device": model.info["device"]}


def _first_occurrences(sources: Iterator[str], writer: PartWriter) -> Iterator[str]:
    """Each source once, before any work is spent on a repeat (counted as the writer's duplicates)."""
    seen = SourceKeys()
    for source in sources:
        if seen.add(source):
            yield source
        else:
            writer.duplicates += 1


def _batches(sources: Iterator[str], size: int) -> Iterator[list[str]]:
    while batch := list(islice(sources, size)):
        yield batch
