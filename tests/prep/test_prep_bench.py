"""The frame-sampler benchmark runs end to end at a toy size (figures are taken by `make bench-prep` on an idle machine)."""

import json

import pytest

from videotune.prep import bench


def test_bench_times_every_reader_and_checks_they_read_the_same_frames(tmp_path, monkeypatch):
    monkeypatch.setattr(bench.shutil, "which", lambda name: None)  # no ffmpeg CLI: (b) is left out, the rest runs
    assert bench.main(["--out", str(tmp_path), "--seconds", "1", "--fps", "10", "--width", "64", "--height", "48",
                       "--frames", "4", "--repeats", "1"]) == 0
    results = json.loads((tmp_path / "bench.json").read_text())
    assert results["clip"]["n_frames"] == 10 and (results["clip"]["width"], results["clip"]["height"]) == (64, 48)
    assert set(results["timings"]) == {"vt_sample_frames", "opencv_every_frame", "cache_first_read", "cache_second_read",
                                       "cache_second_read_same_process"}
    assert all(t["median_ms"] > 0 for t in results["timings"].values())
    assert results["vt_vs_opencv_mean_abs_diff"] < 3  # the same positions; only the YUV->RGB conversion differs
    assert set(results["ratios"]) == {"opencv_over_vt", "cache_first_over_second", "cache_first_over_second_same_process"}
    for ratio in results["ratios"].values():
        assert ratio["met"] == (ratio["value"] >= ratio["target"])
    text = (tmp_path / "bench.md").read_text()
    assert "vt sample_frames" in text and "(a) OpenCV" in text and "(b) ffmpeg" not in text


@pytest.mark.skipif(bench.shutil.which("ffmpeg") is None, reason="the ffmpeg CLI is not installed")
def test_ffmpeg_reference_decodes_the_clip(tmp_path):
    clip = bench.make_clip(tmp_path / "c.mp4", 0.5, 10, 64, 48)
    bench.ffmpeg_null(clip, bench.shutil.which("ffmpeg"))
