"""Benchmarks of the product against logging from inside the web process.

``python bench/run.py`` is the entry point; BENCHMARKS.md records the figures.
"""
