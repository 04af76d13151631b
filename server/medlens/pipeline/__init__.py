"""From URLs, bytes, PDFs and pages to classified Results: used alike by `serve`, `classify` and `batch`.

It sits below all three (and imports none of them), so a batch worker or the CLI never loads the
web layer just to classify. Attributes are imported on first use, so `medlens.pipeline.sizing`
or `.results` can be used without loading the batcher and the model behind it.
"""

from typing import Any

__all__ = ["MODEL_SIDE", "Pipeline"]


def __getattr__(name: str) -> Any:
    if name == "Pipeline":
        from medlens.pipeline.pipeline import Pipeline

        return Pipeline
    if name == "MODEL_SIDE":
        from medlens.pipeline.sizing import MODEL_SIDE

        return MODEL_SIDE
    raise AttributeError(f"module 'medlens.pipeline' has no attribute {name!r}")
