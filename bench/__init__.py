"""Benchmarks, kept apart from the test suite: they measure, they do not assert."""
