"""Tests of what `bench/` relies on (the benchmarks themselves never run as tests)."""
