"""Manifests: one row per image (DESIGN §2 artifact contract), validated on read.

Required columns: ``image_id`` (unique str), ``split``, ``quality`` (high/low), ``lesion``
(bool) and ``label`` (int grade, single-label tasks) or ``labels`` (list of disease
names, multi-label). The degraded manifest adds ``degraded`` and ``degradation``.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from comcl.common.atomic import atomic_file
from comcl.common.errors import DataError

BASE_COLUMNS = ("image_id", "split", "quality", "lesion")
QUALITIES = ("high", "low")


def require_columns(df: pd.DataFrame, columns, where: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{where}: missing required column{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(repr(c) for c in missing)} (has: {', '.join(map(str, df.columns))})")


def validate(df: pd.DataFrame, where: str, splits=("train", "val", "test")) -> pd.DataFrame:
    """Check the contract; raise a DataError naming the file and the column at fault."""
    require_columns(df, BASE_COLUMNS, where)
    if "label" not in df.columns and "labels" not in df.columns:
        raise DataError(f"{where}: missing required column 'label' (or 'labels' for multi-label)")
    if df["image_id"].duplicated().any():
        dup = df.loc[df["image_id"].duplicated(), "image_id"].iloc[0]
        raise DataError(f"{where}: image_id {dup!r} appears more than once")
    bad = ~df["quality"].isin(QUALITIES)
    if bad.any():
        raise DataError(f"{where}: column 'quality' must be high/low, got "
                        f"{df.loc[bad, 'quality'].iloc[0]!r} for {df.loc[bad, 'image_id'].iloc[0]}")
    bad = ~df["split"].isin(splits)
    if bad.any():
        raise DataError(f"{where}: column 'split' must be one of {list(splits)}, got "
                        f"{df.loc[bad, 'split'].iloc[0]!r}")
    return df


def read(path: str | Path, splits=("train", "val", "test")) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: manifest not found; run the stage that writes it first")
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise DataError(f"{path}: not a readable Parquet manifest ({exc})") from None
    return validate(df, str(path), splits)


def write(df: pd.DataFrame, path: str | Path) -> None:
    """Write a manifest atomically and byte-deterministically."""
    table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
    with atomic_file(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def is_multilabel(df: pd.DataFrame) -> bool:
    return "labels" in df.columns


def read_info(folder: str | Path) -> dict:
    path = Path(folder) / "dataset.json"
    if not path.exists():
        raise DataError(f"{path}: dataset description not found; run `prepare` first")
    return json.loads(path.read_text())


def read_subsets(splits: Path, names) -> pd.DataFrame:
    """The training rows of the named subset files (``HL``, ``HH``, ...) with a ``subset``
    column."""
    parts = [read(Path(splits) / f"{name}.parquet", splits=("train",)).assign(subset=name)
             for name in names]
    return pd.concat(parts, ignore_index=True)
