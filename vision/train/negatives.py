"""Images that are none of the kinds the modality gate knows: its `other` class, for training and validation.

Every image is made deterministically from a seed, in named families (blank fields, gradients, noise, shapes,
patterns, rendered text, photographs, textures, faces, ...). Validation never shares an image with training:
generated families draw validation images from other seeds (and often other parameters), photograph families hold
out whole photographs, and some families (`VALIDATION_ONLY`) are never seen in training at all, so their rejection
rate measures how the gate does on kinds of picture nobody showed it.

Photographs come from scikit-image's bundled `skimage/data` folder (the `train` and `test` extras install it). They
are read from files in the wheel, never downloaded.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

from vesalius.vision.errors import ModelWeightsError

Rng = np.random.Generator


def skimage_data_dir() -> Path:
    try:
        import skimage.data
    except ImportError as exc:  # pragma: no cover - the message is the point
        raise ModelWeightsError(
            "scikit-image is not installed: the modality gate's negative examples include its bundled photographs",
            "Install the training extra: pip install 'vesalius[train]' (or scikit-image>=0.22)",
        ) from exc
    return Path(skimage.data.__file__).parent


def skimage_image(name: str) -> Image.Image:
    """A bundled scikit-image picture by file name ('astronaut.png'), or a face from 'lfw_subset.npy:<i>'."""
    root = skimage_data_dir()
    if name.startswith("lfw_subset.npy:"):
        faces = np.load(root / "lfw_subset.npy")
        face = faces[int(name.split(":")[1])]
        return Image.fromarray(np.clip(face * (255 if face.max() <= 1 else 1), 0, 255).astype(np.uint8), "L")
    with Image.open(root / name) as im:
        return im.convert("RGB") if im.mode not in ("L", "RGB") else im.copy()


# ---------------------------------------------------------------------------------------------------------------
# Generated families


def _size(rng: Rng, lo: int = 48, hi: int = 512) -> tuple[int, int]:
    w = int(rng.integers(lo, hi + 1))
    h = w if rng.random() < 0.5 else int(rng.integers(lo, hi + 1))
    return w, h


def _to_image(array: np.ndarray) -> Image.Image:
    a = np.clip(array, 0, 255).astype(np.uint8)
    return Image.fromarray(a, "L" if a.ndim == 2 else "RGB")


def _colour(rng: Rng, grey: bool) -> tuple[int, int, int] | int:
    return int(rng.integers(0, 256)) if grey else tuple(int(c) for c in rng.integers(0, 256, 3))


def constant(rng: Rng) -> Image.Image:
    """A uniform field (black, white, grey or a colour), sometimes with a trace of sensor noise."""
    w, h = _size(rng)
    grey = rng.random() < 0.6
    value = rng.choice([0, 255, int(rng.integers(0, 256))]) if grey else None
    base = np.full((h, w), value, float) if grey else np.ones((h, w, 3)) * rng.integers(0, 256, 3)
    if rng.random() < 0.5:
        base = base + rng.normal(0, rng.uniform(0.2, 1.5), base.shape)
    return _to_image(base)


def gradient(rng: Rng) -> Image.Image:
    """Linear (any angle), radial or four-corner ramps, grey or per-channel colour, sometimes banded."""
    w, h = _size(rng)
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    channels = 1 if rng.random() < 0.6 else 3
    out = []
    for _ in range(channels):
        style = rng.integers(0, 3)
        if style == 0:
            angle = rng.uniform(0, 2 * np.pi)
            t = xx * np.cos(angle) + yy * np.sin(angle)
        elif style == 1:
            cx, cy = rng.uniform(0, 1, 2)
            t = np.hypot(xx - cx, yy - cy)
        else:
            corners = rng.uniform(0, 1, 4)
            t = (
                corners[0] * (1 - xx) * (1 - yy)
                + corners[1] * xx * (1 - yy)
                + corners[2] * (1 - xx) * yy
                + corners[3] * xx * yy
            )
        t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
        lo, hi = sorted(rng.uniform(0, 255, 2))
        ramp = lo + (hi - lo) * t
        if rng.random() < 0.3:
            step = rng.integers(8, 48)
            ramp = np.round(ramp / step) * step
        out.append(ramp)
    return _to_image(out[0] if channels == 1 else np.stack(out, -1))


def noise(rng: Rng) -> Image.Image:
    """Uncorrelated noise: Gaussian, uniform, binary or salt-and-pepper on a field."""
    w, h = _size(rng)
    shape = (h, w) if rng.random() < 0.6 else (h, w, 3)
    style = rng.integers(0, 4)
    if style == 0:
        a = rng.normal(rng.uniform(40, 215), rng.uniform(5, 80), shape)
    elif style == 1:
        a = rng.uniform(0, 255, shape)
    elif style == 2:
        a = (rng.random(shape) < rng.uniform(0.1, 0.9)) * 255.0
    else:
        a = np.full(shape[:2], rng.uniform(0, 255))
        hits = rng.random(shape[:2]) < rng.uniform(0.01, 0.3)
        a[hits] = rng.choice([0.0, 255.0], size=int(hits.sum()))
    return _to_image(a)


def smooth_noise(rng: Rng) -> Image.Image:
    """Noise blurred to blobs and clouds at a random scale, sometimes thresholded into shapes."""
    w, h = _size(rng)
    base = _to_image(rng.uniform(0, 255, (h, w)))
    blurred = np.asarray(base.filter(ImageFilter.GaussianBlur(rng.uniform(2, 30))), float)
    blurred = (blurred - blurred.min()) / max(float(np.ptp(blurred)), 1e-6) * 255
    if rng.random() < 0.3:
        blurred = (blurred > np.median(blurred)) * 255.0
    return _to_image(blurred)


def _background(rng: Rng, w: int, h: int, grey: bool) -> Image.Image:
    if rng.random() < 0.5:
        return Image.new("L" if grey else "RGB", (w, h), _colour(rng, grey))
    g = gradient(rng).resize((w, h))
    return g.convert("L" if grey else "RGB")


def shapes(rng: Rng) -> Image.Image:
    """Ellipses, rectangles, polygons and lines on a plain or graded background: diagrams, clip art, icons."""
    w, h = _size(rng, 64)
    grey = rng.random() < 0.5
    im = _background(rng, w, h, grey)
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(1, 16))):
        x0, x1 = sorted(rng.integers(0, w, 2))
        y0, y1 = sorted(rng.integers(0, h, 2))
        fill, outline = _colour(rng, grey), _colour(rng, grey)
        kind = rng.integers(0, 4)
        if kind == 0:
            draw.ellipse((x0, y0, x1 + 1, y1 + 1), fill=fill, outline=outline)
        elif kind == 1:
            draw.rectangle((x0, y0, x1 + 1, y1 + 1), fill=fill, outline=outline)
        elif kind == 2:
            points = [(int(rng.integers(0, w)), int(rng.integers(0, h))) for _ in range(int(rng.integers(3, 7)))]
            draw.polygon(points, fill=fill, outline=outline)
        else:
            draw.line((x0, y0, x1, y1), fill=fill, width=int(rng.integers(1, 8)))
    if rng.random() < 0.3:
        im = im.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 4)))
    return im


def pattern(rng: Rng) -> Image.Image:
    """Checkerboards, stripes at any angle, grids, rings and dot lattices."""
    w, h = _size(rng, 64)
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    period = rng.uniform(4, max(w, h) / 3)
    style = rng.integers(0, 5)
    if style == 0:
        t = ((xx // period + yy // period) % 2).astype(float)
    elif style == 1:
        angle = rng.uniform(0, np.pi)
        u = xx * np.cos(angle) + yy * np.sin(angle)
        wave = np.sin(2 * np.pi * u / period)
        t = (wave > 0) * 1.0 if rng.random() < 0.5 else (wave + 1) / 2
    elif style == 2:
        line = max(1, int(rng.integers(1, 4)))
        t = (((xx % period) < line) | ((yy % period) < line)) * 1.0
    elif style == 3:
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        t = (np.sin(2 * np.pi * np.hypot(xx - cx, yy - cy) / period) + 1) / 2
    else:
        t = ((np.hypot(xx % period - period / 2, yy % period - period / 2)) < period * rng.uniform(0.1, 0.45)) * 1.0
    if rng.random() < 0.6:
        lo, hi = sorted(rng.uniform(0, 255, 2))
        return _to_image(lo + (hi - lo) * t)
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    return _to_image(a + (b - a) * t[..., None])


_WORDS = ("the", "of", "and", "patient", "report", "page", "figure", "table", "result", "date", "name", "mm")


def _words(rng: Rng, n: int) -> str:
    out = []
    for _ in range(n):
        if rng.random() < 0.3:
            out.append(str(rng.choice(_WORDS)))
        else:
            letters = rng.choice(list(string.ascii_letters + string.digits), size=int(rng.integers(1, 10)))
            out.append("".join(letters))
    return " ".join(out)


def text(rng: Rng) -> Image.Image:
    """A rendered page, label or screenshot of text: dark on light or light on dark, any font size."""
    w, h = _size(rng, 96, 640)
    dark_on_light = rng.random() < 0.7
    grey = rng.random() < 0.6
    paper = (int(rng.integers(200, 256)) if dark_on_light else int(rng.integers(0, 60)),) * (1 if grey else 3)
    ink = (int(rng.integers(0, 80)) if dark_on_light else int(rng.integers(180, 256)),) * (1 if grey else 3)
    im = Image.new("L" if grey else "RGB", (w, h), paper[0] if grey else paper)
    draw = ImageDraw.Draw(im)
    size = int(rng.integers(8, 42))
    font = ImageFont.load_default(size=size)
    y = int(rng.integers(0, size * 2))
    margin = int(rng.integers(0, max(1, w // 8)))
    while y < h:
        draw.text((margin, y), _words(rng, int(rng.integers(2, 14))), fill=ink[0] if grey else ink, font=font)
        y += int(size * rng.uniform(1.1, 2.2))
        if rng.random() < 0.1:
            y += size * 2  # a paragraph break
    if rng.random() < 0.2:
        im = im.rotate(float(rng.uniform(-8, 8)), expand=False, fillcolor=paper[0] if grey else paper)
    return im


# ---------------------------------------------------------------------------------------------------------------
# Families built from photographs: variants of whole pictures, held out by picture


def photo_variant(image: Image.Image, rng: Rng) -> Image.Image:
    """A random crop, rotation by quarter turns, mirror, grey conversion, inversion or gamma of a picture."""
    w, h = image.size
    scale = rng.uniform(0.4, 1.0)
    cw, ch = max(8, int(w * scale)), max(8, int(h * scale))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    im = image.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.3:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if rng.random() < 0.2:
        im = im.rotate(90 * int(rng.integers(1, 4)), expand=True)
    if rng.random() < 0.4:
        im = im.convert("L")
    if rng.random() < 0.15:
        im = ImageOps.invert(im.convert("RGB") if im.mode not in ("L", "RGB") else im)
    if rng.random() < 0.3:
        gamma = float(np.exp(rng.uniform(-0.5, 0.5)))
        im = im.point(lambda v: 255 * (v / 255) ** gamma)
    if min(im.size) < 224 and rng.random() < 0.5:
        im = im.resize((im.width * 2, im.height * 2), Image.Resampling.BICUBIC)
    return im


@dataclass(frozen=True)
class Family:
    name: str
    description: str
    train: int  # images drawn for training (0: a validation-only family, never seen in training)
    val: int
    make: Callable[[Rng], Image.Image] | None = None  # generated families
    train_pictures: tuple[str, ...] = ()  # picture families: which pictures each side varies
    val_pictures: tuple[str, ...] = ()


_FACES = tuple(f"lfw_subset.npy:{i}" for i in range(200))

FAMILIES: tuple[Family, ...] = (
    Family("constant", "uniform black, white, grey or colour fields", 60, 30, constant),
    Family("gradient", "linear, radial and corner ramps, grey or colour, some banded", 80, 30, gradient),
    Family("noise", "uncorrelated Gaussian, uniform, binary and salt-and-pepper noise", 80, 30, noise),
    Family("smooth_noise", "noise blurred into clouds and blobs, some thresholded", 80, 30, smooth_noise),
    Family("shapes", "ellipses, rectangles, polygons and lines: diagrams and clip art", 120, 40, shapes),
    Family("pattern", "checkerboards, stripes, grids, rings, dot lattices", 80, 30, pattern),
    Family("text", "rendered pages, labels and screenshots of text", 140, 40, text),
    Family(
        "photo",
        "photographs (skimage); validation holds out whole photographs",
        20,
        10,
        train_pictures=(
            "astronaut.png",
            "camera.png",
            "chelsea.png",
            "coffee.png",
            "coins.png",
            "clock_motion.png",
            "motorcycle_left.png",
            "logo.png",
            "color.png",
        ),
        val_pictures=("rocket.jpg", "horse.png", "moon.png", "hubble_deep_field.jpg"),
    ),
    Family(
        "texture",
        "photographed textures (skimage brick, grass; gravel held out)",
        30,
        15,
        train_pictures=("brick.png", "grass.png"),
        val_pictures=("gravel.png",),
    ),
    Family(
        # Upscaled, these tiny patches look much like BreastMNIST's 28 px thumbnails: taught as `other`, they keep
        # blurry small pictures away from the breast model (at their own 25 px the size check refuses them anyway).
        "faces",
        "25 px face and non-face patches (skimage lfw_subset), some upscaled; 50 patches held out",
        1,
        1,
        train_pictures=_FACES[:150],
        val_pictures=_FACES[150:],
    ),
    Family(
        "scanned_text",
        "scanned text pages (skimage page, text): never in training, where text is only rendered",
        0,
        12,
        val_pictures=("page.png", "text.png"),
    ),
    Family(
        "chessboard",
        "photographic chessboard images (skimage): never in training",
        0,
        8,
        val_pictures=("chessboard_GRAY.png", "chessboard_RGB.png"),
    ),
    Family(
        "fundus",
        "retinal fundus photographs (skimage retina, microaneurysms): a medical kind the gate does not know; "
        "never in training",
        0,
        10,
        val_pictures=("retina.jpg", "microaneurysms.png"),
    ),
)
VALIDATION_ONLY = tuple(f.name for f in FAMILIES if f.train == 0)


@dataclass(frozen=True)
class Negative:
    family: str
    name: str
    image: Image.Image


def negatives(part: str, seed: int = 0) -> Iterator[Negative]:
    """Every negative image of `part` ('train' or 'val'), family by family, the same for the same seed."""
    if part not in ("train", "val"):
        raise ValueError(f"part must be 'train' or 'val', not {part!r}")
    side = 0 if part == "train" else 1
    for index, family in enumerate(FAMILIES):
        rng = np.random.default_rng([seed, index, side])
        count = family.train if part == "train" else family.val
        if family.make is not None:
            for i in range(count):
                yield Negative(family.name, f"{family.name}/{part}-{i}", family.make(rng))
            continue
        for picture in family.train_pictures if part == "train" else family.val_pictures:
            image = skimage_image(picture)
            for i in range(count):
                yield Negative(family.name, f"{family.name}/{picture}#{i}", photo_variant(image, rng))
