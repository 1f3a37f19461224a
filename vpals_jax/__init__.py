"""vPALs-JAX: verified performance prediction from pressure stall information."""
