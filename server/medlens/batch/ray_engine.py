"""The Ray Data engine: the same per-batch work as the local engine, scheduled by Ray Data.

    lists (read_text / read_csv / read_parquet)  --map_batches(expand_entries)-->  sources
    sources --map_batches(BatchWorker)-->  classified rows      actors: load + classify (default)
    classified rows --iter_batches on the driver-->  atomic Parquet parts (output.PartWriter)

Only source strings go into the object store and only result rows come out: each actor reads or
downloads its sources, decodes them and runs the model where the bytes arrive, with a `Loader`
fetching the next call's sources while the model works on this one (two calls in flight per
actor). `--load-in tasks` instead decodes in stateless tasks and ships the pixels to
classifier-only actors; bench/batch.py measures both (the actors win: pixels cost more to move
than to decode again). Lists are read by Ray's readers and folders walked by tasks, so the
driver never holds the corpus; resume's done-set travels once, through the object store.

Actors are sized to the cluster: as many as its CPUs (or GPUs, with --gpus-per-worker) hold,
capped by --workers. Listing tasks reserve no CPU, so they always fit beside the actors. Parts
are written by the driver, so the output folder only has to exist where `medlens batch` runs;
inputs (files, lists) must be readable on every node, URLs are fetched by the workers. Ray is
imported only here.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from medlens.batch.classifying import classify_rows, label_rows, model_name
from medlens.ingest.sources import csv_list_column, expand_entry, is_list, list_column, parquet_list_names, text_list_entry
from medlens.batch.keys import SourceKeys
from medlens.batch.loading import Loader, done_row, image_to_cells
from medlens.batch.output import PartWriter, transfer_schema
from medlens.errors import MedLensError
from medlens.settings import Settings

log = logging.getLogger(__name__)

LOAD_IN = ("actors", "tasks")
# Calls each actor works on at once: one loading while the other is in the model.
CALLS_PER_ACTOR = 2
LISTING_CPUS = 0


def require_ray() -> Any:
    """Ray, imported with its usage reporting off: a MedLens run sends nothing off the machine, and
    Ray's reporting (and Ray Data's metrics poller) would otherwise run with every instance this
    process or its workers start. A user who sets RAY_USAGE_STATS_ENABLED themselves keeps theirs."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise MedLensError(
            "missing_dependency",
            f"--engine ray needs Ray Data: pip install 'medlens[scale]' (or use --engine local) ({exc})",
        ) from exc
    return ray


# ---------------------------------------------------------------- sources


