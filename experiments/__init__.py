"""Reproductions and benchmarks; each module runs with `python -m experiments.<name>`."""
