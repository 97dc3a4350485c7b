"""vt-quantize: every method on a tiny model loads through core's loader, generates, runs through
vt-infer generate and profile unchanged, and shrinks where it should."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from videotune.core import models
from videotune.core.io import InputError, read_jsonl
from videotune.core.schemas import Prediction
from videotune.infer.generate import GenerateConfig, run_generate
from videotune.infer.profile import ProfileConfig, run_profile
from videotune.quantize.cli import QuantizeConfig, run_quantize
from videotune.quantize.methods import int4_group_size, linear_weight_pattern

BIN = Path(sys.executable).parent
# Upper bounds of weights bytes after / before on the tiny model (32-wide layers: norms, biases, the
# conv patch embedding and per-row scales weigh more than at real sizes, where int8 lands near 0.26).
EXPECTED_RATIO = {"fp32": (0.99, 1.01), "bf16": (0.45, 0.56), "fp16": (0.45, 0.56), "int8-dynamic": (0.2, 0.6),
                  "int8-weight": (0.2, 0.6), "int4-weight": (0.2, 0.6)}


def _generate_tokens(model, n=4, device="cpu"):
    ids = torch.tensor([[1, 5, 6, 7, 8, 9]], device=device)
    with torch.inference_mode():
        out = model.generate(input_ids=ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)
    return out[0, ids.shape[1]:].tolist()


@pytest.mark.parametrize("method", ["fp32", "bf16", "fp16", "int8-dynamic", "int8-weight", "int4-weight"])
def test_method_loads_generates_and_shrinks(method, tiny_model, gym_examples, gym_raw, tmp_path):
    report = run_quantize(QuantizeConfig(method=method, model=tiny_model, out=tmp_path / "q"))
    size = json.loads((tmp_path / "q/size.json").read_text())
    assert size == {**size, "method": method, "weights_bytes_after": report["weights_bytes_after"]}
    lo, hi = EXPECTED_RATIO[method]
    assert lo <= size["ratio"] <= hi, size
    assert size["ratio"] == pytest.approx(size["weights_bytes_after"] / size["weights_bytes_before"], abs=1e-4)
    model_dir = tmp_path / "q/model"
    marker = json.loads((model_dir / "videotune.json").read_text())["quantization"]
    assert marker["method"] == method and marker["versions"]["torch"]

    # core's loader: the one path every tool uses
    model, processor = models.load(models.resolve(str(model_dir)), dtype="auto")
    tokens = _generate_tokens(model)
    assert len(tokens) == 4 and all(0 <= t < len(processor.tokenizer) for t in tokens)
    if method == "int8-dynamic":
        # every layer of this model is below the int8 threshold: int8 on disk, float32 compute
        assert marker["min_int8_weights"] == models.DYNAMIC_INT8_MIN_WEIGHTS and marker["float_compute_layers"] > 0
        assert type(model.model.text_model.layers[0].mlp.up_proj) is torch.nn.Linear
        assert type(model.get_input_embeddings()) is torch.nn.Embedding
    elif method in ("int8-weight", "int4-weight"):
        kind = "Int8Tensor" if method == "int8-weight" else "IntxUnpackedToInt8Tensor"
        assert type(model.model.text_model.layers[0].mlp.up_proj.weight).__name__ == kind
        assert type(model.lm_head.weight).__name__ == kind
        assert type(model.get_input_embeddings().weight).__name__ == "IntxUnpackedToInt8Tensor"
    elif method in ("bf16", "fp16"):
        assert model.model.text_model.layers[0].mlp.up_proj.weight.dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[method]

    # vt-infer generate and profile load it unchanged (their run functions: the console scripts' code)
    dtype = {"bf16": "bfloat16", "fp16": "float16"}.get(method, "float32")
    run_generate(GenerateConfig(model=str(model_dir), examples=gym_examples, data_root=gym_raw, out=tmp_path / "gen",
                                limit=2, batch_size=2, max_new_tokens=4, dtype=dtype))
    predictions = read_jsonl(tmp_path / "gen/predictions.jsonl", Prediction)
    assert len(predictions) == 2 and all(p.status == "ok" and p.new_tokens >= 1 for p in predictions)
    profile = run_profile(ProfileConfig(model=str(model_dir), examples=gym_examples, data_root=gym_raw,
                                        out=tmp_path / "prof", n_samples=1, warmup=0, max_new_tokens=2))
    assert profile.quantization["method"] == method
    assert profile.model_weights_bytes == size["weights_bytes_after"]
    assert profile.dtype == {"bf16": "bfloat16", "fp16": "float16"}.get(method, "float32")


def test_quantized_model_through_the_console_scripts(tiny_model, gym_examples, gym_raw, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    made = subprocess.run([str(BIN / "vt-quantize"), "--method", "int8-dynamic", "--model", str(tiny_model), "--out",
                           str(tmp_path / "q")], capture_output=True, text=True, env=env)
    assert made.returncode == 0, made.stderr[-2000:]
    assert "int8-dynamic: weights" in made.stderr
    from videotune.core.summaries import QuantizeSummary, read_summary

    size = json.loads((tmp_path / "q/size.json").read_text())
    typed = read_summary(tmp_path / "q/summary.json")
    assert isinstance(typed, QuantizeSummary) and typed.method == "int8-dynamic" and typed.ratio == size["ratio"]
    model_dir = tmp_path / "q/model"
    gen = subprocess.run([str(BIN / "vt-infer"), "generate", "--model", str(model_dir), "--examples", str(gym_examples),
                          "--data-root", str(gym_raw), "--out", str(tmp_path / "gen"), "--limit", "2", "--batch-size", "2",
                          "--max-new-tokens", "4"], capture_output=True, text=True, env=env)
    assert gen.returncode == 0, gen.stderr[-2000:]
    assert len(read_jsonl(tmp_path / "gen/predictions.jsonl", Prediction)) == 2
    prof = subprocess.run([str(BIN / "vt-infer"), "profile", "--model", str(model_dir), "--examples", str(gym_examples),
                           "--data-root", str(gym_raw), "--out", str(tmp_path / "prof"), "--n-samples", "1", "--warmup", "0",
                           "--max-new-tokens", "2"], capture_output=True, text=True, env=env)
    assert prof.returncode == 0, prof.stderr[-2000:]
    assert json.loads((tmp_path / "prof/profile.json").read_text())["quantization"]["method"] == "int8-dynamic"


def test_int8_dynamic_keeps_fp32_greedy_output_close(tiny_model, tmp_path):
    """Quantization noise on random weights can flip a near-tie, but the first tokens agree."""
    run_quantize(QuantizeConfig(method="int8-dynamic", model=tiny_model, out=tmp_path / "q"))
    reference, _ = models.load(models.resolve(str(tiny_model)))
    quantized, _ = models.load(models.resolve(str(tmp_path / "q/model")))
    assert _generate_tokens(reference, 2)[0] == _generate_tokens(quantized, 2)[0]


def _linear_sizes(model):
    return sorted({m.weight.numel() for m in model.modules() if type(m) is torch.nn.Linear})


def test_int8_dynamic_runs_small_layers_in_float_from_int8_storage(tiny_model, tmp_path):
    """Below --min-int8-weights a layer is stored in int8 but computes in float32 (dequantized at load);
    at or above it, it is a torch.ao int8 module. Either way the file holds int8 weights only."""
    fp32, _ = models.load(models.resolve(str(tiny_model)))
    sizes = _linear_sizes(fp32)
    threshold = sizes[len(sizes) // 2]  # splits this model's Linear layers into two groups
    run_quantize(QuantizeConfig(method="int8-dynamic", model=tiny_model, out=tmp_path / "mixed", min_int8_weights=threshold))
    run_quantize(QuantizeConfig(method="int8-dynamic", model=tiny_model, out=tmp_path / "all", min_int8_weights=0))
    mixed, _ = models.load(models.resolve(str(tmp_path / "mixed/model")))
    all_int8, _ = models.load(models.resolve(str(tmp_path / "all/model")))
    reference = dict(fp32.named_modules())
    kinds = {"float": 0, "int8": 0}
    for name, module in mixed.named_modules():
        if name not in reference or type(reference[name]) not in (torch.nn.Linear, torch.nn.Embedding):
            continue
        if reference[name].weight.numel() >= threshold:
            assert "quantized" in type(module).__module__, name
            kinds["int8"] += 1
        else:
            assert type(module) is type(reference[name]), name
            original, loaded = reference[name].weight, module.weight
            # the int8 values dequantized: close to fp32, but not fp32 itself
            assert not torch.equal(original, loaded), name
            step = (original.abs().amax() / 127).item() if type(module) is torch.nn.Linear else \
                (original.amax(1) - original.amin(1)).max().item() / 255
            assert (original - loaded).abs().max().item() <= step * 0.51 + 1e-7, name
            kinds["float"] += 1
    assert kinds["float"] > 0 and kinds["int8"] > 0, kinds
    assert all("quantized" in type(m).__module__ for n, m in all_int8.named_modules()
               if type(reference.get(n)) in (torch.nn.Linear, torch.nn.Embedding))
    assert models.read_quantization(tmp_path / "all/model").float_compute_layers == 0
    # int8 on disk either way: the mixed file is no larger than the all-int8 one (packed params carry extra)
    stored = torch.load(tmp_path / "mixed/model" / models.DYNAMIC_INT8_WEIGHTS, weights_only=True)
    kept = [n for n, m in mixed.named_modules() if type(m) in (torch.nn.Linear, torch.nn.Embedding)]
    assert kept and all(stored[f"{n}.weight"].is_quantized for n in kept)
    assert models.weights_bytes(tmp_path / "mixed/model") <= models.weights_bytes(tmp_path / "all/model")
    assert len(_generate_tokens(mixed)) == 4


def test_int8_dynamic_stores_a_tied_weight_once(tiny_model, tmp_path):
    """lm_head tied to the input embedding, both under the threshold: one int8 tensor on disk, tied again at load."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(tiny_model)
    model.config.tie_word_embeddings = model.config.text_config.tie_word_embeddings = True
    model.tie_weights()
    assert model.lm_head.weight is model.get_input_embeddings().weight
    model.save_pretrained(tmp_path / "tied")
    AutoProcessor.from_pretrained(tiny_model).save_pretrained(tmp_path / "tied")
    run_quantize(QuantizeConfig(method="int8-dynamic", model=tmp_path / "tied", out=tmp_path / "q"))
    stored = torch.load(tmp_path / "q/model" / models.DYNAMIC_INT8_WEIGHTS, weights_only=True)
    head, embedding = stored["lm_head.weight"], stored["model.text_model.embed_tokens.weight"]
    assert head.is_quantized and head.untyped_storage().data_ptr() == embedding.untyped_storage().data_ptr()
    loaded, _ = models.load(models.resolve(str(tmp_path / "q/model")))
    assert torch.equal(loaded.lm_head.weight, loaded.get_input_embeddings().weight)
    assert len(_generate_tokens(loaded)) == 4


