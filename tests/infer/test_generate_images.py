"""vt-infer generate on image examples (and on a file mixing images and videos)."""

import shutil

import pytest

from videotune.core.io import InputError, read_jsonl, write_jsonl
from videotune.core.schemas import Example, Prediction, Reject
from videotune.infer.generate import GenerateConfig, _batches, run_generate
from videotune.prep.build import BuildOptions, build_examples
from videotune.prep.synth_clinic import ClinicSynthConfig, synth_clinic


def test_batches_keep_one_media_kind():
    def ex(i, image):
        media = f"images/{i}.png" if image else f"videos/{i}.mp4"
        frames = None if image else {"n": 1, "timestamps_s": [0.0]}
        return Example(id=str(i), sample_id=str(i), media=media, frames=frames,
                       messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], target="a")

    examples = [ex(i, i % 2 == 0) for i in range(7)]
    batches = _batches(examples, 3)
    assert sorted(e.id for b in batches for e in b) == sorted(e.id for e in examples)
    for batch in batches:
        assert len(batch) <= 3 and len({e.frames is None for e in batch}) == 1


def test_generate_answers_images_and_videos(tiny_model, gym_examples, gym_raw, tmp_path):
    root = tmp_path / "root"
    clinic = synth_clinic(root, ClinicSynthConfig(n_images=2, seed=0))
    images, _ = build_examples(clinic, root, BuildOptions("vqa", "plain", 8, 1, 0))
    videos = read_jsonl(gym_examples, Example)[:2]
    for example in videos:
        (root / example.media).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(gym_raw / example.media, root / example.media)
    broken = images[0].model_copy(update={"id": "broken", "media": "images/broken.png"})
    (root / "images" / "broken.png").write_bytes(b"not an image")
    write_jsonl(tmp_path / "mixed.jsonl", [videos[0], *images, videos[1], broken])
    config = GenerateConfig(model=str(tiny_model), examples=tmp_path / "mixed.jsonl", data_root=root,
                            out=tmp_path / "out", batch_size=4, max_new_tokens=3, letterbox=64, device="cpu")
    # The broken image is found before the model loads, named by line and id; nothing is generated.
    with pytest.raises(InputError, match=rf"line {len(images) + 3} \(id 'broken'\): .*broken.png: not a readable image"):
        run_generate(config)
    assert not (tmp_path / "out" / "predictions.jsonl").exists()
    assert [r.record for r in read_jsonl(tmp_path / "out" / "rejects.jsonl", Reject)] == [f"line {len(images) + 3} (id 'broken')"]

    write_jsonl(tmp_path / "mixed.jsonl", [videos[0], *images, videos[1]])
    summary = run_generate(config)
    assert summary["n_errors_this_run"] == 0
    assert not (tmp_path / "out" / "rejects.jsonl").exists()  # the earlier refusal's list is gone
    predictions = {p.id: p for p in read_jsonl(tmp_path / "out" / "predictions.jsonl", Prediction)}
    assert len(predictions) == 2 + len(images)
    for example in images + videos:
        assert predictions[example.id].status == "ok"
    assert predictions[images[0].id].meta["stage"] == clinic[0].stage
