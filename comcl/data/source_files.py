"""Files of the real datasets: paths from params, image folder indexes, missing files.

Shared by the EyeQ, IDRiD and ChestX-ray14 adapters (``comcl.source_*``):

- ``dataset_root``: ``data.<name>.root`` must be set and be a folder (ParamError naming
  the key otherwise); ``dataset_path``: a path key relative to the root unless absolute;
- ``ImageIndex``: the image files under a folder (recursively: ChestX-ray14 archives
  extract into several sub-folders), found by name or by stem, never by reading them;
  a listed name that would leave the folder (``..``, absolute) is a DataError naming the
  list, the column and the value;
- ``csv_header`` / ``read_table``: the one CSV reader of the adapters (all cells as
  stripped text, a BOM tolerated, required columns checked, errors naming the file);
- ``check_files``: files listed but absent and files present but not listed are counted
  and the first few named; ``data.on_missing: error`` raises a DataError, ``skip`` adds
  a note (printed by ``prepare``) and goes on with the files that are there.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pandas as pd

from comcl.common.errors import DataError, ParamError
from comcl.common.params import Params
from comcl.common.text import plural

IMAGE_EXTENSIONS = (".png", ".jpeg", ".jpg", ".tif", ".tiff", ".bmp")
SHOW = 5  # names shown in messages


@dataclass(frozen=True)
class RealDataSettings:
    """Settings every real-data adapter reads: stored image size (the main dataset's, and
    the auxiliary set's: ``data.aux_image_size``, null = the same) and `data.on_missing`."""
    image_size: int
    on_missing: str
    aux_image_size: int = 0

    @classmethod
    def from_params(cls, p: Params) -> "RealDataSettings":
        size = p.integer("data.image_size", lo=32, hi=4096)
        aux = p.integer("data.aux_image_size", lo=32, hi=4096, allow_none=True, default=None)
        return cls(image_size=size, on_missing=p.choice("data.on_missing", ["error", "skip"]),
                   aux_image_size=aux or size)


def dataset_root(p: Params, name: str) -> Path:
    key = f"data.{name}.root"
    value = p.raw(key, None)
    if value is None or value == "":
        raise ParamError(key, f"is not set: point it at the {name} download "
                              "(see docs/datasets.md), or choose another data source")
    if not isinstance(value, str):
        raise ParamError(key, f"must be a folder path, got {value!r}")
    root = Path(value).expanduser()
    if not root.is_dir():
        raise ParamError(key, f"= {value!r} is not a folder")
    return root.resolve()


def dataset_path(p: Params, root: Path, key: str, kind: str = "file",
                 allow_none: bool = False) -> Path | None:
    """A path param relative to the dataset root (unless absolute) that must exist."""
    value = p.string(key, allow_none=allow_none)
    if value is None:
        return None
    path = Path(value).expanduser()
    path = path if path.is_absolute() else root / path
    exists = path.is_dir() if kind == "dir" else path.is_file()
    if not exists:
        raise DataError(f"{path}: {'folder' if kind == 'dir' else 'file'} not found "
                        f"({p.source} `{key}` = {value!r})")
    return path


def relative_to_root(path: Path, root: Path) -> str:
    """The manifest ``source``: the path relative to the dataset root when inside it."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def safe_name(name: str, where: str, column: str) -> str:
    """A listed file name, normalised; one that leaves its folder is a DataError."""
    text = str(name).strip()
    if text and "/" not in text and "\\" not in text and text not in (".", ".."):
        return text  # a plain file name (the common case: fast for 100k rows)
    text = text.replace("\\", "/")
    pure = PurePosixPath(text)
    if not text or pure.is_absolute() or ".." in pure.parts:
        raise DataError(f"{where}: column {column!r}: file name {name!r} leaves the dataset "
                        "folder (absolute path or '..'); names must be relative")
    return pure.as_posix()


class ImageIndex:
    """Image files under a folder, by relative path, by file name and by stem."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.by_rel: dict[str, str] = {}
        self.by_name: dict[str, str] = {}
        self.by_stem: dict[str, list[str]] = {}
        dup: dict[str, list[str]] = {}
        for dirpath, dirnames, filenames in os.walk(self.folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fn in sorted(filenames):
                if fn.startswith(".") or not fn.lower().endswith(IMAGE_EXTENSIONS):
                    continue
                rel = (Path(dirpath) / fn).relative_to(self.folder).as_posix()
                self.by_rel[rel] = rel
                if fn in self.by_name:
                    dup.setdefault(fn, [self.by_name[fn]]).append(rel)
                self.by_name[fn] = rel
                self.by_stem.setdefault(fn.rsplit(".", 1)[0], []).append(rel)
        if dup:
            first = sorted(dup)[:SHOW]
            raise DataError(f"{self.folder}: {plural(len(dup), 'image file name')} in more than "
                            f"one sub-folder, e.g. {', '.join(f'{n} ({dup[n]})' for n in first)}")

    def __len__(self) -> int:
        return len(self.by_rel)

    def find(self, name: str, stem_extensions: tuple[str, ...] = ()) -> str | None:
        """Relative path of a listed file: by relative path, by file name, or (when
        ``stem_extensions`` is given) a file of the same stem with one of them."""
        if "/" in name and name in self.by_rel:
            return name
        base = name.rsplit("/", 1)[-1]
        if base in self.by_name:
            return self.by_name[base]
        stem = base.rsplit(".", 1)[0]
        for rel in self.by_stem.get(stem, []):
            if rel.lower().endswith(stem_extensions):
                return rel
        return None

    def path(self, rel: str) -> Path:
        return self.folder / rel


def _are(items: list) -> str:
    return "is" if len(items) == 1 else "are"


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:SHOW])
    return shown + (", ..." if len(items) > SHOW else "")


def check_files(missing: list[str], unlisted: list[str], listed_in: str, folder: Path,
                on_missing: str, notes: list[str], what: str = "image") -> None:
    """Count and name files listed but absent and present but not listed (DESIGN §3);
    ``what`` is the singular noun of the files."""
    problems = []
    if missing:
        problems.append(f"{plural(len(missing), what)} listed in {listed_in} "
                        f"{_are(missing)} missing from {folder} ({_names(sorted(missing))})")
    if unlisted:
        problems.append(f"{plural(len(unlisted), what)} in {folder} {_are(unlisted)} not "
                        f"listed in {listed_in} ({_names(sorted(unlisted))})")
    if not problems:
        return
    if on_missing == "error":
        raise DataError("; ".join(problems) + ". Set data.on_missing: skip to go on with "
                        "the listed files that are present.")
    for p in problems:
        notes.append(f"skipped: {p}")


def csv_header(path: Path) -> list[str]:
    """The stripped column names of a CSV file (its first row)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return [h.strip() for h in next(csv.reader(f), [])]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from None


def read_table(path: str | Path, required=(), hint: str = "",
               only_required: bool = False) -> pd.DataFrame:
    """A CSV as text cells (nothing parsed as NA), column names stripped; a DataError
    naming the file when it is unreadable or lacks a ``required`` column. ``only_required``
    reads just those columns (large files)."""
    path = Path(path)
    header = csv_header(path)
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(f"{path}: missing column{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(repr(c) for c in missing)} (has: {', '.join(header)}){hint}")
    wanted = set(required)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, index_col=False,
                         encoding="utf-8-sig",
                         usecols=(lambda c: c.strip() in wanted) if only_required else None)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError,
            ValueError) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from None
    df.columns = [str(c).strip() for c in df.columns]
    return df