def test_int8_dynamic_checkpoint_without_threshold_loads_every_layer_int8(tiny_model, tmp_path):
    """A checkpoint whose videotune.json predates min_int8_weights was quantized whole: it loads so."""
    run_quantize(QuantizeConfig(method="int8-dynamic", model=tiny_model, out=tmp_path / "q", min_int8_weights=0))
    marker_path = tmp_path / "q/model" / models.CHECKPOINT_FILE
    marker = json.loads(marker_path.read_text())
    del marker["quantization"]["min_int8_weights"]
    marker_path.write_text(json.dumps(marker))
    model, _ = models.load(models.resolve(str(tmp_path / "q/model")))
    assert "dynamic" in type(model.model.text_model.layers[0].mlp.up_proj).__module__
    assert "quantized" in type(model.get_input_embeddings()).__module__


def test_int8_dynamic_threshold_that_does_not_match_the_weights_is_refused(tiny_model, tmp_path):
    run_quantize(QuantizeConfig(method="int8-dynamic", model=tiny_model, out=tmp_path / "q", min_int8_weights=0))
    marker_path = tmp_path / "q/model" / models.CHECKPOINT_FILE
    marker = json.loads(marker_path.read_text())
    ref = models.resolve(str(tmp_path / "q/model"))
    for bad, message in ((10**9, r"model\.int8-dynamic\.pt: .*\.weight should hold int8 weights"),
                         (-1, r"videotune\.json: quantization\.min_int8_weights: Input should be greater than or equal to 0"),
                         (True, r"videotune\.json: quantization\.min_int8_weights: Input should be a valid integer")):
        marker["quantization"]["min_int8_weights"] = bad
        marker_path.write_text(json.dumps(marker))
        with pytest.raises(InputError, match=message):
            models.load(ref)
    with pytest.raises(ValidationError):
        QuantizeConfig(method="int8-dynamic", model=tiny_model, out=tmp_path / "neg", min_int8_weights=-1)


