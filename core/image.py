"""Image IO: load RGB images and letterbox them (resize keeping the aspect ratio, pad to a square).

Seed 001 feeds its models 768 x 768 letterboxed images: a non-square scan is scaled so that its
longer side fits, then padded (centred) with a constant colour, so no finding is cropped away
and nothing is stretched.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from videotune.core.io import InputError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif"})


def is_image_path(path: str | Path) -> bool:
    """Whether the file name says it is a still image (by suffix)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def letterbox(image: np.ndarray | Image.Image, size: int, fill: int = 0) -> np.ndarray:
    """`image` scaled so its longer side is `size` px, centred on a `size` x `size` canvas of `fill`.

    Returns uint8 RGB [size, size, 3]. Shrinking uses area averaging (PIL's BOX filter: no
    aliasing), enlarging bicubic. The padding splits evenly, the odd pixel going right/bottom.
    """
    if size < 1:
        raise ValueError(f"letterbox size must be >= 1 px, got {size}")
    pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    pil = pil.convert("RGB")
    width, height = pil.size
    scale = size / max(width, height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    if (new_w, new_h) != (width, height):
        resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BICUBIC
        pil = pil.resize((new_w, new_h), resample=resample)
    canvas = Image.new("RGB", (size, size), (fill, fill, fill))
    canvas.paste(pil, ((size - new_w) // 2, (size - new_h) // 2))
    return np.array(canvas, dtype=np.uint8)  # a writable copy (torch.from_numpy warns on read-only arrays)


def load_image(path: str | Path, letterbox_size: int | None = None) -> np.ndarray:
    """An image file as uint8 RGB [H, W, 3]; letterboxed to a square when `letterbox_size` is given.

    Raises InputError naming the file when it is missing or not a readable image.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: image file not found")
    try:
        with Image.open(path) as opened:
            opened.load()
            pil = opened.convert("RGB")
    except (UnidentifiedImageError, OSError) as err:
        raise InputError(f"{path}: not a readable image ({err})") from err
    if letterbox_size is not None:
        return letterbox(pil, letterbox_size)
    return np.array(pil, dtype=np.uint8)
