"""Training, evaluation and export of the model (needs the train extra: torch, scikit-learn, matplotlib).

Depends on `medlens.model` (what serving loads), never the other way round: serving imports none
of these modules (tests/test_lean_serving.py checks).
"""
