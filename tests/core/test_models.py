import numpy as np
import pytest
import torch

from videotune.core import models
from videotune.core.io import InputError

CORPUS = [
    "The subject is performing a Squat. The body parts committing errors are the following: knees forward and knees inward.",
    "The video lasts for 3.10 seconds, and 8 frames are uniformly sampled from it. These frames are located at 0.00s.",
    "The subject is performing a OHP. He performs it correctly, without any subtle errors.",
] * 20


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    spec = models.TinySpec(text_hidden=32, vision_hidden=32, vocab_size=400)
    return models.build_tiny("smolvlm2", out, CORPUS, seed=0, spec=spec)


def test_tiny_round_trip_loads_like_a_checkpoint(tiny_dir):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    ref = models.resolve(str(tiny_dir))
    assert ref.family.name == "smolvlm2" and ref.is_local
    model = AutoModelForImageTextToText.from_pretrained(tiny_dir)
    processor = AutoProcessor.from_pretrained(tiny_dir)
    assert type(model).__name__ == "SmolVLMForConditionalGeneration"
    assert type(processor).__name__ == "SmolVLMProcessor"
    assert type(processor.video_processor).__name__ == "SmolVLMVideoProcessor"
    assert ref.family.frame_size(processor) == 64
    # Same weights after the round trip, bit for bit.
    torch.manual_seed(0)
    again = models.build_tiny("smolvlm2", tiny_dir.parent / "again", CORPUS, seed=0,
                              spec=models.TinySpec(text_hidden=32, vision_hidden=32, vocab_size=400))
    reloaded = AutoModelForImageTextToText.from_pretrained(again)
    for (name, a), (_, b) in zip(model.state_dict().items(), reloaded.state_dict().items()):
        assert torch.equal(a, b), name


def test_labels_cover_only_the_target(tiny_dir):
    ref = models.resolve(str(tiny_dir))
    model, processor = models.load(ref)
    frames = [np.random.default_rng(i).integers(0, 255, (4, 48, 48, 3), dtype=np.uint8) for i in range(2)]
    targets = ["The subject is performing a Squat.", "The subject is performing a OHP. He performs it correctly."]
    batch = models.encode_batch(processor, ref.family, ["question one", "a longer question two"], frames,
                                [[0.0, 0.5, 1.0, 1.5]] * 2, [2.0, 2.0], targets=targets)
    tok = processor.tokenizer
    for row, target in enumerate(targets):
        kept = batch["labels"][row][batch["labels"][row] != -100].tolist()
        assert tok.decode(kept) == " " + target + "<end_of_utterance>"
    # The media tokens are in the inputs, never in the labels.
    image_id = tok.convert_tokens_to_ids("<image>")
    assert (batch["input_ids"] == image_id).sum() == 2 * 4 * 16
    assert not (batch["labels"] == image_id).any()
    loss = model(**batch).loss
    assert torch.isfinite(loss)


def test_resolve_errors(tmp_path):
    with pytest.raises(InputError, match="built offline"):
        models.resolve("tiny-smolvlm2")
    with pytest.raises(InputError, match="unknown model"):
        models.resolve("no-such-model")
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(InputError, match="belongs to no registered family"):
        models.resolve(str(tmp_path))
    assert models.resolve("smolvlm2-256m").source == "HuggingFaceTB/SmolVLM2-256M-Video-Instruct"


def test_image_batch_labels_and_mixed_batches_refused(tiny_dir):
    ref = models.resolve(str(tiny_dir))
    model, processor = models.load(ref)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)]
    targets = ["The subject is performing a Squat.", "no error"]
    batch = models.encode_batch(processor, ref.family, ["is it normal", "how many"], [], [], [], targets=targets,
                                images=images)
    tok = processor.tokenizer
    image_id = tok.convert_tokens_to_ids("<image>")
    assert (batch["input_ids"] == image_id).sum() == 2 * 16  # one image of 16 tokens per prompt
    assert batch["pixel_values"].shape[:2] == (2, 1)
    for row, target in enumerate(targets):
        kept = batch["labels"][row][batch["labels"][row] != -100].tolist()
        assert tok.decode(kept) == " " + target + "<end_of_utterance>"
    assert torch.isfinite(model(**batch).loss)
    # left padding for generation: the prompts end flush right
    gen = models.encode_batch(processor, ref.family, ["a", "a much longer question"], [], [], [], images=images,
                              padding_side="left")
    assert (gen["attention_mask"][:, -1] == 1).all() and "labels" not in gen
    with pytest.raises(ValueError, match="mixes images and videos"):
        models.encode_batch(processor, ref.family, ["q"], [rng.integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)],
                            [[0.0, 0.5]], [1.0], images=images[:1])
