"""The aiohttp application factory: `init_app(settings, classifier=None)`.

Every long-lived resource is opened and closed in `app.cleanup_ctx`, in dependency order (token,
model and its batcher, download session, pipeline), so a test, `medlens serve` and an embedding
program all get the same start-up and a clean shutdown; the app itself only wires.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, AsyncIterator, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from medlens.errors import plain_reason

from medlens.ingest.fetch import Fetcher
from medlens.model.classifier import Classifier
from medlens.serve import keys
from medlens.pipeline.batcher import MicroBatcher
from medlens.serve.middlewares import MIDDLEWARES
from medlens.pipeline.pipeline import Pipeline
from medlens.serve.routes import routes
from medlens.serve.security import load_or_create_token, new_page_secret
from medlens.serve.webpage import page_routes
from medlens.settings import Settings


def runner_options(settings: Settings) -> dict[str, Any]:
    """What the server's `web.AppRunner` needs beyond the app: a connection that holds no complete
    request for idle_timeout_s (idle keep-alive, or headers trickling in) is closed; aiohttp's
    own default keeps it an hour."""
    return {"keepalive_timeout": settings.idle_timeout_s}


class MalformedRequestLog(logging.Filter):
    """aiohttp logs every request it cannot parse (a port scanner, a bad client) as an ERROR with a
    traceback; that is the client's fault, so it becomes one WARNING line naming the peer and why."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            peer = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg, record.args = "malformed request from %s: %s", (peer, plain_reason(exc)[:200])
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
        return True


_MALFORMED = MalformedRequestLog()


def init_app(
    settings: Settings, classifier: Classifier | None = None, *, fetcher: Fetcher | None = None
) -> web.Application:
    """The MedLens app. `classifier` is loaded from `settings` at start-up when not given (tests
    and the e2e fixtures pass one loaded once per session). `fetcher` replaces the download
    client (tests give one with a test resolver); the app starts and closes it either way."""
    logging.getLogger("aiohttp.server").addFilter(_MALFORMED)  # the same filter object: added once
    app = web.Application(middlewares=MIDDLEWARES, client_max_size=settings.max_body_bytes)
    app[keys.SETTINGS] = settings
    app[keys.PAGE_SECRET] = new_page_secret()
    app.add_routes(routes)
    app.add_routes(page_routes)
    app.cleanup_ctx.append(_token_ctx)
    app.cleanup_ctx.append(_model_ctx(classifier))
    app.cleanup_ctx.append(_fetcher_ctx(fetcher))
    app.cleanup_ctx.append(_pipeline_ctx)
    return app


async def _token_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    app[keys.TOKEN] = await asyncio.to_thread(load_or_create_token, settings.config_path)
    yield


CleanupCtx = Callable[[web.Application], AsyncIterator[None]]


def _model_ctx(given: Classifier | None) -> CleanupCtx:
    async def model_ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[keys.SETTINGS]
        classifier = given if given is not None else await asyncio.to_thread(Classifier.from_settings, settings)
        app[keys.CLASSIFIER] = classifier
        async with MicroBatcher.for_classifier(classifier, settings) as batcher:
            app[keys.BATCHER] = batcher
            yield

    return model_ctx


def _fetcher_ctx(given: Fetcher | None) -> CleanupCtx:
    async def fetcher_ctx(app: web.Application) -> AsyncIterator[None]:
        async with given if given is not None else Fetcher(app[keys.SETTINGS]) as fetcher:
            app[keys.FETCHER] = fetcher
            yield

    return fetcher_ctx


async def _pipeline_ctx(app: web.Application) -> AsyncIterator[None]:
    pipeline = Pipeline(
        app[keys.SETTINGS],
        app[keys.BATCHER],
        app[keys.FETCHER],
        default_threshold=app[keys.CLASSIFIER].threshold,
    )
    async with pipeline:
        app[keys.PIPELINE] = pipeline
        yield
