"""Serving: the safe runtime predictor and its command line."""
