"""`run_batch`: sources -> engine -> parts -> _summary.json and _SUCCESS; what `medlens batch` calls."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from tqdm import tqdm

from medlens.ingest.sources import iter_sources, require_parquet
from medlens.batch.output import PartWriter, mark_success, prepare_dir, write_summary
from medlens.errors import MedLensError
from medlens.settings import Settings

ENGINES = ("local", "ray")


@dataclass
class BatchOptions:
    """How to run, as opposed to what (Settings). None means: from Settings."""

    engine: str = "local"
    address: str | None = None        # Ray cluster to join; None starts Ray on this machine
    batch_size: int | None = None     # images per forward pass (default settings.max_batch)
    # local: batches loading ahead of the model; ray: most classifier actors (default: as many as fit)
    workers: int | None = None
    cpus_per_worker: float | None = None   # ray: CPUs each actor reserves (and its model threads)
    gpus_per_worker: float | None = None   # ray: GPUs each actor reserves (0: CPU; fractions share a GPU)
    load_in: str = "actors"           # ray: "actors" load beside the model; "tasks" decode apart and ship pixels
    load_cpus: float = 0.5            # ray, load_in="tasks": CPUs each load task reserves
    sources_per_task: int | None = None    # sources per loading call
    rows_per_part: int | None = None       # rows gathered per Parquet part
    threshold: float | None = None
    resume: bool = False
    progress: bool = True

    def resolved(self, settings: Settings) -> "BatchOptions":
        return BatchOptions(**{
            **asdict(self),
            "batch_size": self.batch_size or settings.max_batch,
            "workers": self.workers or settings.batch_workers or (None if self.engine == "ray" else 2),
            "cpus_per_worker": self.cpus_per_worker if self.cpus_per_worker is not None else settings.batch_cpus_per_worker,
            "gpus_per_worker": self.gpus_per_worker if self.gpus_per_worker is not None else settings.batch_gpus_per_worker,
            "sources_per_task": self.sources_per_task or settings.batch_sources_per_task,
            "rows_per_part": self.rows_per_part or settings.batch_rows_per_part,
        })


def run_batch(
    inputs: Sequence[str], out: str | Path, settings: Settings, options: BatchOptions | None = None,
    *, sources: Sequence[str] | None = None, classifier: Any = None, on_progress: Callable[[int], Any] | None = None,
) -> dict[str, Any]:
    """Classify every source of `inputs` (or the given `sources`) into `out`; returns the summary.

    `classifier` (local engine only) reuses a loaded Classifier instead of loading one;
    `on_progress` is called with the number of sources each step completed (benchmarks time it)."""
    opts = (options or BatchOptions()).resolved(settings)
    if opts.engine not in ENGINES:
        raise MedLensError("invalid_request", f"unknown engine {opts.engine!r}: use one of {', '.join(ENGINES)}")
    require_parquet()
    if opts.engine == "ray":
        from medlens.batch.ray_engine import require_ray

        require_ray()  # fail before any work when Ray is missing
    out = Path(out)
    done = prepare_dir(out, resume=opts.resume)
    writer = PartWriter(out, opts.rows_per_part)
    progress = tqdm(total=len(sources) if sources is not None else None, unit="source", file=sys.stderr,
                    disable=not opts.progress or None, dynamic_ncols=True, desc=f"medlens batch ({opts.engine})")
    started = time.perf_counter()

    def on_done(count: int) -> None:
        progress.update(count)
        if on_progress is not None:
            on_progress(count)

    with progress:
        if opts.engine == "local":
            from medlens.batch.local import run_local

            stream = iter(sources) if sources is not None else iter_sources(inputs)
            extra = run_local(stream, settings, writer, opts, on_done, done=done, classifier=classifier)
        else:
            from medlens.batch.ray_engine import run_ray

            extra = run_ray(inputs, sources, settings, writer, opts, on_done, done=done)
    wall = time.perf_counter() - started
    if writer.incomplete:
        raise MedLensError("internal", f"{writer.incomplete} source(s) came back with missing rows")
    run = {
        "engine": opts.engine,
        "sources_total": writer.sources + writer.skipped_done + writer.duplicates,
        "sources_skipped_done": writer.skipped_done,
        "sources_duplicate": writer.duplicates,
        "sources": writer.sources,
        "rows": writer.rows,
        "parts": writer.parts,
        "wall_s": round(wall, 3),
        "rows_per_s": round(writer.rows / wall, 2) if wall > 0 else None,
        "sources_per_s": round(writer.sources / wall, 2) if wall > 0 else None,
        "batch_size": opts.batch_size,
        "workers": opts.workers,
        "nodes": dict(writer.nodes),
        **extra,
    }
    summary = write_summary(out, run)
    mark_success(out)
    return summary
