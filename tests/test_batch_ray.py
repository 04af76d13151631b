"""`medlens batch --engine ray` on real Ray (a two-node Cluster on this machine), the real model
and real files: same rows as the local engine, spread over nodes, kill + --resume, bad inputs and
a URL list from a loopback host, the output folder read back by Ray."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fixtures.batch import assert_same_rows
from fixtures.data import SHARED_DATA
from medlens.batch.job import BatchOptions, run_batch
from medlens.batch.output import PART_GLOB, TMP_PREFIX, read_rows
from medlens.settings import Settings

import ray  # noqa: E402,F401  the 'scale' extra; scripts/setup.sh --dev installs it, so a missing Ray fails here

# One node has 1 CPU: two actors of 1 CPU can only fit on two different nodes; the listing tasks
# reserve no CPU, so they run beside them.
RAY = dict(engine="ray", cpus_per_worker=1.0, progress=False)


def ray_options(**changes: Any) -> BatchOptions:
    return BatchOptions(**{**RAY, **changes})


@pytest.fixture(scope="module")
def local_rows(batch_corpus: list[str], classifier, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out = tmp_path_factory.mktemp("local")
    run_batch([], out, Settings(), BatchOptions(progress=False, sources_per_task=32), sources=batch_corpus,
              classifier=classifier)
    return read_rows(out)


def test_ray_rows_equal_local_rows(ray_cluster, batch_corpus, local_rows, classifier, tmp_path: Path) -> None:
    summary = run_batch([], tmp_path / "ray", Settings(), ray_options(workers=1, sources_per_task=32), sources=batch_corpus)

    rows = read_rows(tmp_path / "ray")
    import ray.data

    assert ray.data.read_parquet(str(tmp_path / "ray")).count() == len(rows)  # the folder is a dataset to Ray too
    assert_same_rows(local_rows, rows, classifier.threshold)
    assert len(rows) > len(batch_corpus)  # PDFs expanded into their images
    assert {r["source"] for r in rows} == set(batch_corpus)
    assert summary["run"]["engine"] == "ray" and summary["rows"] == len(rows)
    assert summary["status"].get("ok", 0) > 200


def test_two_node_cluster_spreads_the_job(ray_cluster, batch_corpus, local_rows, classifier, tmp_path: Path) -> None:
    import ray

    sources = batch_corpus[:60]
    summary = run_batch([], tmp_path / "o", Settings(), ray_options(workers=2, sources_per_task=6, batch_size=2), sources=sources)

    alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    assert len(alive) == 2
    nodes = summary["run"]["nodes"]
    assert set(nodes) == alive, "the classifier actors did not run on both nodes"
    assert all(count > 0 for count in nodes.values())
    wanted = set(sources)
    assert_same_rows([r for r in local_rows if r["source"] in wanted], read_rows(tmp_path / "o"), classifier.threshold)


def test_bad_inputs_become_error_rows(ray_cluster, bad_inputs, test_site, classifier, tmp_path: Path) -> None:
    sources = list(bad_inputs.values()) + [
        test_site.url("special/truncated.jpg"),
        test_site.url("special/status/404"),
        "http://127.0.0.1:9/unreachable.jpg",  # a closed loopback port: connection refused
        str(SHARED_DATA / "docs" / "malformed.pdf"),
        str(next((SHARED_DATA / "images").rglob("*.jpg"))),
    ]
    settings = Settings(allow_private=True)
    summary = run_batch([], tmp_path / "ray", settings, ray_options(workers=1, sources_per_task=3), sources=sources)
    run_batch([], tmp_path / "local", settings, BatchOptions(progress=False, sources_per_task=3), sources=sources,
              classifier=classifier)

    rows = read_rows(tmp_path / "ray")
    assert_same_rows(read_rows(tmp_path / "local"), rows, classifier.threshold)
    codes = {r["source"]: r["error_code"] for r in rows}
    assert codes[bad_inputs["encrypted"]] == "pdf_encrypted"
    assert codes[bad_inputs["truncated"]] == codes[bad_inputs["corrupt"]] == codes[sources[6]] == "decode_failed"
    assert codes[bad_inputs["unsupported"]] == "unsupported_format"
    assert codes[bad_inputs["missing"]] == "not_found"
    assert codes[sources[7]] == codes[sources[8]] == "fetch_failed"
    assert summary["sources"] == len(sources) and summary["status"]["ok"] >= 1
    assert summary["status"]["error"] >= 9


def test_killed_run_then_resume_has_every_source_once(ray_cluster, classifier, tmp_path: Path) -> None:
    images = sorted(str(p) for p in (SHARED_DATA / "images").rglob("*.jpg"))[:90]
    sources = images + [str(SHARED_DATA / "docs" / "report.pdf"), str(SHARED_DATA / "docs" / "many-images.pdf")]
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(sources) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "medlens.cli", "batch", str(listing), "--out", str(out), "--engine", "ray",
           "--address", ray_cluster.address, "--workers", "1", "--cpus-per-worker", "1",
           "--sources-per-task", "4", "--rows-per-part", "4", "--batch-size", "4", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "MEDLENS_CONFIG_DIR": str(tmp_path)})
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob(PART_GLOB)) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()[-2000:]}"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    before = read_rows(out)  # every part left behind is complete and readable
    done_before = {r["source"] for r in before}
    assert 0 < len(done_before) < len(sources)

    summary = run_batch([str(listing)], out, Settings(), ray_options(workers=1, sources_per_task=8, resume=True))

    rows = read_rows(out)
    assert summary["run"]["sources_skipped_done"] == len(done_before)
    assert summary["run"]["sources"] == len(sources) - len(done_before)
    assert {r["source"] for r in rows} == set(sources)
    keys = [(r["source"], r["page"], r["index"]) for r in rows]
    assert len(keys) == len(set(keys)), "a source was written twice"
    assert all(sum(1 for r in rows if r["source"] == s) == 1 for s in images)
    pdf_rows = [r for r in rows if r["source"].endswith("many-images.pdf")]
    assert len(pdf_rows) > 1 and len({r["page"] for r in pdf_rows}) >= 1
    assert not list(out.glob(TMP_PREFIX + "*"))
    assert summary["sources"] == len(sources) and summary["rows"] == len(rows)


def test_url_list_from_a_loopback_host_on_ray(ray_cluster, corpus_host, classifier, tmp_path: Path) -> None:
    good = sorted((SHARED_DATA / "images").rglob("*.jpg"))[:4]
    urls = {
        "ok": corpus_host.image_url(good[0]),
        "ok_other": corpus_host.image_url(good[1]),
        "retried": corpus_host.url(f"flaky/r/1/503/{good[2].relative_to(SHARED_DATA / 'images')}"),
        "missing": corpus_host.url("img/no/such.jpg"),
        "timeout": corpus_host.url("hang"),
        "too_large": corpus_host.url("huge"),
        "not_an_image": corpus_host.url("text"),
    }
    listing = tmp_path / "urls.csv"  # a .csv list: read by Ray's CSV reader, on the workers
    listing.write_text("id,url\n" + "".join(f"{i},{u}\n" for i, u in enumerate(urls.values())), encoding="utf-8")
    settings = Settings(allow_private=True, total_timeout_s=1.0, batch_fetch_retries=1, batch_retry_backoff_s=0.05,
                        max_image_bytes=2 * 1024 * 1024)

    summary = run_batch([str(listing)], tmp_path / "ray", settings, ray_options(workers=2, sources_per_task=2))

    rows = read_rows(tmp_path / "ray")
    assert sorted(r["source"] for r in rows) == sorted(urls.values())  # one row per URL
    by_url = {r["source"]: r for r in rows}
    code = {name: by_url[url]["error_code"] for name, url in urls.items()}
    assert {name for name, url in urls.items() if by_url[url]["status"] == "ok"} == {"ok", "ok_other", "retried"}
    assert corpus_host.hits["r"] == 2
    assert code["missing"] == "fetch_failed" and "HTTP 404" in by_url[urls["missing"]]["error"]
    assert code["timeout"] == "fetch_timeout" and code["too_large"] == "too_large"
    assert code["not_an_image"] == "not_an_image"
    assert summary["sources"] == len(urls) and summary["status"] == {"ok": 3, "error": 4}


def test_ray_usage_reporting_is_off(ray_cluster) -> None:
    """A batch run sends nothing off the machine: Ray's usage reporting (and Ray Data's metrics
    poller, which follows it) is off in this process and the cluster it started."""
    from ray._common.usage.usage_lib import usage_stats_enabled
    from ray.data._internal.usage.collector import usage_collection_disabled

    assert os.environ["RAY_USAGE_STATS_ENABLED"] == "0"
    assert not usage_stats_enabled() and usage_collection_disabled()