def test_int8_dynamic_refuses_other_dtypes_and_devices(tiny_model, tmp_path):
    run_quantize(QuantizeConfig(method="int8-dynamic", model=tiny_model, out=tmp_path / "q"))
    ref = models.resolve(str(tmp_path / "q/model"))
    with pytest.raises(InputError, match="float32 on the CPU only"):
        models.load(ref, dtype="bfloat16")
    with pytest.raises(InputError, match="float32 on the CPU only"):
        models.load(ref, device="cuda")


def test_an_already_quantized_model_is_refused(tiny_model, tmp_path):
    run_quantize(QuantizeConfig(method="int8-weight", model=tiny_model, out=tmp_path / "q"))
    with pytest.raises(InputError, match="already quantized"):
        run_quantize(QuantizeConfig(method="int4-weight", model=tmp_path / "q/model", out=tmp_path / "again"))


def test_linear_pattern_matches_exactly_the_linear_weights(tiny_model):
    model, _ = models.load(models.resolve(str(tiny_model)))
    pattern = linear_weight_pattern(model)[3:]
    linear = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert {n for n, _ in model.named_parameters() if re.fullmatch(pattern, n)} == linear
    assert "lm_head.weight" in linear and not any(n.endswith(".bias") for n in linear)
    # 32-wide layers: 128 and 64 do not divide 32
    assert int4_group_size(model) == 32
    with pytest.raises(InputError, match="divides"):
        int4_group_size(model, 128)


