"""Shared command-line behaviour: bad input is one line on stderr and a non-zero exit."""

from __future__ import annotations

import sys
from typing import NoReturn


def fail(prog: str, error: BaseException, code: int = 2) -> NoReturn:
    print(f"{prog}: error: {error}", file=sys.stderr)
    raise SystemExit(code)
