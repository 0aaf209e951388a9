"""Benchmarks run with pytest-benchmark: `make bench` (they are not part of `make test`)."""
