"""`medlens batch` without Ray: inputs, the local engine, the dataset folder and its summary, URL
corpora from a loopback host (retries, failures), the load side's imports, the missing-Ray error."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.data import SHARED_DATA
from medlens.ingest.sources import expand_inputs
from medlens.batch.job import BatchOptions, run_batch
from medlens.batch.output import COLUMNS, PART_GLOB, SUCCESS_MARKER, SUMMARY_FILE, TMP_PREFIX, read_rows
from medlens.errors import MedLensError
from medlens.settings import Settings

import pandas as pd  # noqa: E402  the 'scale' extra (scripts/setup.sh --dev installs it)
import pyarrow.parquet as pq  # noqa: E402

IMAGES = SHARED_DATA / "images"


def _some_images(n: int) -> list[Path]:
    return sorted(IMAGES.rglob("*.jpg"))[:n]


def test_inputs_folders_files_and_lists(tmp_path: Path) -> None:
    tree = tmp_path / "tree" / "deeper"
    tree.mkdir(parents=True)
    a, b, c = _some_images(3)
    (tree / "a.jpg").write_bytes(a.read_bytes())
    (tmp_path / "tree" / "b.PNG").write_bytes(b.read_bytes())
    (tree / "readme.md").write_text("not an input", encoding="utf-8")
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "c.jpg").write_bytes(c.read_bytes())
    txt = tmp_path / "lists" / "list.txt"
    txt.write_text("# a comment\n\nc.jpg\nhttps://example.org/x.png\n../tree\nmissing.jpg\n", encoding="utf-8")
    with open(tmp_path / "urls.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "url"])
        writer.writerow(["1", "https://example.org/x.png"])  # a duplicate of the .txt's: kept once
        writer.writerow(["2", "https://example.org/y.jpg"])
    import pyarrow as pa

    pq.write_table(pa.table({"path": [str(a), None, "lists/c.jpg"]}), tmp_path / "paths.parquet")

    sources = expand_inputs([str(tmp_path / "tree"), str(txt), str(tmp_path / "urls.csv"), str(tmp_path / "paths.parquet")])

    assert sources == [
        str(tmp_path / "tree" / "b.PNG"),
        str(tree / "a.jpg"),
        str(tmp_path / "lists" / "c.jpg"),
        "https://example.org/x.png",
        str(tmp_path / "lists" / "missing.jpg"),
        "https://example.org/y.jpg",
        str(a),
    ]
    with pytest.raises(MedLensError, match="no 'url' or 'path' column"):
        (tmp_path / "bad.csv").write_text("name\nx\n", encoding="utf-8")
        expand_inputs([str(tmp_path / "bad.csv")])


def test_local_engine_rows_errors_and_summary(classifier, bad_inputs, test_site, tmp_path: Path) -> None:
    good = [str(p) for p in _some_images(4)]
    urls = {
        "site_ok": test_site.url("images/" + str(Path(good[0]).relative_to(IMAGES))),
        "site_truncated": test_site.url("special/truncated.jpg"),
        "site_404": test_site.url("special/status/404"),
        "closed_port": "http://127.0.0.1:9/x.jpg",
    }
    sources = good + list(bad_inputs.values()) + list(urls.values()) + [str(SHARED_DATA / "docs" / "report.pdf")]
    settings = Settings(allow_private=True, max_batch=4)
    out = tmp_path / "out"

    summary = run_batch([], out, settings, BatchOptions(sources_per_task=5, rows_per_part=6, progress=False),
                        sources=sources + good[:1], classifier=classifier)  # good[0] twice: classified once

    rows = read_rows(out)
    by_source: dict[str, list[dict]] = {}
    for row in rows:
        by_source.setdefault(row["source"], []).append(row)
    assert set(by_source) == set(sources)
    code = {s: by_source[s][0]["error_code"] for s in sources}
    assert code[bad_inputs["truncated"]] == "decode_failed"
    assert code[bad_inputs["corrupt"]] == "decode_failed"
    assert code[bad_inputs["unsupported"]] == "unsupported_format"
    assert code[bad_inputs["not_an_image"]] == "not_an_image"
    assert code[bad_inputs["encrypted"]] == "pdf_encrypted"
    assert code[bad_inputs["missing"]] == "not_found"
    assert code[urls["site_truncated"]] == "decode_failed"
    assert code[urls["site_404"]] == "fetch_failed"
    assert code[urls["closed_port"]] == "fetch_failed"
    for source in good + [urls["site_ok"]]:
        [row] = by_source[source]
        assert row["status"] == "ok" and row["label"] in {"medical", "non-medical"}
        assert 0.0 <= row["probability"] <= 1.0 and row["width"] > 0 and len(row["sha256"]) == 64
    assert by_source[urls["site_ok"]][0]["sha256"] == by_source[good[0]][0]["sha256"]
    report = by_source[str(SHARED_DATA / "docs" / "report.pdf")]
    assert len(report) > 1 and all(r["status"] == "ok" and r["page"] >= 1 for r in report)
    assert len({(r["page"], r["index"]) for r in report}) == len(report)
    assert {r["model"] for r in rows} == {f"{classifier.info['backbone']}/{classifier.info['head_sha256']}"}

    parts = sorted(out.glob(PART_GLOB))
    assert len(parts) == summary["parts"] >= 2 and not list(out.glob(TMP_PREFIX + "*"))
    assert pq.read_schema(parts[0]).names == COLUMNS
    on_disk = json.loads((out / SUMMARY_FILE).read_text(encoding="utf-8"))
    assert on_disk == summary and (out / SUCCESS_MARKER).is_file()
    assert summary["run"]["sources_duplicate"] == 1
    assert summary["rows"] == len(rows) and summary["sources"] == len(sources)
    assert summary["status"]["error"] == 9 and summary["status"]["ok"] == len(rows) - 9
    assert summary["error_codes"]["decode_failed"] == 3 and summary["error_codes"]["fetch_failed"] == 2
    assert sum(summary["labels"].values()) == summary["status"]["ok"]
    assert summary["run"]["rows_per_s"] > 0

    with pytest.raises(MedLensError, match="--resume"):
        run_batch([], out, settings, BatchOptions(progress=False), sources=sources, classifier=classifier)
    (out / (TMP_PREFIX + "part-stale.parquet")).write_bytes(b"half a part")
    again = run_batch([], out, settings, BatchOptions(resume=True, progress=False), sources=sources, classifier=classifier)
    assert again["run"]["sources"] == 0 and again["run"]["sources_skipped_done"] == len(sources)
    assert again["rows"] == len(rows) and not list(out.glob(TMP_PREFIX + "*"))


def test_output_folder_is_a_parquet_dataset_and_old_folders_resume(classifier, tmp_path: Path) -> None:
    images = [str(p) for p in _some_images(6)]
    out = tmp_path / "out"
    run_batch([], out, Settings(), BatchOptions(rows_per_part=2, progress=False), sources=images[:4], classifier=classifier)

    table = pq.read_table(out)  # the folder itself, as data tools read it
    frame = pd.read_parquet(out)
    assert table.num_rows == len(frame) == 4 and table.schema.names == COLUMNS
    assert sorted(frame["source"]) == sorted(images[:4]) and set(frame["status"]) == {"ok"}
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("part-")) == [SUCCESS_MARKER, SUMMARY_FILE]

    # A folder from before the summary was renamed: summary.json beside the parts, no _SUCCESS.
    (out / SUMMARY_FILE).rename(out / "summary.json")
    (out / SUCCESS_MARKER).unlink()
    again = run_batch([], out, Settings(), BatchOptions(resume=True, progress=False), sources=images, classifier=classifier)
    assert again["run"]["sources_skipped_done"] == 4 and again["run"]["sources"] == 2
    assert not (out / "summary.json").exists() and (out / SUCCESS_MARKER).is_file()
    assert sorted(pd.read_parquet(out)["source"]) == sorted(images)


def test_url_list_like_a_crawler(classifier, corpus_host, tmp_path: Path) -> None:
    good = _some_images(3)
    urls = {
        "ok": corpus_host.image_url(good[0]),
        "retried_503": corpus_host.url(f"flaky/a/2/503/{good[1].relative_to(IMAGES)}"),
        "retried_429": corpus_host.url(f"flaky/b/1/429/{good[2].relative_to(IMAGES)}"),
        "gives_up_503": corpus_host.url(f"flaky/c/9/503/{good[0].relative_to(IMAGES)}"),
        "missing": corpus_host.url("img/no/such.jpg"),
        "timeout": corpus_host.url("hang"),
        "too_large": corpus_host.url("huge"),
        "not_an_image": corpus_host.url("text"),
    }
    listing = tmp_path / "urls.txt"
    listing.write_text("\n".join(urls.values()) + "\n", encoding="utf-8")
    settings = Settings(allow_private=True, total_timeout_s=1.0, batch_fetch_retries=2, batch_retry_backoff_s=0.05,
                        max_image_bytes=2 * 1024 * 1024)
    out = tmp_path / "out"

    run_batch([str(listing)], out, settings, BatchOptions(progress=False), classifier=classifier)

    rows = {r["source"]: r for r in read_rows(out)}
    assert len(rows) == len(urls) == len(read_rows(out))
    code = {name: rows[url]["error_code"] for name, url in urls.items()}
    assert {name for name, url in urls.items() if rows[url]["status"] == "ok"} == {"ok", "retried_503", "retried_429"}
    assert code["gives_up_503"] == "fetch_failed" and "HTTP 503" in rows[urls["gives_up_503"]]["error"]
    assert "gave up after 3 tries" in rows[urls["gives_up_503"]]["error"]
    assert corpus_host.hits == {"a": 3, "b": 2, "c": 3}
    assert code["missing"] == "fetch_failed" and "HTTP 404" in rows[urls["missing"]]["error"]
    assert code["timeout"] == "fetch_timeout" and "gave up after 3 tries" in rows[urls["timeout"]]["error"]
    assert code["too_large"] == "too_large"
    assert code["not_an_image"] == "not_an_image"
    assert rows[urls["ok"]]["sha256"] == __import__("hashlib").sha256(good[0].read_bytes()).hexdigest()


def test_load_side_imports_neither_the_model_nor_the_web_layer() -> None:
    code = (
        "import sys\n"
        "import medlens.batch.loading, medlens.batch.output, medlens.ingest.sources, medlens.batch.keys\n"
        "heavy = ('torch', 'aiohttp.web', 'medlens.model.classifier', 'medlens.pipeline.batcher', 'medlens.serve')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert proc.stdout.strip() == "", f"the load side imports {proc.stdout.strip()}"


def test_ssrf_guard_applies_to_batch_urls(classifier, tmp_path: Path) -> None:
    # Refused by the guard before any connection is attempted.
    sources = ["http://10.0.0.1/x.jpg", "http://127.0.0.1:9/y.jpg", "file:///etc/passwd"]
    run_batch([], tmp_path / "o", Settings(), BatchOptions(progress=False), sources=sources, classifier=classifier)
    codes = {r["source"]: r["error_code"] for r in read_rows(tmp_path / "o")}
    assert codes == {sources[0]: "address_not_allowed", sources[1]: "address_not_allowed", sources[2]: "scheme_not_allowed"}


def test_ray_engine_without_ray_names_the_extra(tmp_path: Path) -> None:
    image = str(_some_images(1)[0])
    code = (
        "import sys; sys.modules['ray'] = None\n"  # what a machine without the extra looks like to Python
        "from medlens.cli import main\n"
        f"sys.exit(main(['batch', {image!r}, '--out', {str(tmp_path / 'o')!r}, '--engine', 'ray', '--no-progress']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MEDLENS_CONFIG_DIR": str(tmp_path)})
    assert proc.returncode == 1, proc.stderr
    assert "missing_dependency" in proc.stderr and "pip install 'medlens[scale]'" in proc.stderr
    assert not (tmp_path / "o").exists()  # failed before doing any work


def test_retry_policy_waits_for_not_now_and_gives_up_on_no() -> None:
    from medlens.batch.fetching import retry_after_s, retry_wait
    from medlens.ingest.fetch import HttpStatusError

    settings = Settings(batch_fetch_retries=2, batch_retry_backoff_s=1.0, batch_retry_max_wait_s=10.0)
    busy = HttpStatusError("fetch_failed", "HTTP 503", status=503)
    assert 1.0 <= retry_wait(busy, 0, settings) <= 1.5 and 2.0 <= retry_wait(busy, 1, settings) <= 3.0
    assert retry_wait(busy, 2, settings) is None  # out of retries
    assert retry_wait(MedLensError("fetch_timeout", "slow"), 0, settings) is not None
    assert retry_wait(HttpStatusError("fetch_failed", "HTTP 404", status=404), 0, settings) is None
    assert retry_wait(MedLensError("fetch_failed", "connection refused"), 0, settings) is None
    assert retry_wait(MedLensError("too_large", "big"), 0, settings) is None
    asked = HttpStatusError("fetch_failed", "HTTP 429", status=429, retry_after="7")
    assert retry_wait(asked, 0, settings) == 7.0
    assert retry_wait(HttpStatusError("fetch_failed", "HTTP 429", status=429, retry_after="3600"), 0, settings) == 10.0
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0 and retry_after_s("soon") is None


def test_ray_actors_are_sized_to_the_cluster() -> None:
    from medlens.batch.ray_engine import fit_workers

    def opts(**changes: object) -> BatchOptions:
        return BatchOptions(**{"engine": "ray", **changes}).resolved(Settings())

    assert fit_workers({"CPU": 16.0}, opts()) == 16  # one actor per CPU by default
    assert fit_workers({"CPU": 16.0}, opts(workers=4)) == 4
    assert fit_workers({"CPU": 16.0, "GPU": 1.0}, opts(gpus_per_worker=0.5, cpus_per_worker=2.0)) == 2  # GPUs decide
    assert fit_workers({"CPU": 2.0}, opts(load_in="tasks", load_cpus=0.25, cpus_per_worker=0.75)) == 2
    with pytest.raises(MedLensError, match="cannot hold one"):
        fit_workers({"CPU": 16.0}, opts(gpus_per_worker=1.0))
    with pytest.raises(MedLensError, match="cannot hold one"):
        fit_workers({"CPU": 0.5}, opts())
