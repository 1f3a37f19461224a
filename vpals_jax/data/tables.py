"""Reading tables: canonical-schema CSV/Parquet files, tables from elsewhere (other column names
and units, mapped by ``data.columns`` and ``data.units``) and the real benchmark data sets.

Every failure is a ``DataError`` with one line naming the file, the column and the value, so
that a user with a broken CSV knows what to fix without reading a traceback.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vpals_jax.data import schema

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EXTERNAL_DATA = PROJECT_ROOT / "data" / "external"


class DataError(ValueError):
    """Bad input data; the message is one line naming the file, column and value."""


def resolve_path(path: str | Path) -> Path:
    """A path as given, else relative to the project root (Hydra runs may start anywhere)."""
    p = Path(path).expanduser()
    if p.exists() or p.is_absolute():
        return p
    return PROJECT_ROOT / p


PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".txt", "")
# Larger than any count, size or duration (in this schema's units) a measurement holds, and still
# below 2**53, where float64 stops representing integers: beyond it a value is a unit or
# corruption error, and min-max spans of such values swamp every real difference.
MAX_MAGNITUDE = 1e15


def _is_text(p: Path) -> bool:
    """No NUL byte and valid UTF-8 in the first 64 KiB: pandas would parse many binary files into
    a tokenising error about field counts, or even into rows."""
    with p.open("rb") as f:
        head = f.read(65536)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return b"\0" not in head


def _csv_header(p: Path) -> list[str]:
    """The header fields as written (pandas renames a repeated name ``x`` to ``x.1``)."""
    with p.open(newline="", encoding="utf-8-sig") as f:
        return next(csv.reader(f), [])


def read_frame(path: str | Path, header: bool = True, names: Sequence[str] | None = None) -> pd.DataFrame:
    """A CSV or Parquet file as a frame; an unreadable, empty, binary or malformed file, or a
    header naming a column twice, is a ``DataError`` naming the file."""
    p = resolve_path(path)
    if not p.is_file():
        raise DataError(f"data file not found: {path}")
    suffix = p.suffix.lower()
    if suffix not in PARQUET_SUFFIXES + CSV_SUFFIXES:
        raise DataError(f"{path}: unsupported file type {suffix!r} (use .csv or .parquet)")
    parquet = suffix in PARQUET_SUFFIXES
    try:
        if parquet:
            df = pd.read_parquet(p)
        else:
            if not _is_text(p):
                raise DataError(f"{path}: not a text CSV file (binary, or not UTF-8)")
            # index_col=False: some published CSVs end every line with a comma, which would otherwise
            # shift the first column into the index.
            df = pd.read_csv(
                p, header=0 if header else None, names=None if header else list(names or []), index_col=False
            )
        written = [str(c) for c in df.columns] if parquet or not header else _csv_header(p)
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty (no header, no rows)") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text CSV file (binary, or not UTF-8)") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read the file ({e.strerror or e})") from None
    except ValueError as e:  # pandas' ParserError, pyarrow's ArrowInvalid
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{path}: not a readable {'Parquet' if parquet else 'CSV'} file ({first})") from None
    repeated = sorted({c for c in written if c.strip() and written.count(c) > 1})
    if repeated:
        raise DataError(f"{path}: column(s) {', '.join(map(repr, repeated))} appear more than once in the header")
    return df


def missing_columns(df: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """The columns ``df`` lacks, each as ``'a'`` or ``'a' (did you mean 'b'?)``."""
    present = [str(c) for c in df.columns]
    named = []
    for col in columns:
        if col not in df.columns:
            close = difflib.get_close_matches(col, present, n=1)
            named.append(f"{col!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return named


def require_columns(df: pd.DataFrame, columns: Sequence[str], where: str) -> None:
    if missing := missing_columns(df, columns):
        raise DataError(f"{where}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")


def coerce_numeric(df: pd.DataFrame, columns: Sequence[str], where: str) -> pd.DataFrame:
    """Columns as float64; a value that is present but not a number is an error naming it."""
    out = df.copy()
    for col in columns:
        converted = pd.to_numeric(out[col], errors="coerce")
        bad = converted.isna() & out[col].notna()
        if bad.any():
            row = bad.idxmax()
            raise DataError(f"{where}: column {col!r} has a non-numeric value {out[col][row]!r} at row {row}")
        out[col] = converted.astype(np.float64)
    return out


def drop_missing(df: pd.DataFrame, columns: Sequence[str], policy: str, where: str) -> pd.DataFrame:
    """Rows with a missing value (NaN) in ``columns``: dropped with a logged count, or an error (policy ``fail``)."""
    if policy not in ("drop", "fail"):
        raise DataError(f"nan_policy must be 'drop' or 'fail', got {policy!r}")
    missing = np.isnan(df[list(columns)].to_numpy(dtype=np.float64))
    bad_rows = missing.any(axis=1)
    if not bad_rows.any():
        return df
    first = int(np.argmax(bad_rows))
    col = list(columns)[int(np.argmax(missing[first]))]
    if policy == "fail":
        raise DataError(
            f"{where}: {int(bad_rows.sum())} row(s) with NaN, first at row {df.index[first]} "
            f"column {col!r} (set data.nan_policy=drop to drop them)"
        )
    log.warning("%s: dropped %d row(s) with NaN (first at row %s, column %r)", where, bad_rows.sum(), df.index[first], col)
    return df.loc[~bad_rows]


def check_values(df: pd.DataFrame, columns: Sequence[str], where: str) -> None:
    """Refuse a value no measurement can take: infinite, beyond ``MAX_MAGNITUDE``, or outside the
    column's physical range (``schema.physical_range``: a PSI share above 100 %, a negative latency)."""
    for col in columns:
        v = df[col].to_numpy(dtype=np.float64)
        lo, hi = schema.physical_range(col)
        for bad, why in (
            (np.isinf(v), "not finite"),
            (np.abs(v) > MAX_MAGNITUDE, f"magnitude above {MAX_MAGNITUDE:g}"),
            ((v < lo) | (v > hi), f"outside the physical range [{lo:g}, {hi:g}]"),
        ):
            if bad.any():
                i = int(np.argmax(bad))
                raise DataError(f"{where}: column {col!r} has an impossible value {float(v[i])!r} "
                                f"at row {df.index[i]} ({why})")  # fmt: skip


