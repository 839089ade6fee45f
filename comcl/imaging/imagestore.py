"""Image shards: few large Parquet files holding PNG-encoded images, not one file per image.

Each row: ``image_id``, ``image`` (PNG), ``fov`` (PNG mask, 0/255) and ``lesion_mask``
(PNG bit mask, bit i = lesion class i of ``comcl.imaging.lesion_classes.LESION_CLASSES``; null when the
source has no pixel annotation). Rows are stored in small row groups so one image can be
read without loading its whole shard.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from comcl.common.errors import DataError
from comcl.imaging.codec import decode_image

SCHEMA = pa.schema([
    ("image_id", pa.string()),
    ("image", pa.binary()),
    ("fov", pa.binary()),
    ("lesion_mask", pa.binary()),
])
ROWS_PER_SHARD = 128
ROWS_PER_GROUP = 8


@dataclass
class ImageRecord:
    image_id: str
    image: np.ndarray            # HxWx3 RGB or HxW grey, uint8
    fov: np.ndarray              # HxW bool
    lesion_mask: np.ndarray | None  # HxW uint8 bit mask, or None


def decode_record(row: dict) -> ImageRecord:
    iid = row["image_id"]
    image = decode_image(row["image"], f"image {iid}")
    fov = decode_image(row["fov"], f"fov of {iid}", grey=True) > 0 if row.get("fov") else \
        np.ones(image.shape[:2], bool)
    mask = decode_image(row["lesion_mask"], f"lesion mask of {iid}", grey=True) \
        if row.get("lesion_mask") else None
    return ImageRecord(iid, image, fov, mask)


class ShardWriter:
    """Append rows in order; shards are ``part-00000.parquet``, ``part-00001.parquet``, ..."""

    def __init__(self, folder: str | Path, rows_per_shard: int = ROWS_PER_SHARD):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.rows_per_shard = rows_per_shard
        self._rows: list[dict] = []
        self._shard = 0
        self.count = 0

    def write(self, image_id: str, image: bytes, fov: bytes | None = None,
              lesion_mask: bytes | None = None) -> None:
        self._rows.append({"image_id": image_id, "image": image, "fov": fov,
                           "lesion_mask": lesion_mask})
        self.count += 1
        if len(self._rows) >= self.rows_per_shard:
            self._flush()

    def write_row(self, row: dict) -> None:
        self.write(row["image_id"], row["image"], row.get("fov"), row.get("lesion_mask"))

    def _flush(self) -> None:
        if not self._rows:
            return
        table = pa.Table.from_pylist(self._rows, schema=SCHEMA)
        pq.write_table(table, self.folder / f"part-{self._shard:05d}.parquet",
                       row_group_size=ROWS_PER_GROUP, compression="none",
                       write_statistics=False)
        self._rows = []
        self._shard += 1

    def close(self) -> None:
        self._flush()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *_):
        if exc_type is None:
            self.close()


class ImageStore:
    """Random and sequential access to the images of a shard folder, by ``image_id``."""

    def __init__(self, folder: str | Path, cache_groups: int = 4):
        self.folder = Path(folder)
        shards = sorted(self.folder.glob("part-*.parquet"))
        if not shards:
            raise DataError(f"{self.folder}: no image shards (part-*.parquet) found; "
                            "run the stage that writes them first")
        self.shards = shards
        self.index: dict[str, tuple[int, int, int]] = {}
        for s, path in enumerate(shards):
            meta = pq.ParquetFile(path)
            for g in range(meta.num_row_groups):
                ids = meta.read_row_group(g, columns=["image_id"]).column(0).to_pylist()
                for r, iid in enumerate(ids):
                    if iid in self.index:
                        raise DataError(f"{path}: image_id {iid!r} appears twice in the store")
                    self.index[iid] = (s, g, r)
        self._files: dict[int, pq.ParquetFile] = {}
        self._pid = os.getpid()
        self._cache: OrderedDict = OrderedDict()
        self._cache_groups = cache_groups

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, image_id: str) -> bool:
        return image_id in self.index

    @property
    def ids(self) -> list[str]:
        return list(self.index)

    def _file(self, s: int) -> pq.ParquetFile:
        if os.getpid() != self._pid:  # reopen after fork
            self._files, self._cache, self._pid = {}, OrderedDict(), os.getpid()
        if s not in self._files:
            self._files[s] = pq.ParquetFile(self.shards[s])
        return self._files[s]

    def _group(self, s: int, g: int) -> list[dict]:
        key = (s, g)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        rows = self._file(s).read_row_group(g).to_pylist()
        self._cache[key] = rows
        while len(self._cache) > self._cache_groups:
            self._cache.popitem(last=False)
        return rows

    def raw(self, image_id: str) -> dict:
        try:
            s, g, r = self.index[image_id]
        except KeyError:
            raise DataError(f"{self.folder}: no image with image_id {image_id!r}") from None
        return self._group(s, g)[r]

    def record(self, image_id: str) -> ImageRecord:
        return decode_record(self.raw(image_id))

    def image(self, image_id: str) -> np.ndarray:
        return decode_image(self.raw(image_id)["image"], f"image {image_id}")

    def iter_raw(self, ids: Iterable[str] | None = None) -> Iterator[dict]:
        """Rows in the given order (default: storage order); streams row groups."""
        for iid in (self.index if ids is None else ids):
            yield self.raw(iid)


def write_store(results, folder: str | Path) -> list[dict]:
    """Write ``image``/``fov``/``lesion_mask`` bytes of each result dict to shards, in
    order; return the remaining fields of each result (the manifest rows)."""
    rows = []
    with ShardWriter(folder) as writer:
        for res in results:
            res = dict(res)
            writer.write(res["image_id"], res.pop("image"), res.pop("fov", None),
                         res.pop("lesion_mask", None))
            rows.append(res)
    return rows
