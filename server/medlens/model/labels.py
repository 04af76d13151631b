"""The label names every part of MedLens agrees on."""

MEDICAL = "medical"
NON_MEDICAL = "non-medical"
OTHER_MODALITY = "other"  # a medical kind the modality head was not trained to name
