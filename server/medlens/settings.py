"""The one `Settings` object: every limit, timeout and switch of MedLens, named and documented once.

Values are layered: defaults < config file (`config.toml` in the config folder) < `MEDLENS_*`
environment variables < command-line flags. `Settings.load()` does the layering; tests build
`Settings(...)` directly with the values they need.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from medlens.errors import MedLensError


def _doc(text: str, default: Any) -> Any:
    return field(default=default, metadata={"doc": text})


def default_config_dir() -> Path:
    """Per-user folder for the token and config file (XDG on Linux, overridable for tests)."""
    env = os.environ.get("MEDLENS_CONFIG_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "medlens"


def default_cache_dir() -> Path:
    env = os.environ.get("MEDLENS_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "medlens"


@dataclass
class Settings:
    # server
    host: str = _doc("Address the server listens on; loopback unless you know why not.", "127.0.0.1")
    port: int = _doc("TCP port of the server.", 8377)
    token_required: bool = _doc("Require `Authorization: Bearer <token>` on classify routes.", True)
    allow_private: bool = _doc("Let the server fetch loopback/private/link-local addresses (SSRF guard off).", False)
    pairing_ttl_s: float = _doc("Seconds a `medlens pair` code stays valid (short: it stands in for the token).", 120.0)
    pairing_attempts: int = _doc("Tries, right or wrong, one `medlens pair` code allows before it is spent.", 5)
    idle_shutdown_s: float = _doc("Seconds without any request after which `medlens serve` stops by itself; 0 = never "
                                  "(the default when you start it). A server the native host starts gets "
                                  "native_idle_shutdown_s instead.", 0.0)
    # native messaging host (`medlens native-host`, started by the browser)
    native_idle_shutdown_s: float = _doc("idle_shutdown_s of a server the native host starts for the browser, so it "
                                         "does not linger long after the browser closes; 0 = it runs until stopped.",
                                         900.0)
    native_start_timeout_s: float = _doc("Seconds the native host waits for a server it started (or one starting "
                                         "already) to answer /v1/health before it reports server_start_failed.", 90.0)
    # model
    device: str = _doc("Where the feature extractor runs: auto (CUDA when onnxruntime-gpu is installed), cpu or cuda.", "auto")
    model_dir: str = _doc("Folder with the feature extractor, heads and model card; empty = the shipped model.", "")
    model_threads: int = _doc("CPU threads for the feature extractor; 0 = ONNX Runtime's default (all cores).", 0)
    # batching
    max_batch: int = _doc("Most images the model sees in one forward pass.", 16)
    max_wait_ms: float = _doc("How long the batcher waits to fill a batch once it has one image.", 5.0)
    queue_max: int = _doc("Most images waiting for the model; beyond it requests get 503 queue_full.", 512)
    retry_after_s: int = _doc("Seconds a client is told to wait (Retry-After) when the queue is full.", 2)
    decode_workers: int = _doc("Threads decoding images off the event loop; 0 = min(4, CPU count).", 0)
    queue_order: str = _doc("Order waiting work (downloads, decoding, the model queue) is served in: fair (requests "
                            "take turns, so one image never waits behind a page scan) or fifo (first in, first out).",
                            "fair")
    # fetching
    fetch_concurrency: int = _doc("Most downloads in flight at once, all hosts together.", 32)
    fetch_per_host: int = _doc("Most downloads in flight to one host.", 6)
    connect_timeout_s: float = _doc("Seconds to establish a connection to an image or page host.", 5.0)
    total_timeout_s: float = _doc("Seconds for one whole download, redirects included.", 20.0)
    max_redirects: int = _doc("Most redirect hops followed per download.", 5)
    user_agent: str = _doc("User-Agent sent with downloads.", "MedLens/0.1 (+local image classifier)")
    # sizes
    max_image_bytes: int = _doc("Largest image download or upload, in bytes.", 20 * 1024 * 1024)
    max_pixels: int = _doc("Largest decoded image (width x height): decompression-bomb guard.", 50_000_000)
    max_jpeg_scans: int = _doc("Most scans in one JPEG (a progressive one has about 10); each is a full pass over the "
                               "image, so more is refused as decode_failed before decoding (scan bombs).", 64)
    window_block_bytes: int = _doc("Scratch memory for windowing a 16-bit or float image to 8 bits (on top of its "
                                   "decoded pixels): it is mapped in float32 row blocks of at most this size.",
                                   16 * 1024 * 1024)
    max_request_pixels: int = _doc("Most pixels decoded for one request, all its images together (JPEGs count at the "
                                   "reduced size they are decoded at); images beyond are too_many_pixels.",
                                   500_000_000)
    min_side: int = _doc("Images whose shorter side is below this many pixels are skipped as too small.", 16)
    max_items: int = _doc("Most URLs or files in one request.", 256)
    max_body_bytes: int = _doc("Largest request body, in bytes.", 64 * 1024 * 1024)
    max_json_depth: int = _doc("Deepest nesting of arrays/objects in a JSON body (a valid one needs 3); deeper is "
                               "400 invalid_json.", 32)
    max_json_values: int = _doc("Most values (array items and object members) in a JSON body, counted on the raw "
                                "bytes before parsing; more is 400 invalid_json.", 10_000)
    body_timeout_s: float = _doc("Seconds a request body may take to arrive once its headers have; slower is 408 "
                                 "body_timeout.", 60.0)
    idle_timeout_s: float = _doc("Seconds a connection may sit without a complete request (idle keep-alive, or "
                                 "headers trickling in) before the server closes it.", 15.0)
    max_pdf_bytes: int = _doc("Largest PDF accepted, in bytes.", 64 * 1024 * 1024)
    max_pdf_pages: int = _doc("Most PDF pages scanned; later pages are left out and flagged truncated.", 300)
    max_pdf_images: int = _doc("Most PDF images classified; later ones are left out and flagged truncated.", 500)
    max_pdf_pixels: int = _doc("Most pixels of all images kept from one PDF together (each image is held in full "
                               "until classified); images beyond are left out and the PDF flagged truncated.",
                               100_000_000)
    pdf_image_side: int = _doc("Shorter side a PDF image is box-reduced to (by an integer factor) in its extraction "
                               "process before it is handed to the server: the model's input side, so the model sees "
                               "the same pixels; 0 = full size.", 224)
    pdf_time_limit_s: float = _doc("Seconds one PDF's extraction may take before pdf_timeout.", 60.0)
    pdf_workers: int = _doc("Warm PDF extraction processes kept ready (each killed at pdf_time_limit_s); more PDFs "
                            "at once wait for one to be free. 0 = a fresh process per PDF (about 1 s more each).", 2)
    pdf_worker_max_jobs: int = _doc("PDFs one extraction process handles before it is replaced by a fresh one "
                                    "(bounds what a hostile file can leave behind in it).", 50)
    max_html_bytes: int = _doc("Largest HTML page fetched for page scans, in bytes.", 5 * 1024 * 1024)
    max_page_tags: int = _doc("Most tags and attributes read from one page (hostile-markup budget); the rest of "
                              "the page is left out and the scan flagged truncated.", 500_000)
    page_parse_time_s: float = _doc("Seconds one page's parse may take before the rest is left out (truncated).", 5.0)
    max_page_images: int = _doc("Most images classified from one web page.", 200)
    cache_entries: int = _doc("Results kept in the URL / content-hash result cache.", 4096)
    thumbnail_side: int = _doc("Longest side of PDF image thumbnails, in pixels.", 160)
    # containers (archives, office files, e-books, DICOM, multi-frame images, video: ingest/load.py)
    max_file_bytes: int = _doc("Largest file, download or upload read as a container (archive, office file, "
                               "e-book, DICOM, video), in bytes; a plain image stays under max_image_bytes.", 256 * 1024 * 1024)
    max_container_images: int = _doc("Most images taken from one container (archive members, pages, frames); "
                                     "later ones are left out and the answer says truncated.", 200)
    max_archive_members: int = _doc("Most members of one ZIP or tar (or office file) looked at; more is truncated.", 2000)
    max_archive_bytes: int = _doc("Most bytes one archive may unpack to, all members and nested archives together "
                                  "(zip-bomb guard).", 512 * 1024 * 1024)
    max_archive_ratio: float = _doc("Highest uncompressed/compressed ratio of one archive member (zip-bomb guard).", 200.0)
    max_archive_depth: int = _doc("How deep archives inside archives are opened (1 = members of the archive "
                                  "given, not of archives inside it).", 3)
    frames_per_image: int = _doc("Frames taken, spread evenly, from an animated GIF/WebP/PNG or a multi-frame "
                                 "DICOM (the result is the most medical one).", 4)
    max_tiff_pages: int = _doc("Most pages of a multi-page TIFF classified (each its own row).", 50)
    media_workers: int = _doc("Warm video and e-book extraction processes (each killed at video_time_limit_s), "
                              "started by the first video or e-book.", 1)
    video_frames: int = _doc("Frames sampled from a video, spread evenly across its duration.", 8)
    max_video_s: float = _doc("Longest video accepted, in seconds (by its header); longer is too_long.", 3600.0)
    video_time_limit_s: float = _doc("Seconds one video's (or e-book's) frame extraction may take in its worker "
                                     "process before extraction_timeout.", 60.0)
    # batch (`medlens batch`)
    batch_workers: int = _doc("`medlens batch`: local engine: batches loading ahead of the model (0 = 2); Ray engine: "
                              "most actors (0 = as many as the cluster's CPUs, or GPUs, hold).", 0)
    batch_cpus_per_worker: float = _doc("`medlens batch --engine ray`: CPUs each actor reserves (it loads and "
                                        "classifies; its model threads).", 1.0)
    batch_gpus_per_worker: float = _doc("`medlens batch --engine ray`: GPUs each actor reserves; 0 = CPU only, "
                                        "a fraction shares a GPU between actors.", 0.0)
    batch_sources_per_task: int = _doc("`medlens batch`: sources one loading call reads, fetches and decodes together "
                                       "(a Ray task's or actor call's share of the work).", 64)
    batch_rows_per_part: int = _doc("`medlens batch`: rows gathered before a Parquet part is written (whole sources "
                                    "only; a killed run redoes at most this many rows per part in flight).", 10_000)
    batch_fetch_concurrency: int = _doc("`medlens batch`: downloads in flight per loading worker, all hosts together.", 64)
    batch_fetch_per_host: int = _doc("`medlens batch`: downloads in flight per loading worker to one host "
                                     "(politeness; a corpus spread over many hosts is fetched fastest).", 8)
    batch_fetch_retries: int = _doc("`medlens batch`: retries of a download that got HTTP 429 or 5xx or timed out.", 2)
    batch_retry_backoff_s: float = _doc("`medlens batch`: wait before the first retry; doubled each time, plus up to "
                                        "50 % jitter. A Retry-After header is honoured up to batch_retry_max_wait_s.", 0.5)
    batch_retry_max_wait_s: float = _doc("`medlens batch`: longest wait between two tries of one download.", 30.0)
    batch_actor_start_timeout_s: float = _doc("`medlens batch --engine ray`: seconds to wait for every actor to have "
                                              "its model loaded before work is handed out (so it is spread over all "
                                              "of them); 0 = hand out work as actors come up.", 600.0)
    # paths
    config_dir: str = _doc("Folder for the token file and config.toml; empty = per-user default.", "")
    cache_dir: str = _doc("Folder for the training feature cache; empty = per-user default.", "")

    @property
    def config_path(self) -> Path:
        return Path(self.config_dir) if self.config_dir else default_config_dir()

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else default_cache_dir()

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)

    @classmethod
    def load(
        cls,
        overrides: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        config_file: Path | None = None,
    ) -> "Settings":
        """Layer defaults < config file < MEDLENS_* env < overrides (flags; None values ignored)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        cfg_dir = Path(env.get("MEDLENS_CONFIG_DIR", "")) if env.get("MEDLENS_CONFIG_DIR") else default_config_dir()
        path = config_file or cfg_dir / "config.toml"
        if path.is_file():
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise MedLensError("invalid_request", f"config file {path} is not valid TOML: {exc}") from exc
            values.update(_coerce_all(data, f"config file {path}"))
        from_env = {
            f.name: env[f"MEDLENS_{f.name.upper()}"] for f in fields(cls) if f"MEDLENS_{f.name.upper()}" in env
        }
        values.update(_coerce_all(from_env, "environment"))
        values.update(_coerce_all({k: v for k, v in (overrides or {}).items() if v is not None}, "flags"))
        return cls(**values)


def _coerce_all(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    known = {f.name: f for f in fields(Settings)}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise MedLensError("invalid_request", f"unknown setting {key!r} in {where}")
        out[key] = _coerce(known[key].type, value, key, where)
    return out


def _coerce(type_name: Any, value: Any, key: str, where: str) -> Any:
    kind = type_name if isinstance(type_name, str) else getattr(type_name, "__name__", str(type_name))
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError(value)
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise MedLensError("invalid_request", f"setting {key!r} in {where}: {value!r} is not a valid {kind}") from exc


def settings_reference() -> str:
    """Markdown table of every setting, for the README and `medlens settings`."""
    rows = ["| setting | default | what it does |", "|---|---|---|"]
    for f in fields(Settings):
        rows.append(f"| `{f.name}` (`MEDLENS_{f.name.upper()}`) | `{f.default!r}` | {f.metadata['doc']} |")
    return "\n".join(rows)
