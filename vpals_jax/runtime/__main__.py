"""``python -m vpals_jax.runtime``: same as ``vpals-predict``."""

import sys

from vpals_jax.runtime.cli import main

sys.exit(main())
