"""`medlens batch INPUT... --out DIR`: the classifier over a whole corpus, into a Parquet dataset folder.

--engine local (default) runs in this process, no Ray needed; --engine ray runs the same work on
Ray Data, on this machine or, with --address, on an existing cluster. Every source ends up in the
output: bad ones as error rows. Exit code 0 when the job finished (error rows included).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from medlens.commands import load_settings
from medlens.commands.classify import _probability


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "batch",
        help="classify a large collection (folders, PDFs, lists of paths/URLs) into Parquet",
        description="Classify every image of folders (recursive), image files, PDFs (one row per embedded "
        "image) and lists of paths/URLs (.txt, or .csv/.parquet with a url or path column) into a Parquet dataset "
        "folder (part-*.parquet, _summary.json, _SUCCESS). Ray is needed only for --engine ray "
        "(pip install 'medlens[scale]').",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (a Parquet dataset: read it with pyarrow/pandas/DuckDB/Spark/Ray)")
    parser.add_argument("--engine", choices=["local", "ray"], default="local",
                        help="local: in this process (default); ray: Ray Data")
    parser.add_argument("--address", help="Ray cluster to join (e.g. ray://head:10001 or auto); "
                        "default: start Ray on this machine")
    parser.add_argument("--batch-size", type=_positive, help="images per forward pass (default: setting max_batch)")
    parser.add_argument("--workers", type=_positive, help="local: batches loading ahead of the model; ray: most "
                        "actors (default: setting batch_workers; ray: as many as the cluster holds)")
    parser.add_argument("--cpus-per-worker", type=float, help="ray: CPUs per actor (its model threads)")
    parser.add_argument("--gpus-per-worker", type=float, help="ray: GPUs per actor, fractions allowed (default 0)")
    parser.add_argument("--load-in", choices=["actors", "tasks"], default="actors",
                        help="ray: load (read, fetch, decode) inside the model's actors (default), or in separate "
                        "tasks that ship decoded pixels to them")
    parser.add_argument("--sources-per-task", type=_positive, help="sources per loading call "
                        "(default: setting batch_sources_per_task)")
    parser.add_argument("--rows-per-part", type=_positive, help="rows per Parquet part "
                        "(default: setting batch_rows_per_part)")
    parser.add_argument("--threshold", type=_probability, help="probability from which an image is medical")
    parser.add_argument("--resume", action="store_true", help="skip the sources already in DIR")
    parser.add_argument("--device", default=argparse.SUPPRESS, help="auto, cpu or cuda")
    parser.add_argument("--allow-private", action="store_const", const=True,
                        help="allow URLs on loopback and private networks")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def run(args: argparse.Namespace) -> int:
    from medlens.batch.job import BatchOptions, run_batch

    if args.address and args.engine != "ray":
        args.engine = "ray"  # --address only makes sense for Ray
    settings = load_settings(args, allow_private=args.allow_private)
    options = BatchOptions(
        engine=args.engine, address=args.address, batch_size=args.batch_size, workers=args.workers,
        cpus_per_worker=args.cpus_per_worker, gpus_per_worker=args.gpus_per_worker, load_in=args.load_in,
        sources_per_task=args.sources_per_task, rows_per_part=args.rows_per_part, threshold=args.threshold,
        resume=args.resume,
        progress=not args.no_progress,
    )
    summary = run_batch(args.inputs, args.out, settings, options)
    run_info = summary["run"]
    print(
        f"{summary['rows']} rows from {summary['sources']} sources in {args.out} "
        f"({run_info['rows']} new rows in {run_info['wall_s']}s, {run_info['rows_per_s']} rows/s); "
        f"status {json.dumps(summary['status'])}",
        file=sys.stderr,
    )
    return 0
