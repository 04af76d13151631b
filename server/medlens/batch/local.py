"""The in-process engine: no Ray. Loading threads feed one Classifier in this process.

Same per-batch code as the Ray engine (`work.load_sources`, `work.classify_rows`), and the same
ingestion and model as `medlens classify`. Memory is bounded: at most `workers + 1` loading
batches of `sources_per_part` sources are in flight.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

from medlens.batch.output import PartWriter
from medlens.batch.work import classify_rows, load_sources, model_name
from medlens.model.classifier import Classifier
from medlens.settings import Settings


def run_local(
    sources: list[str], settings: Settings, writer: PartWriter, opts: Any, on_done: Callable[[int], Any],
    *, classifier: Classifier | None = None,
) -> dict[str, Any]:
    model = classifier if classifier is not None else Classifier.from_settings(settings)
    name = model_name(model)
    size = max(1, opts.sources_per_part)
    chunks = iter([sources[i:i + size] for i in range(0, len(sources), size)])
    with ThreadPoolExecutor(max_workers=max(1, opts.workers), thread_name_prefix="medlens-batch-load") as pool:
        queue: deque[Future[list[dict[str, Any]]]] = deque()

        def submit() -> None:
            chunk = next(chunks, None)
            if chunk is not None:
                queue.append(pool.submit(load_sources, chunk, settings))

        for _ in range(max(1, opts.workers) + 1):
            submit()
        while queue:
            rows = queue.popleft().result()
            submit()
            classify_rows(model, rows, batch_size=opts.batch_size, threshold=opts.threshold)
            for row in rows:
                row["model"] = name
            on_done(writer.add(rows))
    return {"device": model.info["device"]}
