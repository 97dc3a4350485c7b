import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from videotune.core.video import SamplingSpec, probe, sample_frames
from videotune.prep.synth_assembly import GRID_S, AssemblySynthConfig, plan_video, synth_assembly

BIN = Path(sys.executable).parent


def test_plan_is_on_the_grid_and_ordered():
    for index in range(20):
        steps, duration_s, _ = plan_video(np.random.default_rng([0, index]), AssemblySynthConfig())
        assert 3 <= len(steps) <= 5
        previous_end = 0.0
        for step in steps:
            for t in (step.start_s, step.end_s) + ((step.slip_s,) if step.slip_s is not None else ()):
                assert abs(t / GRID_S - round(t / GRID_S)) < 1e-9
            assert previous_end <= step.start_s < step.end_s
            if step.slip_s is not None:
                assert step.start_s < step.slip_s < step.end_s
            previous_end = step.end_s
        assert duration_s > steps[-1].end_s


def test_videos_and_annotations(tmp_path):
    annotations, samples = synth_assembly(tmp_path, AssemblySynthConfig(n_videos=3, seed=5))
    assert [s.id for s in samples] == [a["video_uid"] for a in annotations]
    for record in annotations:
        info = probe(tmp_path / record["video"])
        assert abs(info.duration_s - record["duration_s"]) < 1e-6
        ids = [s["id"] for s in record["dst"]]
        dst_turns = [t for t in record["conversation"] if t["role"] == "DST_UPDATE"]
        assert {item["id"] for t in dst_turns for item in t["content"]} == set(ids)
        # the assistant speaks at every step start and once the last step is done
        said = {t["time"] for t in record["conversation"] if t["role"] == "assistant"}
        assert {s["start_ts"] for s in record["dst"]} <= said and record["dst"][-1]["end_ts"] in said
    # the start cue: the frame at a step's start differs from the frame before (the part appears, ringed)
    record = annotations[0]
    sampled = sample_frames(tmp_path / record["video"], SamplingSpec(n_frames=None, target_fps=2.0))
    start = int(record["dst"][0]["start_ts"] * 2)
    before, at = sampled.frames[start - 1].astype(int), sampled.frames[start].astype(int)
    assert np.abs(at - before).max() > 100


def test_same_seed_same_bytes(tmp_path):
    synth_assembly(tmp_path / "a", AssemblySynthConfig(n_videos=2, seed=1))
    synth_assembly(tmp_path / "b", AssemblySynthConfig(n_videos=2, seed=1))
    for name in ("assembly_0000.mp4", "assembly_0001.mp4"):
        assert (tmp_path / "a" / "videos" / name).read_bytes() == (tmp_path / "b" / "videos" / name).read_bytes()


def test_cli(tmp_path):
    out = tmp_path / "raw"
    result = subprocess.run([str(BIN / "vt-prep"), "synth", "assembly", "--out", str(out), "--n-videos", "3"],
                            capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    annotations = json.loads((out / "annotations.json").read_text())
    assert len(annotations) == 3 and (out / "samples.parquet").is_file()
    assert json.loads((out / "run.json").read_text())["command"] == "synth assembly"
    bad = subprocess.run([str(BIN / "vt-prep"), "synth", "assembly", "--out", str(out), "--size-px", "63"],
                         capture_output=True, text=True)
    assert bad.returncode == 2
