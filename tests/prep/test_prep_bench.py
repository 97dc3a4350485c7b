"""The frame-sampler benchmark runs end to end at a toy size (figures are taken by `make bench-prep`)."""

import json

import pytest

from videotune.prep import bench


def test_bench_times_every_reader_on_the_same_frames(tmp_path, monkeypatch):
    monkeypatch.setattr(bench.shutil, "which", lambda name: None)  # no ffmpeg CLI: (b) is left out, the rest runs
    assert bench.main(["--out", str(tmp_path), "--cases", "main,folder,long", "--seconds", "1", "--fps", "10",
                       "--width", "64", "--height", "48", "--frames", "4", "--long-seconds", "3", "--long-max-frames", "2",
                       "--repeats", "1", "--repeats-large", "1", "--calibration", "1"]) == 0
    results = json.loads((tmp_path / "bench.json").read_text())
    main, folder, long = (results["cases"][name] for name in ("main", "folder", "long"))
    assert main["input"]["n_frames"] == 10 and (main["input"]["width"], main["input"]["height"]) == (64, 48)
    assert folder["input"]["kind"] == "frames folder" and folder["input"]["n_frames"] == 10
    assert long["n_sampled"] == 2  # 1 fps over 3 s would give 3: capped at 2, spread over the clip
    names = set(main["timings"])
    assert {"vt, 8 decoders", "(a) OpenCV, every frame read", "cache_first_read", "cache_second_read"} <= names
    assert "PyAV every frame (LLaMA-Factory), default threads" in names
    for module, decoder in (("torchcodec", "torchcodec exact, 1 thread"), ("decord", "decord, decord's choice of threads")):
        assert (decoder in names) == (bench.unavailable(module) is None)
    # every peer read the frames vt read: decoders of the same stream agree exactly, PyAV too
    assert all(diff == 0 for name, diff in main["mean_abs_diff_vs_vt"].items() if not name.startswith("(a)"))
    assert folder["mean_abs_diff_vs_vt"]["PIL, each kept frame (qwen-vl-utils, LLaMA-Factory)"] == 0
    for result in results["cases"].values():
        assert all(t["median_ms"] > 0 for t in result["timings"].values())
        for ratio in result["ratios"].values():
            assert ratio["met"] == (ratio["value"] >= ratio["target"])
        best = [r for r in result["readers"] if r["best"]]
        assert len({r["decoder"] for r in best}) == len(best)  # one best setting per decoder
    text = (tmp_path / "bench.md").read_text()
    assert "best_peer_over_vt" in text and "(b) ffmpeg" not in text


@pytest.mark.skipif(bench.shutil.which("ffmpeg") is None, reason="the ffmpeg CLI is not installed")
def test_ffmpeg_reference_decodes_the_clip(tmp_path):
    clip = bench.make_clip(tmp_path / "c.mp4", 0.5, 10, 64, 48)
    bench.ffmpeg_null(clip, bench.shutil.which("ffmpeg"))
