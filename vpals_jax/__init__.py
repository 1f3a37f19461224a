"""vPALs-JAX: verified performance prediction from pressure stall information."""

import logging

# JAX logs "Unable to initialize backend 'tpu'" at INFO on every CPU-only machine: nothing a user
# can act on, so every entry point (and anything importing the package) keeps it quiet.
logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
