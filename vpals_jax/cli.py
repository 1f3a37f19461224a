"""Shared command-line behaviour: bad input is one line on stderr and a non-zero exit."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import NoReturn


def fail(prog: str, error: BaseException, code: int = 2) -> NoReturn:
    print(f"{prog}: error: {error}", file=sys.stderr)
    raise SystemExit(code)


def discard_job_dir(job_dir: str | Path) -> None:
    """Remove a failed job's Hydra output folder if it holds only Hydra's own files (``.hydra/``,
    the job's ``*.log``), then every ancestor left empty: Hydra creates the folder, and the run
    directory above it, before the job can check its input, and a refused command leaves nothing."""
    d = Path(job_dir)
    if not d.is_dir() or any(p.name != ".hydra" and not (p.is_file() and p.suffix == ".log") for p in d.iterdir()):
        return
    shutil.rmtree(d)
    for parent in d.parents:
        try:
            parent.rmdir()  # only an empty folder: the first one holding anything stops the walk
        except OSError:
            break
