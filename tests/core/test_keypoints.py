"""Keypoint sidecars: where they live, what they hold, and the errors for a bad one."""

import numpy as np
import pytest

from videotune.core.io import InputError
from videotune.core.keypoints import keypoints_path, read_keypoints, write_keypoints


def test_sidecar_sits_beside_its_clip():
    assert keypoints_path("videos/gym-00005.mp4") == "videos/gym-00005.keypoints.npz"
    assert keypoints_path("clips/a.b.webm") == "clips/a.b.keypoints.npz"
    assert keypoints_path("frames/clip-7") == "frames/clip-7.keypoints.npz"  # a frames folder


def test_round_trip_and_nearest_frame(tmp_path):
    times = np.arange(5) / 10.0
    points = np.random.default_rng(0).random((5, 3, 2)).astype(np.float32)
    body = np.random.default_rng(1).random((5, 3, 3)).astype(np.float32)
    write_keypoints(tmp_path / "a.keypoints.npz", times, ["hip", "knee", "ankle"], points, body)
    kp = read_keypoints(tmp_path / "a.keypoints.npz")
    assert kp.names == ("hip", "knee", "ankle")
    np.testing.assert_array_equal(kp.points, points)
    targets = kp.at([0.19, 0.31], tolerance_s=0.05)  # nearest frames: 2 and 3
    np.testing.assert_array_equal(targets[..., :2], points[[2, 3]])
    np.testing.assert_array_equal(targets[..., 2:], body[[2, 3]])
    with pytest.raises(ValueError, match="no keypoints within 50 ms of frame time 0.900"):
        kp.at([0.9], tolerance_s=0.05)
    assert [p.name for p in tmp_path.iterdir()] == ["a.keypoints.npz"]  # no temp file left


def test_2d_only_file_gives_2d_targets(tmp_path):
    write_keypoints(tmp_path / "b.keypoints.npz", [0.0, 0.1], ["head"], np.zeros((2, 1, 2)))
    kp = read_keypoints(tmp_path / "b.keypoints.npz")
    assert kp.points3d is None and kp.at([0.1], 0.01).shape == (1, 1, 2)


def test_bad_files_are_named(tmp_path):
    with pytest.raises(InputError, match="missing.keypoints.npz: no keypoints file"):
        read_keypoints(tmp_path / "missing.keypoints.npz")
    (tmp_path / "junk.keypoints.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="junk.keypoints.npz: not a keypoints file"):
        read_keypoints(tmp_path / "junk.keypoints.npz")
    np.savez(tmp_path / "shape.keypoints.npz", times_s=np.zeros(2), points=np.zeros((3, 1, 2)), names=np.array(["a"]))
    with pytest.raises(InputError, match="shape.keypoints.npz: 2 times and 1 names for points"):
        read_keypoints(tmp_path / "shape.keypoints.npz")
    np.savez(tmp_path / "nan.keypoints.npz", times_s=np.zeros(1), points=np.full((1, 1, 2), np.nan),
             names=np.array(["a"]))
    with pytest.raises(InputError, match="NaN"):
        read_keypoints(tmp_path / "nan.keypoints.npz")
