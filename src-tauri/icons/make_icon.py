"""Draws icon.png (512x512 RGBA): an open book on a rounded indigo square. Python stdlib only.

Run from anywhere: python3 src-tauri/icons/make_icon.py
"""

import math
import struct
import zlib
from pathlib import Path

SIZE = 512


def inside_rounded_square(x: float, y: float, margin: float, radius: float) -> bool:
    lo, hi = margin + radius, SIZE - margin - radius
    cx, cy = min(max(x, lo), hi), min(max(y, lo), hi)
    return (x - cx) ** 2 + (y - cy) ** 2 <= radius**2


def pixel(x: float, y: float) -> tuple[int, int, int, int]:
    if not inside_rounded_square(x, y, 16, 96):
        return (0, 0, 0, 0)
    # Background: indigo, lighter at the top.
    t = y / SIZE
    bg = (int(79 - 30 * t), int(70 - 25 * t), int(229 - 60 * t), 255)
    # Two pages of an open book, curving down from the spine.
    spine = SIZE / 2
    dx = abs(x - spine)
    if 12 <= dx <= 180:
        top = 150 + 22 * math.sin(math.pi * (dx - 12) / 168)
        bottom = 380 + 22 * math.sin(math.pi * (dx - 12) / 168)
        if top <= y <= bottom:
            # Lines of text on the pages.
            line = (y - top) % 28
            if 40 <= dx <= 156 and 20 <= y - top <= bottom - top - 20 and line < 7:
                return (165, 180, 252, 255)
            return (248, 250, 252, 255)
    # The memory: a small amber dot over the spine.
    if (x - spine) ** 2 + (y - 110) ** 2 <= 26**2:
        return (251, 191, 36, 255)
    return bg


def png(width: int, height: int, rows: list[bytes]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + row for row in rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def main() -> None:
    rows = []
    for y in range(SIZE):
        row = bytearray()
        for x in range(SIZE):
            # 2x2 supersampling for smooth edges.
            samples = [pixel(x + dx, y + dy) for dx in (0.25, 0.75) for dy in (0.25, 0.75)]
            row.extend(sum(s[i] for s in samples) // 4 for i in range(4))
        rows.append(bytes(row))
    out = Path(__file__).with_name("icon.png")
    out.write_bytes(png(SIZE, SIZE, rows))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