def test_gptq_refuses_clearly_without_calibration(tiny_model, tmp_path):
    result = subprocess.run([str(BIN / "vt-quantize"), "--method", "gptq", "--model", str(tiny_model), "--out",
                             str(tmp_path / "q")], capture_output=True, text=True)
    assert result.returncode == 2 and "--calibration" in result.stderr
    assert not (tmp_path / "q/model").exists()


def test_gptq_quantizes_and_generates(tiny_model, gym_examples, tmp_path):
    """GPTQModel on whatever device there is (the CPU here): 4-bit decoder weights that load and generate."""
    pytest.importorskip("gptqmodel", reason="gptq needs GPTQModel (pip install 'videotune[gptq]')")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    report = run_quantize(QuantizeConfig(method="gptq", model=tiny_model, out=tmp_path / "q", calibration=gym_examples,
                                         calibration_examples=16, group_size=32))
    assert report["ratio"] < 1.0
    marker = models.read_quantization(tmp_path / "q/model")
    assert marker.method == "gptq" and marker.bits == 4 and marker.group_size == 32
    assert not (tmp_path / "q/model/quant_log.csv").exists()
    model, _ = models.load(models.resolve(str(tmp_path / "q/model")), device=device)
    kernels = {type(m).__name__ for n, m in model.named_modules() if n.endswith("text_model.layers.0.self_attn.q_proj")}
    assert kernels and not kernels & {"Linear"}, kernels  # the decoder's projections are GPTQ kernels
    assert len(_generate_tokens(model, device=device)) == 4


def test_console_script_usage_errors(tiny_model, tmp_path):
    bad = subprocess.run([str(BIN / "vt-quantize"), "--method", "int3", "--model", str(tiny_model), "--out", str(tmp_path)],
                         capture_output=True, text=True)
    assert bad.returncode == 2
    missing = subprocess.run([str(BIN / "vt-quantize"), "--method", "fp32", "--model", str(tmp_path / "nope"), "--out",
                              str(tmp_path / "o")], capture_output=True, text=True)
    assert missing.returncode == 2 and "nope" in missing.stderr


def test_help_has_an_example():
    result = subprocess.run([str(BIN / "vt-quantize"), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "vt-quantize --method" in result.stdout.replace("\n", " ")
    bench = subprocess.run([sys.executable, "-m", "videotune.quantize.bench", "--help"], capture_output=True, text=True)
    assert bench.returncode == 0 and "python -m videotune.quantize.bench" in bench.stdout.replace("\n", " ")
