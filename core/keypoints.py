"""2D keypoint sidecars: where each body joint is in each frame of a clip, beside the clip itself.

`<media without its suffix>.keypoints.npz` under the data root (`videos/gym-00005.mp4` ->
`videos/gym-00005.keypoints.npz`) holds three arrays:

- `times_s` float64 (frames,): each frame's presentation time, seconds from the stream start;
- `points` float32 (frames, joints, 2): each joint's position as fractions of the frame's width and
  height (x to the right, y down; outside [0, 1] when the joint is off frame);
- `names` str (joints,): the joint names, the same for every clip of a dataset;
- `points3d` float32 (frames, joints, 3), optional: each joint in the subject's own 3D frame (any fixed
  unit; the synthetic gym's is body heights, x lateral, y up, z the way the subject faces), which no
  camera angle changes.

The synthetic gym generator writes them from its renderer; a pose estimator's output converted to this
shape works the same. They carry no labels: `vt-train pretrain-vision` regresses them to give a vision
tower its start.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from videotune.core.io import InputError

SUFFIX = ".keypoints.npz"


@dataclass(frozen=True)
class Keypoints:
    times_s: np.ndarray  # float64 (frames,)
    points: np.ndarray  # float32 (frames, joints, 2)
    names: tuple[str, ...]
    points3d: np.ndarray | None = None  # float32 (frames, joints, 3)

    def targets(self) -> np.ndarray:
        """(frames, joints, 2 or 5): the 2D points, then the 3D ones where the file has them."""
        if self.points3d is None:
            return self.points
        return np.concatenate([self.points, self.points3d], axis=-1)

    def at(self, times_s: list[float] | np.ndarray, tolerance_s: float) -> np.ndarray:
        """(len(times_s), joints, 2 or 5): the targets of the frame nearest each time; ValueError where none
        lies within `tolerance_s`."""
        wanted = np.asarray(times_s, dtype=np.float64)
        nearest = np.abs(self.times_s[None, :] - wanted[:, None]).argmin(axis=1)
        gap = np.abs(self.times_s[nearest] - wanted)
        if len(gap) and gap.max() > tolerance_s:
            worst = int(gap.argmax())
            raise ValueError(f"no keypoints within {tolerance_s * 1000:.0f} ms of frame time {wanted[worst]:.3f} s")
        return self.targets()[nearest]


def keypoints_path(media: str) -> str:
    """The sidecar's path relative to the data root, from the media's (a frames folder gets one beside it)."""
    path = PurePosixPath(media)
    return str(path.with_name(path.name.rsplit(".", 1)[0] + SUFFIX) if "." in path.name else path.with_name(path.name + SUFFIX))


def write_keypoints(path: str | Path, times_s: np.ndarray, names: list[str], points: np.ndarray,
                    points3d: np.ndarray | None = None) -> None:
    """Write a sidecar atomically (temp file + rename)."""
    points = np.asarray(points, dtype=np.float32)
    extra = {}
    if points3d is not None:
        extra["points3d"] = np.asarray(points3d, dtype=np.float32)
        if extra["points3d"].shape != points.shape[:2] + (3,):
            raise ValueError(f"keypoints: points3d {extra['points3d'].shape} do not match points {points.shape}")
    times_s = np.asarray(times_s, dtype=np.float64)
    if points.ndim != 3 or points.shape[2] != 2 or points.shape[0] != len(times_s) or points.shape[1] != len(names):
        raise ValueError(f"keypoints: points {points.shape} do not match {len(times_s)} times and {len(names)} names")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")  # np.savez keeps a name that already ends in .npz
    np.savez(tmp, times_s=times_s, points=points, names=np.asarray(names), **extra)
    tmp.replace(path)


def read_keypoints(path: str | Path) -> Keypoints:
    """Read and check a sidecar; InputError naming the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no keypoints file (expected beside its clip, named <clip>{SUFFIX})")
    try:
        with np.load(path, allow_pickle=False) as data:
            times_s, points, names = data["times_s"], data["points"], data["names"]
            points3d = data["points3d"] if "points3d" in data.files else None
    except (OSError, ValueError, KeyError) as err:
        raise InputError(f"{path}: not a keypoints file with times_s, points and names ({err})") from err
    if points.ndim != 3 or points.shape[2] != 2:
        raise InputError(f"{path}: points must be (frames, joints, 2), got {points.shape}")
    if times_s.shape != (points.shape[0],) or names.shape != (points.shape[1],):
        raise InputError(f"{path}: {times_s.shape[0]} times and {names.shape[0]} names for points {points.shape}")
    if points3d is not None and points3d.shape != points.shape[:2] + (3,):
        raise InputError(f"{path}: points3d must be (frames, joints, 3) like points {points.shape}, got {points3d.shape}")
    if not all(np.isfinite(a).all() for a in (points, times_s) + (() if points3d is None else (points3d,))):
        raise InputError(f"{path}: keypoints or times hold NaN or infinity")
    return Keypoints(times_s.astype(np.float64), points.astype(np.float32), tuple(str(n) for n in names),
                     None if points3d is None else points3d.astype(np.float32))
