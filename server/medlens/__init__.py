"""MedLens: tells medical images from non-medical ones."""

__version__ = "0.1.0"
API_VERSION = 1
