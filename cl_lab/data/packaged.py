"""Real images that ship inside installed packages: scikit-learn's digits, matplotlib's DejaVu fonts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .synth import S, X, Y, _background, _contrasting, _soft

GLYPH_CLASSES = tuple("ABCDEFGHIJKLMNOPQRST")
GLYPH_FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
)


def font_dir() -> Path:
    """Directory of the TrueType fonts that matplotlib ships."""
    try:
        import matplotlib
    except ImportError as e:  # pragma: no cover - matplotlib is a core dependency
        raise ImportError("the glyphs domain renders matplotlib's DejaVu fonts: pip install matplotlib") from e
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def available_fonts() -> list[Path]:
    paths = [font_dir() / f for f in GLYPH_FONTS]
    found = [p for p in paths if p.exists()]
    if not found:
        raise FileNotFoundError(f"none of the DejaVu fonts {GLYPH_FONTS} were found in {font_dir()}")
    return found


def make_glyphs(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Letters A-T in eight DejaVu faces, random size, shift, rotation, colours and clutter."""
    from PIL import Image, ImageDraw, ImageFont

    fonts = available_fonts()
    n = len(labels)
    masks = np.zeros((n, S, S), dtype=np.float64)
    cache: dict[tuple[int, int], ImageFont.FreeTypeFont] = {}
    for i, c in enumerate(labels):
        fi, size = int(rng.integers(len(fonts))), int(rng.integers(18, 29))
        font = cache.setdefault((fi, size), ImageFont.truetype(str(fonts[fi]), size))
        canvas = Image.new("L", (2 * S, 2 * S), 0)
        draw = ImageDraw.Draw(canvas)
        ch = GLYPH_CLASSES[int(c)]
        x0, y0, x1, y1 = draw.textbbox((0, 0), ch, font=font)
        draw.text((S - (x0 + x1) / 2, S - (y0 + y1) / 2), ch, fill=255, font=font)
        canvas = canvas.rotate(float(rng.uniform(-15, 15)), resample=Image.BILINEAR)
        dx, dy = rng.integers(-4, 5, 2)
        left, top = S // 2 + int(dx), S // 2 + int(dy)
        masks[i] = np.asarray(canvas.crop((left, top, left + S, top + S)), dtype=np.float64) / 255.0
    img = _background(rng, n, contrast=0.4)
    for _ in range(2):
        cx, cy = rng.uniform(-1, 1, (n, 1, 1)), rng.uniform(-1, 1, (n, 1, 1))
        stroke = _soft(np.abs((X - cx) * rng.uniform(-1, 1, (n, 1, 1)) + (Y - cy)) - 0.03, 1.0)
        img = img * (1 - stroke[:, None] * 0.4) + _contrasting(rng, img, 0.5) * stroke[:, None] * 0.4
    return img * (1 - masks[:, None]) + _contrasting(rng, img) * masks[:, None]


DIGIT_CLASSES = tuple(str(i) for i in range(10))


def load_digits_raw() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 handwritten 8x8 digits, grey levels 0..16."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - scikit-learn is a core dependency
        raise ImportError("the digits domain uses scikit-learn's bundled digits: pip install scikit-learn") from e
    d = load_digits()
    return d.images.astype(np.float64) / 16.0, d.target.astype(np.int64)


def place_digits(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Upsample 8x8 digits to 14-26 px, place them at random on a coloured, cluttered 32x32 canvas."""
    n = len(images)
    out = np.zeros((n, S, S))
    src = torch.from_numpy(images.astype(np.float32))[:, None]
    for i in range(n):
        size = int(rng.integers(18, 29))
        big = F.interpolate(src[i : i + 1], size=(size, size), mode="bilinear", align_corners=False)[0, 0].numpy()
        top, left = rng.integers(0, S - size + 1, 2)
        out[i, top : top + size, left : left + size] = big
    img = _background(rng, n, contrast=0.25)
    return img * (1 - out[:, None]) + _contrasting(rng, img) * out[:, None]
