"""Quantities as people read them."""

from __future__ import annotations

__all__ = ["human_size"]


def human_size(count: int) -> str:
    """``count`` bytes in the largest unit that keeps it at least 1: ``"512 bytes"``, ``"1.5 KB"``, ``"2.0 GB"``."""
    if count < 1024:
        return f"{count:,} bytes"
    value = count / 1024
    for unit in ("KB", "MB"):
        if value < 1024:
            return f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} GB"
