"""Data: the canonical schema, the synthetic generator, table loaders and the normaliser."""
