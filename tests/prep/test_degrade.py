import json

import numpy as np
import pytest
from derived_helpers import samples_file, tree_digest, vt_prep

from videotune.core.io import read_json, read_samples
from videotune.core.video import SamplingSpec, probe, sample_frames
from videotune.prep.degrade import (
    check_level,
    level_name,
    lighting_fn,
    motion_kernel,
    occlusion_boxes,
    occlusion_fn,
)
from videotune.prep.derive import rng_for


@pytest.mark.parametrize("height,width", [(64, 64), (96, 128), (480, 640), (50, 302)])
@pytest.mark.parametrize("level", [10, 20, 30])
def test_occlusion_covers_the_level_within_one_percent(height, width, level):
    for seed in range(12):
        rng = rng_for(seed, "clip", "occlusion", level)
        boxes = occlusion_boxes(height, width, level / 100, rng, n_boxes=int(rng.integers(1, 4)))
        mask = np.zeros((height, width), bool)
        for box in boxes:
            assert 0 <= box.x and box.x + box.width <= width and 0 <= box.y and box.y + box.height <= height
            assert not mask[box.y : box.y + box.height, box.x : box.x + box.width].any()  # boxes never overlap
            mask[box.y : box.y + box.height, box.x : box.x + box.width] = True
        assert abs(mask.mean() - level / 100) <= 0.01 * level / 100  # within 1% of the level


def test_occlusion_boxes_are_painted_the_same_on_every_frame():
    apply, drawn = occlusion_fn(20, rng_for(0, "c", "occlusion", 20), 48, 64, "black")
    frames = [np.full((48, 64, 3), v, np.uint8) for v in (90, 200)]
    painted = [apply(f) for f in frames]
    masks = [(p == 0).all(axis=2) for p in painted]
    assert np.array_equal(masks[0], masks[1])
    assert masks[0].mean() == pytest.approx(0.20, rel=0.01)
    assert masks[0].mean() == pytest.approx(drawn["covered_fraction"], rel=1e-5)
    again, drawn_again = occlusion_fn(20, rng_for(0, "c", "occlusion", 20), 48, 64, "black")
    assert drawn_again == drawn


def test_motion_kernel_is_a_normalised_line_in_its_direction():
    horizontal = motion_kernel(9, 0.0)
    assert horizontal.shape == (9, 9) and horizontal.sum() == pytest.approx(1.0)
    assert np.count_nonzero(horizontal[4]) == 9 and np.count_nonzero(horizontal) == 9
    vertical = motion_kernel(9, 90.0)
    assert np.count_nonzero(vertical[:, 4]) == 9
    diagonal = motion_kernel(9, 45.0)  # 9 px long along the line: +-4 px / sqrt(2) = +-3 px on each axis
    rows, cols = np.nonzero(diagonal)
    assert (rows + cols == 8).all() and sorted(cols.tolist()) == [1, 2, 3, 4, 5, 6, 7]


def test_lighting_moves_exposure_and_contrast_by_the_level():
    frame = np.random.default_rng(0).integers(70, 130, (40, 40, 3)).astype(np.uint8)
    for level in (-60, -40, -20, 20):
        out = lighting_fn(level)[0](frame).astype(float)
        gain = 1 + level / 100
        assert out.mean() == pytest.approx(frame.mean() * gain, rel=0.02)
        assert out.std() == pytest.approx(frame.std() * gain**2, rel=0.05)


def test_levels_are_checked_and_named():
    assert [level_name(k, v) for k, v in [("blur", 4), ("compression", 40), ("lighting", -20), ("lighting", 60),
                                          ("occlusion", 30)]] == \
        ["blur_4", "compression_crf40", "lighting_-20", "lighting_+60", "occlusion_30"]
    for kind, level in [("compression", 52), ("compression", 35.5), ("occlusion", 100), ("lighting", 0), ("blur", 0)]:
        with pytest.raises(ValueError):
            check_level(kind, level)


def test_degrade_command_writes_one_deterministic_set_per_kind_and_level(gym_raw, tmp_path):
    parent = samples_file(gym_raw, tmp_path / "parent", n=2)
    args = ["degrade", "--samples", parent, "--data-root", gym_raw, "--blur-levels", "8", "--crf-levels", "30,45",
            "--lighting-levels=-40", "--occlusion-levels", "30", "--seed", "1"]
    vt_prep(*args, "--out", tmp_path / "a")
    vt_prep(*args, "--out", tmp_path / "b")
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    sets = ["blur_8", "compression_crf30", "compression_crf45", "lighting_-40", "occlusion_30"]
    assert sorted(read_json(tmp_path / "a" / "run.json")["sets"]) == sorted(sets)
    parents = read_samples(parent)
    for name in sets:
        samples = read_samples(tmp_path / "a" / name / "samples.parquet")
        assert [s.id for s in samples] == [p.id for p in parents]  # ids kept: results pair up across levels
        lineage = read_json(tmp_path / "a" / name / "run.json")["lineage"]
        assert lineage["operation"] == "degrade" and lineage["seed"] == 1 and lineage["params"]["kind"] == name.split("_")[0]
        for s in samples:
            assert probe(tmp_path / "a" / name / s.media).n_frames == probe(gym_raw / s.media).n_frames
    size = {crf: sum((tmp_path / "a" / f"compression_crf{crf}" / s.media).stat().st_size for s in parents) for crf in (30, 45)}
    assert size[45] < size[30]

    occluded = read_samples(tmp_path / "a" / "occlusion_30" / "samples.parquet")[0]
    derived = json.loads(occluded.meta)["derived"]
    assert derived["kind"] == "occlusion" and derived["covered_fraction"] == pytest.approx(0.30, rel=0.01)
    frames = sample_frames(tmp_path / "a" / "occlusion_30" / occluded.media, SamplingSpec(n_frames=2)).frames
    x, y, w, h = derived["boxes"][0]
    assert frames[:, y + 2 : y + h - 2, x + 2 : x + w - 2].max() < 30  # black boxes survive the encoding
