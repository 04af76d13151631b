"""Downloads the way a crawler makes them: the server's Fetcher (SSRF guard, byte cap, timeouts,
per-host cap) plus retries with backoff for answers that mean "not now" rather than "no".

HTTP 429 and 5xx and timeouts are retried `batch_fetch_retries` times, waiting
`batch_retry_backoff_s` doubled each time with jitter (so a thousand workers that failed together
do not come back together), or the host's Retry-After when it asks for longer. Everything else
(404, refused by the guard, too large, not an image) fails at once: trying again cannot help.
"""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from medlens.errors import MedLensError
from medlens.ingest.fetch import Fetcher, HttpStatusError
from medlens.settings import Settings

TOO_MANY_REQUESTS = 429


def crawler_settings(settings: Settings) -> Settings:
    """The Fetcher's caps for a batch worker: more downloads in flight than the server allows."""
    return settings.replace(fetch_concurrency=settings.batch_fetch_concurrency, fetch_per_host=settings.batch_fetch_per_host)


async def fetch_with_retries(fetcher: Fetcher, url: str, *, max_bytes: int, settings: Settings) -> bytes:
    """The bytes of `url`, or the last MedLensError, its message saying how many tries it took."""
    attempt = 0
    while True:
        try:
            return (await fetcher.fetch(url, max_bytes=max_bytes)).data
        except MedLensError as exc:
            wait = retry_wait(exc, attempt, settings)
            if wait is None:
                if attempt:
                    raise MedLensError(exc.code, f"{exc.message} (gave up after {attempt + 1} tries)") from exc
                raise
        await asyncio.sleep(wait)
        attempt += 1


def retry_wait(exc: MedLensError, attempt: int, settings: Settings) -> float | None:
    """Seconds to wait before trying again after `exc` on try `attempt` (0-based), or None: give up."""
    if attempt >= settings.batch_fetch_retries:
        return None
    asked = None
    if isinstance(exc, HttpStatusError):
        if exc.status != TOO_MANY_REQUESTS and exc.status < 500:
            return None
        asked = retry_after_s(exc.retry_after)
    elif exc.code != "fetch_timeout":
        return None
    backoff = settings.batch_retry_backoff_s * (2 ** attempt) * (1 + random.random() / 2)
    return min(max(backoff, asked or 0.0), settings.batch_retry_max_wait_s)


def retry_after_s(header: str | None) -> float | None:
    """A Retry-After header (seconds, or an HTTP date) as seconds from now; None when absent or odd."""
    if not header:
        return None
    text = header.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
