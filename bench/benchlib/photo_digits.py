"""Photographed-looking digits: dark strokes on light paper, the way a user's phone photo of a written digit looks.

Each picture is a 300 x 200 RGB image: paper of a random light shade lit unevenly (a brightness gradient), a digit
drawn with thick strokes either as a font glyph (several DejaVu faces and sizes) or as pen strokes (polylines and
arcs, a hand-drawn shape), rotated slightly, placed off centre, with sensor noise, saved as JPEG or PNG.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SIZE = (300, 200)  # width, height
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
)

# pen strokes of each digit in a unit box (x right, y down): polylines, and arcs as (cx, cy, rx, ry, start, end) degrees
_STROKES: dict[int, list] = {
    0: [("arc", 0.5, 0.5, 0.3, 0.45, 0, 360)],
    1: [("line", [(0.35, 0.22), (0.55, 0.05), (0.55, 0.95)])],
    2: [("arc", 0.5, 0.3, 0.3, 0.25, 180, 360), ("line", [(0.8, 0.3), (0.2, 0.95), (0.85, 0.95)])],
    3: [("arc", 0.5, 0.28, 0.28, 0.23, 200, 450), ("arc", 0.5, 0.72, 0.3, 0.23, 270, 520)],
    4: [("line", [(0.6, 0.05), (0.15, 0.65), (0.85, 0.65)]), ("line", [(0.62, 0.3), (0.62, 0.95)])],
    5: [("line", [(0.8, 0.05), (0.3, 0.05), (0.25, 0.45)]), ("arc", 0.5, 0.67, 0.3, 0.27, 220, 500)],
    6: [("line", [(0.7, 0.05), (0.3, 0.5)]), ("arc", 0.5, 0.7, 0.28, 0.25, 0, 360)],
    7: [("line", [(0.15, 0.08), (0.85, 0.08), (0.4, 0.95)])],
    8: [("arc", 0.5, 0.27, 0.24, 0.22, 0, 360), ("arc", 0.5, 0.72, 0.29, 0.24, 0, 360)],
    9: [("arc", 0.5, 0.3, 0.27, 0.25, 0, 360), ("line", [(0.77, 0.3), (0.7, 0.95)])],
}


def _pen(draw: ImageDraw.ImageDraw, digit: int, box: tuple[int, int, int, int], width: int, ink: int) -> None:
    x0, y0, x1, y1 = box
    sx, sy = x1 - x0, y1 - y0
    for stroke in _STROKES[digit]:
        if stroke[0] == "line":
            pts = [(x0 + px * sx, y0 + py * sy) for px, py in stroke[1]]
        else:
            _, cx, cy, rx, ry, a, b = stroke
            pts = [
                (x0 + (cx + rx * math.cos(math.radians(t))) * sx, y0 + (cy + ry * math.sin(math.radians(t))) * sy)
                for t in np.linspace(a, b, 48)
            ]
        draw.line(pts, fill=ink, width=width, joint="curve")
        for px, py in (pts[0], pts[-1]):  # round pen ends
            draw.ellipse((px - width / 2, py - width / 2, px + width / 2, py + width / 2), fill=ink)


def draw_digit(digit: int, seed: int, pen: bool) -> Image.Image:
    """One photographed-looking RGB picture of ``digit`` (``pen``: hand-drawn strokes, else a font glyph)."""
    rng = np.random.default_rng(seed)
    w, h = SIZE
    ink = int(rng.integers(15, 70))
    glyph = Image.new("L", (w, h), 255)
    draw = ImageDraw.Draw(glyph)
    height = int(rng.integers(90, 150))
    cx, cy = w / 2 + rng.uniform(-50, 50), h / 2 + rng.uniform(-15, 15)
    if pen:
        box = (int(cx - height * 0.35), int(cy - height / 2), int(cx + height * 0.35), int(cy + height / 2))
        _pen(draw, digit, box, int(rng.integers(9, 16)), ink)
    else:
        font = ImageFont.truetype(str(FONT_DIR / FONTS[int(rng.integers(len(FONTS)))]), height)
        draw.text(
            (cx, cy),
            str(digit),
            font=font,
            fill=ink,
            anchor="mm",
            stroke_width=int(rng.integers(2, 6)),
            stroke_fill=ink,
        )
    glyph = glyph.rotate(float(rng.uniform(-12, 12)), resample=Image.BILINEAR, fillcolor=255, center=(cx, cy))
    paper = np.array(rng.uniform(200, 240, 3))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    light = 1.0 + rng.uniform(0.1, 0.25) * ((xx / w - 0.5) * math.cos(angle) + (yy / h - 0.5) * math.sin(angle))
    ink_share = (255 - np.asarray(glyph, np.float32)) / (255 - ink)
    pixels = paper[None, None] * (1 - ink_share[..., None]) + ink * ink_share[..., None]
    pixels = pixels * light[..., None] + rng.normal(0, 6, (h, w, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="RGB")


def write_set(folder: Path, per_digit: int = 2, seed: int = 0) -> list[tuple[Path, int]]:
    """``per_digit`` pictures of every digit 0-9 in ``folder`` (pen strokes and font glyphs in turn, JPEG and PNG in
    turn); returns (file, digit) pairs."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for digit in range(10):
        for k in range(per_digit):
            n = digit * per_digit + k
            path = folder / f"digit{digit}_{k}.{'jpg' if n % 2 == 0 else 'png'}"
            draw_digit(digit, seed * 1000 + n, pen=k % 2 == 0).save(path, **({"quality": 85} if n % 2 == 0 else {}))
            out.append((path, digit))
    return out
