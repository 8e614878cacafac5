"""Image token counts by OpenAI's published rules, from an image's real size read in its header.

The size is read from the first bytes of a PNG, JPEG, GIF or WebP file (no
pixel is decoded). Then, for ``detail: "high"`` or ``"auto"``: the image is
scaled to fit within 2048×2048, then so that its shorter side is at most 768;
it costs ``tile`` tokens for each 512-pixel tile it covers, plus ``base``. A
``"low"`` detail image costs ``base``. Most models use 85 and 170; OpenAI
publishes other constants for some, and a patch rule for the 4.1 mini/nano
and o4-mini families (32-pixel patches, at most 1,536, times a multiplier).
"""

from __future__ import annotations

import base64
import math
import struct

__all__ = ["image_size", "image_tokens", "image_tokens_of_url"]

#: Model name prefix -> (base, tile) tokens; the longest match wins, else (85, 170).
TILE_COSTS: dict[str, tuple[int, int]] = {
    "gpt-4o-mini": (2833, 5667),
    "o1": (75, 150), "o1-pro": (75, 150), "o3": (75, 150), "computer-use": (65, 129),
}
#: Model name prefix -> multiplier of the patch rule.
PATCH_MULTIPLIERS: dict[str, float] = {"gpt-4.1-mini": 1.62, "gpt-4.1-nano": 2.46, "o4-mini": 1.72,
                                       "gpt-5-mini": 1.62, "gpt-5-nano": 2.46}
#: Assumed when the image's size cannot be read (a remote URL): a 1024x1024 image.
UNKNOWN_SIZE = (1024, 1024)


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG, GIF or WebP header, or None when the bytes are none of those."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            at += 2
            continue
        length = struct.unpack(">H", data[at + 2:at + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and at + 9 <= len(data):
            height, width = struct.unpack(">HH", data[at + 5:at + 9])
            return width, height
        at += 2 + length
    return None


def _match(model: str, table: dict[str, object]) -> str | None:
    name = model.rsplit("/", 1)[-1]
    found = [prefix for prefix in table if name.startswith(prefix)]
    return max(found, key=len) if found else None


def image_tokens(width: int, height: int, detail: str = "auto", model: str = "gpt-4o") -> int:
    """What an image of this size costs ``model`` at ``detail``, by OpenAI's published rule."""
    patch = _match(model, PATCH_MULTIPLIERS)  # type: ignore[arg-type]
    if patch is not None:
        patches = math.ceil(width / 32) * math.ceil(height / 32)
        if patches > 1536:  # scaled down until at most 1,536 whole patches fit
            scale = math.sqrt(32 * 32 * 1536 / (width * height))
            scale *= min(math.floor(width * scale / 32) / (width * scale / 32),
                         math.floor(height * scale / 32) / (height * scale / 32))
            patches = math.floor(width * scale / 32) * math.floor(height * scale / 32)
        return math.ceil(min(patches, 1536) * PATCH_MULTIPLIERS[patch])
    tiled = _match(model, TILE_COSTS)  # type: ignore[arg-type]
    base, tile = TILE_COSTS[tiled] if tiled is not None else (85, 170)
    if detail == "low":
        return base
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        shrink = 2048 / max(w, h)
        w, h = w * shrink, h * shrink
    if min(w, h) > 768:
        shrink = 768 / min(w, h)
        w, h = w * shrink, h * shrink
    return base + tile * math.ceil(w / 512) * math.ceil(h / 512)


def image_tokens_of_url(url: str, detail: str = "auto", model: str = "gpt-4o") -> int:
    """What an image URL costs: its real size when it is a data URL, else a 1024x1024 image's cost."""
    size = None
    if url.startswith("data:") and ";base64," in url[:200]:
        head = url.split(",", 1)[1][:65_536]  # enough for any header; the pixels are never decoded
        head = head[: len(head) - len(head) % 4]
        try:
            size = image_size(base64.b64decode(head))
        except ValueError:
            size = None
    width, height = size or UNKNOWN_SIZE
    return image_tokens(width, height, detail, model)