def source_dataset(inputs: Sequence[str], sources: Sequence[str] | None, per_task: int) -> Any:
    """A dataset with one `source` column: given `sources`, or every source of `inputs`, read by Ray."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import ray.data

    if sources is not None:
        return ray.data.from_items([{"source": s} for s in sources],
                                   override_num_blocks=max(1, math.ceil(len(sources) / per_task)))
    listing = dict(batch_format="pyarrow", num_cpus=LISTING_CPUS, batch_size=None)
    parts = []
    direct = [text for text in inputs if not is_list(text)]
    if direct:
        ds = ray.data.from_items([{"entry": t} for t in direct], override_num_blocks=len(direct))
        parts.append(ds.map_batches(expand_entries, fn_kwargs=dict(column="entry", list_dir=None, per_task=per_task),
                                    **listing))
    for text in (t for t in inputs if is_list(t)):
        path = Path(text)
        suffix = path.suffix.lower()
        if suffix == ".txt":
            column, ds = "text", ray.data.read_text(text, num_cpus=LISTING_CPUS)
        elif suffix == ".csv":
            column = csv_list_column(path)
            convert = pacsv.ConvertOptions(include_columns=[column], column_types={column: pa.string()})
            ds = ray.data.read_csv(text, num_cpus=LISTING_CPUS, convert_options=convert)
        else:
            column = list_column(parquet_list_names(path), path)
            ds = ray.data.read_parquet(text, columns=[column], num_cpus=LISTING_CPUS)
        parts.append(ds.map_batches(expand_entries, fn_kwargs=dict(column=column, list_dir=str(path.parent),
                                                                   per_task=per_task, text=suffix == ".txt"), **listing))
    return parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]


def expand_entries(batch: Any, column: str, list_dir: str | None, per_task: int, text: bool = False) -> Iterator[Any]:
    """Ray task: list entries (or INPUTs) -> sources, folders walked here, in tables of `per_task`."""
    import pyarrow as pa

    chunk: list[str] = []
    for value in batch.column(column).to_pylist():
        entry = text_list_entry(value) if text else (str(value).strip() if value is not None else "")
        if not entry:
            continue
        for source in expand_entry(entry, list_dir):
            chunk.append(source)
            if len(chunk) >= per_task:
                yield pa.table({"source": chunk})
                chunk = []
    if chunk:
        yield pa.table({"source": chunk})


# ---------------------------------------------------------------- workers


def _rows_table(rows: list[dict[str, Any]], *, pixels: bool) -> Any:
    import pyarrow as pa

    schema = transfer_schema(pixels=pixels)
    return pa.Table.from_pylist([{name: row.get(name) for name in schema.names} for row in rows], schema=schema)


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


class BatchWorker:
    """Ray actor: loads (reads, downloads, decodes) and classifies its sources; rows out, no pixels."""

    def __init__(self, settings: Settings, batch_size: int, threshold: float | None, done: Any) -> None:
        import ray

        from medlens.model.classifier import Classifier

        self.classifier = Classifier.from_settings(settings)
        self.loader = Loader(settings)
        self.done: SourceKeys = ray.get(done)
        self.stamp = {"model": model_name(self.classifier), "node": _node_id()}
        self.batch_size = batch_size
        self.threshold = threshold

    def __call__(self, batch: Any) -> Any:
        todo, already = self.done.split(batch.column("source").to_pylist())
        rows = classify_rows(self.classifier, self.loader.load(todo), batch_size=self.batch_size, threshold=self.threshold)
        return _rows_table(label_rows(rows, **self.stamp) + [done_row(s) for s in already], pixels=False)


_TASK_LOADER: dict[str, Loader] = {}


def load_task(batch: Any, settings: Settings, done: Any) -> Any:
    """Ray task (--load-in tasks): sources -> rows with the decoded pixels, for ClassifierActor.

    The Loader is kept for the life of the worker process, so its connections are reused."""
    import ray

    loader = _TASK_LOADER.get("loader")
    if loader is None:
        loader = _TASK_LOADER["loader"] = Loader(settings)
    todo, already = ray.get(done).split(batch.column("source").to_pylist())
    rows = loader.load(todo)
    for row in rows:
        if row["image"] is not None:
            row.update(image_to_cells(row["image"]))
    return _rows_table(rows + [done_row(s) for s in already], pixels=True)


class ClassifierActor:
    """Ray actor (--load-in tasks): rows with pixels -> classified rows, model loaded once."""

    def __init__(self, settings: Settings, batch_size: int, threshold: float | None) -> None:
        from medlens.model.classifier import Classifier

        self.classifier = Classifier.from_settings(settings)
        self.stamp = {"model": model_name(self.classifier), "node": _node_id()}
        self.batch_size = batch_size
        self.threshold = threshold

    def __call__(self, batch: Any) -> Any:
        rows = classify_rows(self.classifier, batch.to_pylist(), batch_size=self.batch_size, threshold=self.threshold)
        return _rows_table(label_rows(rows, **self.stamp), pixels=False)


def fit_workers(resources: dict[str, float], opts: Any) -> int:
    """Actors the cluster holds (beside the load tasks' reservation with --load-in tasks), capped
    by --workers when given; a cluster too small for one is a clear error, not a hung job."""
    cpus = float(resources.get("CPU", 0.0)) - (float(opts.load_cpus) if opts.load_in == "tasks" else 0.0)
    fit = math.floor(cpus / opts.cpus_per_worker + 1e-9) if opts.cpus_per_worker > 0 else math.inf
    if opts.gpus_per_worker > 0:
        fit = min(fit, math.floor(float(resources.get("GPU", 0.0)) / opts.gpus_per_worker + 1e-9))
    if fit < 1:
        raise MedLensError(
            "invalid_request",
            f"the Ray cluster ({resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs) cannot hold one "
            f"classifier actor ({opts.cpus_per_worker:g} CPU, {opts.gpus_per_worker:g} GPU)"
            + (f" beside a loading task ({opts.load_cpus:g} CPU)" if opts.load_in == "tasks" else "")
            + "; lower --cpus-per-worker or --gpus-per-worker",
        )
    if opts.workers and fit < opts.workers:
        log.warning("only %d of %d classifier actors fit in the cluster", fit, opts.workers)
    return int(min(fit, opts.workers) if opts.workers else fit)


def run_ray(
    inputs: Sequence[str], sources: Sequence[str] | None, settings: Settings, writer: PartWriter, opts: Any,
    on_done: Callable[[int], Any], *, done: SourceKeys,
) -> dict[str, Any]:
    ray = require_ray()
    if opts.load_in not in LOAD_IN:
        raise MedLensError("invalid_request", f"unknown --load-in {opts.load_in!r}: use one of {', '.join(LOAD_IN)}")
    started_here = not ray.is_initialized()
    if started_here:
        # No --address: a new Ray instance on this machine ("local"), never whichever cluster
        # ray.init would find on its own (another user's, or a test's, on a shared machine).
        ray.init(address=opts.address or "local", include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        import ray.data

        with warnings.catch_warnings():  # Ray's DataContext warns about its own deprecated fields when built
            warnings.simplefilter("ignore", DeprecationWarning)
            context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # `medlens batch` shows its own bar
        context.wait_for_min_actors_s = int(math.ceil(settings.batch_actor_start_timeout_s))
        gpus = float(opts.gpus_per_worker or 0)
        actor_settings = settings.replace(
            device="cuda" if gpus > 0 else settings.device,
            model_threads=settings.model_threads or max(1, int(opts.cpus_per_worker)),
        )
        resources = ray.cluster_resources()
        workers = fit_workers(resources, opts)
        per_task = max(1, opts.sources_per_task)
        done_ref = ray.put(done.compact())
        ds = source_dataset(inputs, sources, per_task)
        model_args = {"settings": actor_settings, "batch_size": opts.batch_size, "threshold": opts.threshold}
        if opts.load_in == "actors":
            ds = ds.map_batches(
                BatchWorker, fn_constructor_kwargs={**model_args, "done": done_ref}, batch_size=per_task,
                batch_format="pyarrow", num_cpus=opts.cpus_per_worker, num_gpus=gpus,
                compute=ray.data.ActorPoolStrategy(size=workers, max_concurrent_calls_per_actor=CALLS_PER_ACTOR,
                                                   enable_true_multi_threading=True),
            )
        else:
            ds = ds.map_batches(load_task, fn_kwargs={"settings": settings, "done": done_ref}, batch_size=per_task,
                                batch_format="pyarrow", num_cpus=opts.load_cpus)
            ds = ds.map_batches(
                ClassifierActor, fn_constructor_kwargs=model_args, batch_size=opts.batch_size, batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=opts.cpus_per_worker, num_gpus=gpus,
            )
        for block in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            on_done(writer.add(block.to_pylist()))
        writer.flush()
    finally:
        if started_here:
            ray.shutdown()
    return {"workers": workers, "load_in": opts.load_in,
            "ray": {"address": opts.address or "local", "cluster_cpus": resources.get("CPU"),
                    "cluster_gpus": resources.get("GPU", 0.0)}}
