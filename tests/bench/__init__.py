"""Benchmarks: real PostgreSQL, a real HTTP server, numbers written to bench-results/<name>.json.

`python -m tests.bench` runs them all; each module also runs on its own (`python -m tests.bench.bench_lease`).
"""
