"""An ordered, bounded-memory process-pool map with a progress bar.

At most ``window`` tasks are in flight at once, so results never pile up in memory
whatever the dataset size; results come back in input order, so outputs do not
depend on the number of workers.
"""
from __future__ import annotations

import multiprocessing
import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

from tqdm import tqdm

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _init_worker() -> None:
    import cv2
    cv2.setNumThreads(1)


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int | None = None,
                desc: str = "", total: int | None = None, window: int | None = None,
                progress: bool = True, unit: str = "img") -> Iterator[R]:
    """Yield ``fn(item)`` for each item, in order, computed on ``workers`` processes.

    ``fn`` must be a picklable module-level function. With one worker it runs inline
    (no pool), which is also what tests and debuggers want.
    """
    workers = workers or default_workers()
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    bar = tqdm(total=total, desc=desc, unit=unit, disable=not progress, dynamic_ncols=True,
               mininterval=0.5)
    try:
        if workers <= 1:
            _init_worker()
            for item in items:
                yield fn(item)
                bar.update()
            return
        window = window or 4 * workers
        # forkserver, not fork: a fork of a process that already ran multithreaded OpenCV
        # can deadlock in the child (seen in cv2.setNumThreads).
        ctx = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker,
                                 mp_context=ctx) as pool:
            pending: deque = deque()
            it = iter(items)
            try:
                for item in it:
                    pending.append(pool.submit(fn, item))
                    if len(pending) >= window:
                        yield pending.popleft().result()
                        bar.update()
                while pending:
                    yield pending.popleft().result()
                    bar.update()
            finally:
                for fut in pending:
                    fut.cancel()
    finally:
        bar.close()
