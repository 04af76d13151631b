"""From URLs, bytes, PDFs and pages to classified Results: used alike by `serve`, `classify` and `batch`.

It sits below all three (and imports none of them), so a batch worker or the CLI never loads the
web layer just to classify.
"""

from medlens.pipeline.pipeline import MODEL_SIDE, Pipeline

__all__ = ["MODEL_SIDE", "Pipeline"]
