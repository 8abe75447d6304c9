"""Renderers of check results: JSON for pipelines, rich text for people."""
