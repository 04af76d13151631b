"""Shared fixtures. Each concern keeps its fixtures in tests/fixtures/<name>.py, loaded here."""

pytest_plugins = [
    "fixtures.data",
    "fixtures.site",
    "fixtures.server",
    "fixtures.batch",
    "fixtures.native",
]
