"""The local HTTP server: `init_app(settings, classifier=None)` builds the aiohttp application.

Layout: app.py (factory, resource lifecycles), routes.py (API v1 handlers), middlewares.py
(errors → JSON, Host/Origin/token, CORS), security.py (the checks as plain functions, token file),
batcher.py (MicroBatcher), pipeline.py (ingest → cache → batcher, shared with the CLI),
cache.py (LRU + single-flight), results.py (Result dicts).
"""
