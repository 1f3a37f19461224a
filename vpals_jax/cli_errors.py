"""Hydra entry points: a config error is one line on stderr naming the key, and exit code 2.

Hydra reports a misspelt key or group, a value of the wrong type or a missing mandatory value in
several lines and exits 1, the code of a crash, so a script cannot tell a typo from a bug.
:func:`one_line_config_errors` lets Hydra raise instead (``HYDRA_FULL_ERROR=1``, for the duration
of the call) and turns those errors into the house one-liner; every other exception propagates
unchanged. A user who sets ``HYDRA_FULL_ERROR=1`` gets Hydra's full report, as Hydra documents.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf.errors import InterpolationToMissingValueError, MissingMandatoryValue, OmegaConfBaseException

from vpals_jax.cli import fail

F = TypeVar("F", bound=Callable[..., Any])

CONFIG_ERRORS = (ConfigCompositionException, OverrideParseException, OmegaConfBaseException)
_FULL_ERROR = "HYDRA_FULL_ERROR"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _missing_value(error: BaseException) -> MissingMandatoryValue | None:
    """The MissingMandatoryValue behind ``error``: an interpolation to a missing value
    (``hydra.run.dir: ${run_dir}``) is raised while handling the one that names the key to give."""
    if not isinstance(error, (MissingMandatoryValue, InterpolationToMissingValueError)):
        return None
    seen: BaseException | None = error
    while seen is not None and not isinstance(seen, MissingMandatoryValue):
        seen = seen.__context__
    return seen


def _omegaconf_text(error: OmegaConfBaseException) -> tuple[str, str | None]:
    """OmegaConf's message without its ``full_key:``/``object_type=`` lines, and the key."""
    if (missing := _missing_value(error)) is not None:
        key = getattr(missing, "full_key", None)
        return (f"Missing mandatory value: {key}" if key else _first_line(str(missing))), key
    text = _first_line(getattr(error, "msg", None) or str(error)) or type(error).__name__
    return text, getattr(error, "full_key", None)


def config_error_line(error: Exception) -> str:
    """One line for a Hydra or OmegaConf config error, naming the key, group or override."""
    if isinstance(error, OverrideParseException):
        return f"cannot parse override {error.override!r}: {_first_line(error.message)}"
    if isinstance(error, MissingConfigException) and error.options:
        return f"{_first_line(str(error))} (available: {', '.join(error.options)})"
    if isinstance(error, OmegaConfBaseException):
        line, key = _omegaconf_text(error)
    elif isinstance(error.__cause__, OmegaConfBaseException):
        text, key = _omegaconf_text(error.__cause__)
        line = f"{_first_line(str(error)).rstrip('.')}: {text}"
    else:
        line, key = _first_line(str(error)) or type(error).__name__, None
    return line if not key or key in line else f"{line} (key {key})"


def fail_config(prog: str, error: Exception) -> NoReturn:
    """``prog: error: <one line>`` on stderr and exit code 2, as for any other bad input."""
    fail(prog, ValueError(config_error_line(error)))


def one_line_config_errors(prog: str) -> Callable[[F], F]:
    """Decorate a ``@hydra.main`` function: config errors become ``prog: error: ...`` and exit 2."""

    def decorate(hydra_main: F) -> F:
        @functools.wraps(hydra_main)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            previous = os.environ.get(_FULL_ERROR)
            if previous == "1":
                return hydra_main(*args, **kwargs)
            os.environ[_FULL_ERROR] = "1"
            try:
                return hydra_main(*args, **kwargs)
            except CONFIG_ERRORS as e:
                fail_config(prog, e)
            finally:
                if previous is None:
                    del os.environ[_FULL_ERROR]
                else:
                    os.environ[_FULL_ERROR] = previous

        return wrapper  # type: ignore[return-value]

    return decorate
