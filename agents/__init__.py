"""Agents that search JAHS-v0 and the Benchmark, and the harness that compares them (``python -m agents.bench``)."""
