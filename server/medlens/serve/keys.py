"""Typed application keys, in their own module so app, routes and middlewares can share them
without importing each other."""

from __future__ import annotations

from aiohttp import web

from medlens.ingest.fetch import Fetcher
from medlens.model.classifier import Classifier
from medlens.pipeline.batcher import MicroBatcher
from medlens.pipeline.pipeline import Pipeline
from medlens.serve.security import Access
from medlens.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
TOKEN = web.AppKey("token", str)
PAGE_SECRET = web.AppKey("page_secret", str)
CLASSIFIER = web.AppKey("classifier", Classifier)
BATCHER = web.AppKey("batcher", MicroBatcher)
FETCHER = web.AppKey("fetcher", Fetcher)
PIPELINE = web.AppKey("pipeline", Pipeline)

ACCESS = web.RequestKey("access", Access)