def _pattern_renames(src: str, dst: str, present: Sequence[str], where: str) -> dict[str, str]:
    """``target_*`` -> ``cg_*``: every column matching ``src``, with the text under ``*`` carried over."""
    if src.count("*") != 1 or dst.count("*") != 1:
        raise DataError(f"data.columns: {src!r} -> {dst!r}: a pattern needs exactly one '*' on each side")
    head, tail = src.split("*")
    new_head, new_tail = dst.split("*")
    matched = [c for c in present if len(c) >= len(head) + len(tail) and c.startswith(head) and c.endswith(tail)]
    if not matched:
        raise DataError(f"{where}: data.columns pattern {src!r} matches no column of the file")
    return {c: new_head + c[len(head) : len(c) - len(tail)] + new_tail for c in matched}


def rename_columns(df: pd.DataFrame, columns: Mapping[str, str], where: str) -> pd.DataFrame:
    """File column names -> schema names (``data.columns``); explicit names win over patterns.

    A name the file lacks is refused rather than ignored: a silently unused entry would leave the
    schema column missing or, worse, let another column of the file stand in for it.
    """
    if not columns:
        return df
    present = [str(c) for c in df.columns]
    renames: dict[str, str] = {}
    for src, dst in columns.items():
        if "*" in src or "*" in dst:
            renames.update(_pattern_renames(str(src), str(dst), present, where))
    for src, dst in columns.items():
        if "*" in src or "*" in dst:
            continue
        if src not in present:
            close = difflib.get_close_matches(str(src), present, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise DataError(f"{where}: data.columns names column {src!r}, which the file does not have{hint}")
        renames[str(src)] = str(dst)
    renames = {k: v for k, v in renames.items() if k != v}
    result = [renames.get(c, c) for c in present]
    if repeated := sorted({c for c in result if result.count(c) > 1}):
        sources = [c for c in present if renames.get(c, c) == repeated[0]]
        raise DataError(f"{where}: data.columns makes {' and '.join(map(repr, sources))} both {repeated[0]!r}")
    return df.rename(columns=renames)


def check_units(units: Mapping[str, Any]) -> None:
    """Scales must be finite and positive: a negative one would flip every monotonicity direction."""
    for col, factor in units.items():
        ok = isinstance(factor, (int, float)) and not isinstance(factor, bool) and math.isfinite(factor) and factor > 0
        if not ok:
            raise DataError(f"data.units.{col} must be a finite number > 0 (the factor into the schema's unit), "
                            f"got {factor!r}")  # fmt: skip


def scale_units(df: pd.DataFrame, units: Mapping[str, float], where: str) -> pd.DataFrame:
    """Each column of ``units`` (named after renaming) times its factor, into the schema's units."""
    check_units(units)
    for col, factor in units.items():
        if col not in df.columns:
            close = difflib.get_close_matches(str(col), [str(c) for c in df.columns], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise DataError(f"{where}: data.units names column {col!r}, which the table does not have "
                            f"after data.columns{hint}")  # fmt: skip
        df = coerce_numeric(df, [col], where)
        df[col] = df[col] * float(factor)
    return df


def read_table(
    path: str, app: str, columns: Mapping[str, str] | None = None, units: Mapping[str, float] | None = None
) -> pd.DataFrame:
    """The rows of ``app`` in a table file, with columns renamed to the schema and scaled into its units.

    A file without an ``app`` column (a measurement of one application, as other tools write them)
    is taken to hold only ``app``'s rows.
    """
    check_units(units or {})
    df = rename_columns(read_frame(path), columns or {}, path)
    if "app" in df.columns:
        apps = sorted(str(a) for a in df["app"].dropna().unique())
        if app not in apps:
            raise DataError(f"{path}: unknown app {app!r}; the file holds {apps}")
        df = df[df["app"] == app]
    else:
        log.info("%s: no 'app' column; every row is taken as %s's", path, app)
    return scale_units(df, units or {}, path)


@dataclass(frozen=True)
class BenchmarkSource:
    """A real benchmark table shipped under data/external (see its README for provenance)."""

    files: tuple[str, ...]  # one file (random split) or (train, test)
    target: str
    features: tuple[str, ...]
    names: tuple[str, ...] = ()  # column names for header-less files
    drop_columns: tuple[str, ...] = ()
    min_target: float | None = None
    notes: str = ""
    feature_directions: dict[str, int] = field(default_factory=dict)


LINNOS_COLUMNS = (
    "queue_len_h0", "queue_len_h1", "queue_len_h2", "queue_len_h3", "queue_len_now",
    "latency_h0", "latency_h1", "latency_h2", "latency_h3", "latency_us",
)  # fmt: skip

BENCHMARKS: dict[str, BenchmarkSource] = {
    "linnos": BenchmarkSource(
        files=("linnos/linnos.csv",),
        target="latency_us",
        features=LINNOS_COLUMNS[:-1],
        names=LINNOS_COLUMNS,
        notes="LinnOS I/O latency; col 4 = current queue length, col 8 = newest history latency",
        feature_directions={"queue_len_now": +1, "latency_h3": +1},
    ),
    "cardwiki": BenchmarkSource(
        files=("cardesti_wiki/cardesti_wiki.csv",),
        target="num_rows",
        features=("page_latest_low", "page_latest_high", "page_len_low", "page_len_high"),
        min_target=100.0,
        notes="cardinality estimation; Ouroboros keeps num_rows > 100",
        feature_directions={"page_latest_low": -1, "page_latest_high": +1, "page_len_low": -1, "page_len_high": +1},
    ),
    "auto_mpg": BenchmarkSource(
        files=("auto_mpg/train_data.csv", "auto_mpg/test_data.csv"),
        target="MPG",
        features=("Cylinders", "Displacement", "Horsepower", "Weight", "Acceleration", "Model Year", "Origin"),
        drop_columns=("Unnamed: 0",),
        feature_directions={"Weight": -1, "Displacement": -1, "Horsepower": -1},
    ),
    "heart": BenchmarkSource(
        files=("heart/train_data.csv", "heart/test_data.csv"),
        target="target",
        features=(
            "age", "sex", "cp", "trestbps", "chol", "fbs", "restecg",
            "thalach", "exang", "oldpeak", "slope", "ca", "thal",
        ),
        drop_columns=("Unnamed: 0",),
        feature_directions={"trestbps": +1, "chol": +1},
    ),
}


def read_benchmark(name: str, path: str | None = None) -> list[pd.DataFrame]:
    """The frames of a benchmark source (one, or train and test); ``path`` overrides the data dir.

    ``path`` may be a directory holding the source's files in the same layout as
    ``data/external`` (for example ``../shared/data``) or, for one-file sources, the file itself.
    """
    if name not in BENCHMARKS:
        raise DataError(f"unknown benchmark source {name!r}; known: {sorted(BENCHMARKS)}")
    src = BENCHMARKS[name]
    if path is not None and resolve_path(path).is_file():
        if len(src.files) != 1:
            raise DataError(f"{name} has separate train/test files; give data.path as their directory")
        files = [resolve_path(path)]
    else:
        root = resolve_path(path) if path is not None else EXTERNAL_DATA
        files = [root / f for f in src.files]
    frames = []
    for f in files:
        df = read_frame(f, header=not src.names, names=src.names or None)
        frames.append(df.drop(columns=[c for c in src.drop_columns if c in df.columns]))
    return frames
