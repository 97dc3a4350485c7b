import numpy as np
import pytest
from PIL import Image

from videotune.core.image import is_image_path, letterbox, load_image
from videotune.core.io import InputError


def test_letterbox_keeps_aspect_and_centres():
    wide = np.full((40, 80, 3), 200, np.uint8)  # H 40, W 80
    out = letterbox(wide, 64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    # 80x40 -> 64x32, padded 16 rows above and below
    assert (out[:16] == 0).all() and (out[48:] == 0).all()
    assert (out[16:48] == 200).all()


def test_letterbox_tall_and_odd_padding():
    tall = np.full((30, 11, 3), 255, np.uint8)
    out = letterbox(tall, 30)  # no scaling: 11 wide on 30 -> 9 left, 10 right
    assert (out[:, :9] == 0).all() and (out[:, 9:20] == 255).all() and (out[:, 20:] == 0).all()


def test_letterbox_square_is_plain_resize():
    img = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    assert np.array_equal(letterbox(img, 32), img)
    assert letterbox(img, 16).shape == (16, 16, 3)
    with pytest.raises(ValueError):
        letterbox(img, 0)


def test_load_image(tmp_path):
    Image.fromarray(np.full((10, 20), 77, np.uint8), mode="L").save(tmp_path / "a.png")
    rgb = load_image(tmp_path / "a.png")
    assert rgb.shape == (10, 20, 3) and (rgb == 77).all()
    assert load_image(tmp_path / "a.png", letterbox_size=8).shape == (8, 8, 3)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="bad.png"):
        load_image(tmp_path / "bad.png")
    with pytest.raises(InputError, match="not found"):
        load_image(tmp_path / "missing.png")
    assert is_image_path("x/y.PNG") and not is_image_path("x/y.mp4")
