"""The Hydra config tree, shipped inside the package as ``vpals_jax.conf``.

``vpals_jax/conf`` is a link to this folder, so the entry points find their configs the same way
from a checkout (``python -m vpals_jax.train``: Hydra looks next to the file), an editable
install and a regular install (``vpals-train``: Hydra looks in the package ``vpals_jax.conf``,
which needs this ``__init__.py``). The YAML files are its package data (``pyproject.toml``).
"""
