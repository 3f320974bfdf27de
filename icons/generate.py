#!/usr/bin/env python3
"""Draws the app and tray icons (8-bit RGBA PNG, which tauri-codegen requires) with the
standard library only, so they can be regenerated without an image editor:
    python3 icons/generate.py
Tray states: signed-out (grey ring), active (green disc with a check), attention (amber disc
with an exclamation mark), error (red disc with a cross). macOS gets template variants
(`tray-*-template*.png`: black shapes with the mark cut out, tinted by the menu bar)."""
import math
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def png(path, size, pixel):
    rows = []
    for y in range(size):
        row = bytearray([0])
        for x in range(size):
            row.extend(pixel(x + 0.5, y + 0.5, size))
        rows.append(bytes(row))
    raw = b"".join(rows)

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


def coverage(d, edge):
    """Anti-aliased inside-ness for a signed distance d (negative inside)."""
    return max(0.0, min(1.0, 0.5 - d / edge))


def seg_dist(px, py, ax, ay, bx, by):
    dx, dy = bx - ax, by - ay
    t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
    return math.hypot(px - (ax + t * dx), py - (ay + t * dy))


def icon(color, mark, ring_only=False):
    def pixel(x, y, size):
        c = size / 2
        r = size * 0.44
        edge = max(1.0, size / 32)
        d = math.hypot(x - c, y - c) - r
        alpha = coverage(d, edge)
        if ring_only:
            alpha = min(alpha, coverage(-(d + size * 0.12), edge))
        rgb = color
        u, v = x / size, y / size
        w = size * 0.075
        m = 0.0
        if mark == "check":
            m = max(coverage(seg_dist(u, v, 0.30, 0.52, 0.44, 0.66) * size - w, edge),
                    coverage(seg_dist(u, v, 0.44, 0.66, 0.70, 0.36) * size - w, edge))
        elif mark == "bang":
            m = max(coverage(seg_dist(u, v, 0.5, 0.26, 0.5, 0.58) * size - w, edge),
                    coverage(math.hypot(u - 0.5, v - 0.73) * size - w * 1.1, edge))
        elif mark == "cross":
            m = max(coverage(seg_dist(u, v, 0.33, 0.33, 0.67, 0.67) * size - w, edge),
                    coverage(seg_dist(u, v, 0.67, 0.33, 0.33, 0.67) * size - w, edge))
        elif mark == "key":
            m = max(coverage(abs(math.hypot(u - 0.40, v - 0.42) * size - size * 0.11) - w * 0.8, edge),
                    coverage(seg_dist(u, v, 0.48, 0.50, 0.70, 0.72) * size - w, edge))
        out = [round(ch * (1 - m) + 255 * m) for ch in rgb]
        return bytes(out + [round(255 * alpha)])
    return pixel


def template(pixel_fn):
    """The macOS template form of an icon: black, the disc opaque, the (white) mark transparent."""
    def pixel(x, y, size):
        r, g, b, a = pixel_fn(x, y, size)
        mark = max(0, min(r, g, b) - 130) / 125  # the white mark blended over the disc colour
        return bytes([0, 0, 0, round(a * (1 - mark))])
    return pixel


def main():
    grey, green, amber, red, blue = (120, 124, 130), (26, 127, 55), (191, 135, 0), (207, 34, 46), (9, 105, 218)
    png(os.path.join(HERE, "icon.png"), 256, icon(blue, "key"))
    for size, suffix in ((32, ""), (64, "@2x")):
        png(os.path.join(HERE, f"tray-signed-out{suffix}.png"), size, icon(grey, None, ring_only=True))
        png(os.path.join(HERE, f"tray-active{suffix}.png"), size, icon(green, "check"))
        png(os.path.join(HERE, f"tray-attention{suffix}.png"), size, icon(amber, "bang"))
        png(os.path.join(HERE, f"tray-error{suffix}.png"), size, icon(red, "cross"))
        for name, color, mark, ring in (("signed-out", grey, None, True), ("active", green, "check", False),
                                        ("attention", amber, "bang", False), ("error", red, "cross", False)):
            png(os.path.join(HERE, f"tray-{name}-template{suffix}.png"), size, template(icon(color, mark, ring)))


if __name__ == "__main__":
    main()
