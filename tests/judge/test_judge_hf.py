"""The hf backend with a tiny random Llama built offline: its babble must be recorded unparseable, not scored."""

import json

import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from judge_fakes import make_predictions  # noqa: E402

from videotune.core.io import read_jsonl, write_jsonl  # noqa: E402
from videotune.core.schemas import Verdict  # noqa: E402
from videotune.judge.cli import app  # noqa: E402

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("tiny-llama")
    corpus = ["rate the prediction on accuracy and usefulness", "knees cave inward during the squat",
              '{"rationale": "fine", "accuracy": 4, "usefulness": 3}'] * 20
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    ))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(out)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
                         bos_token_id=1, eos_token_id=2)
    LlamaForCausalLM(config).save_pretrained(out)
    return out


def test_random_model_output_is_unparseable_not_scored(tiny_llama, tmp_path):
    from videotune.judge.backends import HFBackend
    from videotune.judge.cache import AnswerCache
    from videotune.judge.judge import Judge, score_predictions
    from videotune.judge.rubric import load_rubric

    backend = HFBackend(str(tiny_llama), max_tokens=16)
    judge = Judge(backend, load_rubric("holistic"), AnswerCache(tmp_path / "cache"))
    verdicts = score_predictions(make_predictions(2), judge, tmp_path / "verdicts.jsonl", 2)
    assert [v.status for v in verdicts] == ["unparseable", "unparseable"]
    assert all(v.scores == {} and v.overall is None and v.judge == f"hf:{tiny_llama}" for v in verdicts)
    assert backend.counter.get("requests") == 8  # each: the question and 3 re-asks
    # Greedy decoding with a fixed seed: the same answers again, now from the cache.
    again = Judge(backend, load_rubric("holistic"), AnswerCache(tmp_path / "cache"))
    rerun = score_predictions(make_predictions(2), again, tmp_path / "again.jsonl", 1)
    assert backend.counter.get("requests") == 8
    assert [v.raw for v in rerun] == [v.raw for v in verdicts]


def test_hf_backend_through_the_cli(tiny_llama, tmp_path):
    write_jsonl(tmp_path / "p.jsonl", make_predictions(1))
    out = tmp_path / "judge"
    result = CliRunner().invoke(app, [
        "score", "--predictions", str(tmp_path / "p.jsonl"), "--backend", "hf", "--model", str(tiny_llama),
        "--max-tokens", "16", "--max-reasks", "1", "--out", str(out), "--no-answer-cache",
    ])
    assert result.exit_code == 0, result.stderr
    (verdict,) = read_jsonl(out / "verdicts.jsonl", Verdict)
    assert verdict.status == "unparseable" and verdict.scores == {}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["parse_failure_rate"] == 1.0 and summary["mean"] == {"accuracy": None, "usefulness": None}


def test_8bit_needs_cuda(tiny_llama):
    if torch.cuda.is_available():
        pytest.skip("this checks the refusal on a machine without CUDA")
    from videotune.core.io import InputError
    from videotune.judge.backends import HFBackend

    with pytest.raises(InputError, match="CUDA"):
        HFBackend(str(tiny_llama), load_in_8bit=True)


def test_system_turn_is_folded_for_templates_that_refuse_it(tiny_llama):
    from videotune.judge.backends import HFBackend

    backend = HFBackend(str(tiny_llama), max_tokens=4)
    # Like Mixtral's template: only user/assistant turns, anything else raises.
    backend.tokenizer.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
        "[{{ m['role'] }}] {{ m['content'] }}{% endfor %}"
    )
    ids = backend._prompt_ids([{"role": "system", "content": "be strict"}, {"role": "user", "content": "rate this"}])
    assert backend.tokenizer.decode(ids[0]) == "[user] be strict\n\nrate this"
