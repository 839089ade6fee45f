"""Small helpers for user-facing text: counts with the right plural."""
from __future__ import annotations


def plural(n: int, word: str, many: str | None = None) -> str:
    """``"1 image"``, ``"2 images"``; ``many`` for irregular plurals (``"patches"``)."""
    return f"{n} {word if n == 1 else (many or word + 's')}"
