"""Known-truth networks for tests and benchmarks (``instances``)."""
