"""Verifier backends, one module each, registered by name on import."""
