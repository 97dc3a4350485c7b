"""Shared, tool-independent code: schemas, artifact IO, video IO, model registry, run manifest."""
