"""The Ray Data engine: the same per-batch work as the local engine, scheduled by Ray Data.

    sources (from_items) -> map_batches(load_batch)        stateless tasks: read/fetch, decode, PDF expansion
                         -> map_batches(ClassifierActor)   actor pool: model loaded once per actor
                         -> iter_batches on the driver     -> atomic Parquet parts (output.PartWriter)

Streaming execution bounds memory by what is in flight, not by the corpus. Parts are written by
the driver, so the output folder only has to exist where `medlens batch` runs (on a cluster the
workers need MedLens installed, not the folder). Ray is imported only here.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Callable

from medlens.batch.output import PartWriter, work_schema
from medlens.batch.work import classify_rows, load_sources, model_name
from medlens.errors import MedLensError
from medlens.settings import Settings

log = logging.getLogger(__name__)


def require_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise MedLensError(
            "missing_dependency",
            f"--engine ray needs Ray Data: pip install 'medlens[scale]' (or use --engine local) ({exc})",
        ) from exc
    return ray


def load_batch(batch: Any, settings: Settings) -> Any:
    """Ray task: a pyarrow batch of sources -> a pyarrow table of image rows (PDFs expanded)."""
    import pyarrow as pa

    rows = load_sources(batch.column("source").to_pylist(), settings)
    return pa.Table.from_pylist(rows, schema=work_schema())


class ClassifierActor:
    """Ray actor: loads the Classifier once, classifies batches of image rows."""

    def __init__(self, settings: Settings, batch_size: int, threshold: float | None) -> None:
        import ray

        from medlens.model.classifier import Classifier

        self.classifier = Classifier.from_settings(settings)
        self.name = model_name(self.classifier)
        self.batch_size = batch_size
        self.threshold = threshold
        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        rows = classify_rows(self.classifier, batch.to_pylist(), batch_size=self.batch_size, threshold=self.threshold)
        for row in rows:
            row["model"] = self.name
            row["node"] = self.node
        return pa.Table.from_pylist(rows, schema=work_schema())


def fit_workers(cluster_cpus: float, opts: Any) -> int:
    """Actors that fit beside at least one loading task; with none left loading, the job would hang."""
    room = cluster_cpus - float(opts.load_cpus)
    fit = int(room // float(opts.cpus_per_worker)) if opts.cpus_per_worker > 0 else opts.workers
    if fit < 1:
        raise MedLensError(
            "invalid_request",
            f"the Ray cluster has {cluster_cpus:g} CPUs: not enough for one classifier actor "
            f"({opts.cpus_per_worker:g} CPU) beside a loading task ({opts.load_cpus:g} CPU); lower --cpus-per-worker",
        )
    if fit < opts.workers:
        log.warning("only %d of %d classifier actors fit on %g CPUs beside the loading tasks", fit, opts.workers, cluster_cpus)
    return min(fit, max(1, opts.workers))


def run_ray(
    sources: list[str], settings: Settings, writer: PartWriter, opts: Any, on_done: Callable[[int], Any]
) -> dict[str, Any]:
    ray = require_ray()
    started_here = not ray.is_initialized()
    if started_here:
        # No --address: a new Ray instance on this machine ("local"), never whichever cluster
        # ray.init would find on its own (another user's, or a test's, on a shared machine).
        ray.init(address=opts.address or "local", include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # `medlens batch` shows its own bar, in sources
        gpus = float(opts.gpus_per_worker or 0)
        actor_settings = settings.replace(
            device="cuda" if gpus > 0 else settings.device,
            torch_threads=settings.torch_threads or max(1, int(opts.cpus_per_worker)),
        )
        workers = fit_workers(ray.cluster_resources().get("CPU", 0.0), opts)
        per_part = max(1, opts.sources_per_part)
        ds = ray.data.from_items(
            [{"source": s} for s in sources], override_num_blocks=max(1, math.ceil(len(sources) / per_part))
        )
        ds = ds.map_batches(
            load_batch, fn_kwargs={"settings": settings}, batch_size=per_part, batch_format="pyarrow",
            num_cpus=opts.load_cpus,
        )
        ds = ds.map_batches(
            ClassifierActor,
            fn_constructor_kwargs={"settings": actor_settings, "batch_size": opts.batch_size, "threshold": opts.threshold},
            batch_size=opts.batch_size, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=opts.cpus_per_worker, num_gpus=gpus,
        )
        for block in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            on_done(writer.add(block.to_pylist()))
        resources = ray.cluster_resources()
    finally:
        if started_here:
            ray.shutdown()
    return {"workers": workers, "ray": {"address": opts.address or "local", "cluster_cpus": resources.get("CPU"),
                    "cluster_gpus": resources.get("GPU", 0.0)}}
