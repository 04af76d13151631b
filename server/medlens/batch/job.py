"""`run_batch`: sources -> engine -> parts -> summary.json; what `medlens batch` calls."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from tqdm import tqdm

from medlens.batch.inputs import expand_inputs
from medlens.batch.output import PartWriter, prepare_dir, require_pyarrow, write_summary
from medlens.errors import MedLensError
from medlens.settings import Settings

ENGINES = ("local", "ray")


@dataclass
class BatchOptions:
    """How to run, as opposed to what (Settings). None means: from Settings."""

    engine: str = "local"
    address: str | None = None        # Ray cluster to join; None starts Ray on this machine
    batch_size: int | None = None     # images per forward pass (default settings.max_batch)
    workers: int | None = None        # local: loading threads; ray: classifier actors (default settings.batch_workers)
    cpus_per_worker: float | None = None   # ray: CPUs each classifier actor reserves
    gpus_per_worker: float | None = None   # ray: GPUs each classifier actor reserves (0: CPU)
    # ray: CPUs each fetch/decode task reserves. Not the actors' figure, else Ray Data fuses the
    # loading into the actors and a slow download stalls a model.
    load_cpus: float = 0.5
    sources_per_part: int | None = None    # sources per loading batch, so per Parquet part at most
    threshold: float | None = None
    resume: bool = False
    progress: bool = True

    def resolved(self, settings: Settings) -> "BatchOptions":
        batch = self.batch_size or settings.max_batch
        return BatchOptions(**{
            **asdict(self),
            "batch_size": batch,
            "workers": self.workers or settings.batch_workers,
            "cpus_per_worker": self.cpus_per_worker if self.cpus_per_worker is not None else settings.batch_cpus_per_worker,
            "gpus_per_worker": self.gpus_per_worker if self.gpus_per_worker is not None else settings.batch_gpus_per_worker,
            "sources_per_part": self.sources_per_part or settings.batch_sources_per_part,
        })


def run_batch(
    inputs: Sequence[str], out: str | Path, settings: Settings, options: BatchOptions | None = None,
    *, sources: Sequence[str] | None = None, classifier: Any = None,
) -> dict[str, Any]:
    """Classify every source of `inputs` (or the given `sources`) into `out`; returns the summary.

    `classifier` (local engine only) reuses a loaded Classifier instead of loading one."""
    opts = (options or BatchOptions()).resolved(settings)
    if opts.engine not in ENGINES:
        raise MedLensError("invalid_request", f"unknown engine {opts.engine!r}: use one of {', '.join(ENGINES)}")
    require_pyarrow()
    if opts.engine == "ray":
        from medlens.batch.ray_engine import require_ray

        require_ray()  # fail before any work when Ray is missing
    out = Path(out)
    all_sources = list(sources) if sources is not None else expand_inputs(inputs)
    done = prepare_dir(out, resume=opts.resume)
    todo = [s for s in all_sources if s not in done]
    writer = PartWriter(out)
    progress = tqdm(total=len(todo), unit="source", file=sys.stderr, disable=not opts.progress or None,
                    dynamic_ncols=True, desc=f"medlens batch ({opts.engine})")
    started = time.perf_counter()
    extra: dict[str, Any] = {}
    with progress:
        if todo:
            if opts.engine == "local":
                from medlens.batch.local import run_local

                extra = run_local(todo, settings, writer, opts, progress.update, classifier=classifier)
            else:
                from medlens.batch.ray_engine import run_ray

                extra = run_ray(todo, settings, writer, opts, progress.update)
    wall = time.perf_counter() - started
    if writer.incomplete:
        raise MedLensError("internal", f"{writer.incomplete} source(s) came back with missing rows")
    run = {
        "engine": opts.engine,
        "sources_total": len(all_sources),
        "sources_skipped_done": len(all_sources) - len(todo),
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
    return write_summary(out, run)


ProgressFn = Callable[[int], Any]
