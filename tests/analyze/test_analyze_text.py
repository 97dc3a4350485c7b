"""Text metrics against hand-worked values and against the reference libraries called directly."""

from __future__ import annotations

import dataclasses
import math
import random

import numpy as np
import pytest

from videotune.analyze.text import (
    RougeTokenizer,
    bleu_from_stats,
    lexnames_text,
    score_texts,
    seed_tokens,
    word_tokens,
)

PREDS = [
    "step-ups - knees caving; keep knees over toes",
    "squats - chest dropping",
    "lunges - knee drifts past the toes; slow down",
    "Приседания - колени внутрь",
    "深蹲 - 膝盖内扣",
    "the cat sat on the mat",
]
REFS = [
    "step-ups - knees caving; keep knees over toes",
    "squats - chest dropping; keep the chest up",
    "lunges - front knee past toes; control the descent",
    "Приседания - колени наружу",
    "深蹲 - 膝盖外展",
    "the cat is on the mat",
]


def test_word_tokens_keep_hyphenated_and_non_latin_words():
    assert word_tokens("Step-ups - knees caving; keep_knees") == ["step", "ups", "knees", "caving", "keep", "knees"]
    assert word_tokens("Приседания - Колени внутрь!") == ["приседания", "колени", "внутрь"]
    assert word_tokens("深蹲 - 膝盖内扣") == ["深", "蹲", "膝", "盖", "内", "扣"]
    assert word_tokens("  ") == []


def test_rouge_tokenizer_equals_rouge_scores_default_on_ascii():
    from rouge_score.tokenizers import DefaultTokenizer

    default, ours = DefaultTokenizer(use_stemmer=True), RougeTokenizer()
    rng = random.Random(0)
    alphabet = "abcdefghij KLMNOP 0123 -_.,;:'\"!?()\n\t"
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        assert ours.tokenize(text) == default.tokenize(text), text
    sentence = "The runners were running quickly, knees caving-in at 3pm."
    assert ours.tokenize(sentence) == default.tokenize(sentence)


def test_rouge_l_by_hand(text_models_no_java):
    # LCS of "the cat sat on the mat" / "the cat is on the mat" is "the cat on the mat": 5 of 6 on each side.
    scores = score_texts([PREDS[5]], [REFS[5]], text_models_no_java)
    assert scores.per_example["rouge_l"][0] == pytest.approx(5 / 6)
    # Non-Latin words count (rouge-score's default tokenizer would delete them and score 0):
    # "приседания колени внутрь" vs "приседания колени наружу": LCS 2 of 3.
    scores = score_texts([PREDS[3]], [REFS[3]], text_models_no_java)
    assert scores.per_example["rouge_l"][0] == pytest.approx(2 / 3)


def test_meteor_by_hand_and_equal_to_nltk(text_models_no_java, nltk_word_tokenize):
    from nltk.translate.meteor_score import single_meteor_score

    # Identical 6-token sentences: F-mean 1, one chunk, penalty 0.5 * (1/6)^3.
    same = score_texts(["the cat sat on the mat"], ["the cat sat on the mat"], text_models_no_java)
    assert same.per_example["meteor"][0] == pytest.approx(1 - 0.5 * (1 / 6) ** 3)
    # "dog" matches "hound" only through WordNet synonyms: all 3 words match, one chunk.
    # (NLTK compares synonyms with the Porter stems left by its stem stage, so a pair like
    # big/large, where "large" stems to "larg", does not match: NLTK's behaviour, kept.)
    synonym = score_texts(["the dog barked"], ["the hound barked"], text_models_no_java)
    assert synonym.per_example["meteor"][0] == pytest.approx(1 - 0.5 * (1 / 3) ** 3)
    # Punctuation is a token: "the cat sat." has 4 tokens, all matched in one chunk.
    dot = score_texts(["The cat sat."], ["the cat sat."], text_models_no_java)
    assert dot.per_example["meteor"][0] == pytest.approx(1 - 0.5 * (1 / 4) ** 3)
    scores = score_texts(PREDS, REFS, text_models_no_java)
    for i, (p, r) in enumerate(zip(PREDS, REFS)):
        direct = single_meteor_score(nltk_word_tokenize(r), nltk_word_tokenize(p), wordnet=text_models_no_java.wordnet,
                                     alpha=0.9, beta=3, gamma=0.5)
        assert scores.per_example["meteor"][i] == pytest.approx(direct)


# Feedback as the project writes it (vt-prep synth's coaching texts, QVED-style descriptions):
# several sentences, capitals, decimals, ranges, parentheses, quotes, abbreviations.
FEEDBACK_PREDS = [
    "Squat, 5 reps: knees inward from about 1.2 s to 2.8 s (reps 1-3). To fix it, push your knees out over "
    "your toes as you descend. Keep the knees in line with your second toe!",
    "Good OHP: 4 controlled reps with no form errors. Keep squeezing the glutes so the ribs stay down.",
    "In this Squat set of 6 reps, I see the knees forward on every rep (about 0.5-3.1 s); sit the hips back "
    "first, e.g. by pushing them toward the wall.",
    "The subject is performing an OHP. Errors: elbows, from 0.0s to 2.78s. \"Stack the forearms,\" Dr. Lee said.",
    "",
    "Nice set.",
]
FEEDBACK_REFS = [
    "Squat (5 reps): there is a knees inward fault between about 1.0 s and 2.9 s, with the knees falling in as "
    "you descend. Cue: spread the floor with your feet so the knees track over the toes.",
    "Clean OHP set of 4 reps, with solid positions and a steady tempo. Keep the bar path close to your face.",
    "Squat, 6 reps: knees forward on every rep (about 0.4-3.0 s), travelling well past your toes. Next set, "
    "hinge a little more at the hips so the shins stay closer to vertical.",
    "The subject is performing an OHP. The body part involved in the error is as follows: elbows from frame "
    "time 0.0s to 2.8s.",
    "Good squat.",
    "Nice set of 4 squat reps; your form looks sound throughout.",
]


def test_meteor_is_hf_evaluates_definition_on_feedback_texts(text_models_no_java, nltk_word_tokenize):
    """HF evaluate's meteor `_compute` (NLTK >= 3.6.5, one reference each), run with NLTK's own word_tokenize."""
    from nltk.translate import meteor_score

    expected = [meteor_score.single_meteor_score(nltk_word_tokenize(ref), nltk_word_tokenize(pred), alpha=0.9, beta=3,
                                                 gamma=0.5, wordnet=text_models_no_java.wordnet)
                for ref, pred in zip(FEEDBACK_REFS, FEEDBACK_PREDS)]
    scores = score_texts(FEEDBACK_PREDS, FEEDBACK_REFS, text_models_no_java)
    assert scores.per_example["meteor"] == pytest.approx(expected, abs=1e-12)
    assert float(np.mean(scores.per_example["meteor"])) == pytest.approx(float(np.mean(expected)), abs=1e-12)
    assert scores.per_example["meteor"][4] == 0  # an empty answer scores 0, as evaluate scores it
    # The seed's tokens keep case and punctuation, which the old letter/digit runs dropped: the scores differ.
    lowered = [meteor_score.single_meteor_score(word_tokens(r), word_tokens(p), wordnet=text_models_no_java.wordnet)
               for r, p in zip(FEEDBACK_REFS[:4], FEEDBACK_PREDS[:4])]
    assert max(abs(a - b) for a, b in zip(lowered, expected[:4])) > 0.01


def test_seed_tokens_are_nltk_word_tokenize(nltk_word_tokenize):
    """Our splitter gives word_tokenize's tokens: on the project's texts against NLTK's own word_tokenize, and on
    the outputs NLTK's test suite records for word_tokenize with its downloaded English Punkt model."""
    for text in FEEDBACK_PREDS + FEEDBACK_REFS + PREDS + REFS:
        assert seed_tokens(text) == nltk_word_tokenize(text), text
    # nltk/test/tokenize.doctest ("Sentence tokenization in word_tokenize", NLTKWordTokenizer regression tests):
    assert seed_tokens("I called Dr. Jones. I called Dr. Jones.") == [
        "I", "called", "Dr.", "Jones", ".", "I", "called", "Dr.", "Jones", "."]
    assert seed_tokens("Ich muss unbedingt daran denken, Mehl, usw. fur einen Kuchen einzukaufen. Ich muss.") == [
        "Ich", "muss", "unbedingt", "daran", "denken", ",", "Mehl", ",", "usw", ".", "fur", "einen", "Kuchen",
        "einzukaufen", ".", "Ich", "muss", "."]
    assert seed_tokens("Good muffins cost $3.88\nin New York.  Please buy me\ntwo of them.\n\nThanks.") == [
        "Good", "muffins", "cost", "$", "3.88", "in", "New", "York", ".", "Please", "buy", "me", "two", "of", "them",
        ".", "Thanks", "."]
    assert seed_tokens("On a $50,000 mortgage of 30 years at 8 percent, the monthly payment would be $366.88.") == [
        "On", "a", "$", "50,000", "mortgage", "of", "30", "years", "at", "8", "percent", ",", "the", "monthly",
        "payment", "would", "be", "$", "366.88", "."]
    assert seed_tokens("It's more'n enough.") == ["It", "'s", "more", "'n", "enough", "."]


def test_debian_wordnet_is_wordnet_3_and_lexnames_follow_the_spec(text_models_no_java):
    reader = text_models_no_java.wordnet  # built by debian_wordnet() when the models loaded
    assert reader.get_version() == "3.0"
    assert reader.synsets("dog")[0].lexname() == "noun.animal"
    lines = lexnames_text().splitlines()
    assert len(lines) == 45 and lines[0] == "00\tadj.all\t3" and lines[44] == "44\tadj.ppl\t3"
    import gzip
    from pathlib import Path

    page = Path("/usr/share/man/man5/lexnames.5WN.gz")
    if page.is_file():  # Debian ships the format's own list: the two agree
        listed = [line.split("\t")[:2] for line in gzip.open(page, "rt") if line[:2].isdigit() and "\t" in line]
        assert [[n, name.strip()] for n, name in listed] == [line.split("\t")[:2] for line in lines]


def test_bleu_equals_sacrebleu_corpus_score(text_models_no_java):
    from sacrebleu.metrics import BLEU

    scores = score_texts(PREDS, REFS, text_models_no_java)
    for order in (1, 2, 3, 4):
        direct = BLEU(max_ngram_order=order).corpus_score(PREDS, [REFS]).score / 100
        assert bleu_from_stats(scores.bleu_stats.sum(axis=0), order) == pytest.approx(direct)
    assert "tok:13a" in scores.meta["bleu"]["signature"] and "smooth:exp" in scores.meta["bleu"]["signature"]
    # A perfect corpus of 6-token sentences: every n-gram precision 1, no brevity penalty.
    perfect = score_texts(REFS, REFS, text_models_no_java)
    assert bleu_from_stats(perfect.bleu_stats.sum(axis=0), 4) == pytest.approx(1.0)


def test_embedding_metrics_equal_the_libraries(text_models_no_java):
    from bert_score import BERTScorer

    scores = score_texts(PREDS, REFS, text_models_no_java)
    vectors = text_models_no_java.embedder.encode(PREDS + REFS, normalize_embeddings=True)
    cosine = (vectors[: len(PREDS)] * vectors[len(PREDS):]).sum(axis=1)
    assert scores.per_example["embedding_similarity"] == pytest.approx(np.clip(cosine, -1, 1), abs=1e-5)
    assert scores.per_example["embedding_similarity"][0] == pytest.approx(1.0, abs=1e-6)
    scorer = BERTScorer(model_type=str(text_models_no_java.model_path), num_layers=text_models_no_java.n_layers, device="cpu")
    _, _, f1 = scorer.score(PREDS, REFS)
    assert scores.per_example["bertscore_f1"] == pytest.approx(f1.numpy(), abs=1e-5)
    meta = scores.meta["bertscore"]
    assert meta["layer"] == text_models_no_java.n_layers == 6 and meta["idf"] is False and meta["version"]


def test_other_bertscore_layer_runs_bert_score_itself(text_models_no_java):
    from bert_score import BERTScorer

    scorer = BERTScorer(model_type=str(text_models_no_java.model_path), num_layers=4, device="cpu")
    layer4 = dataclasses.replace(text_models_no_java, bert_scorer=scorer, bertscore_layer=4)
    scores = score_texts(PREDS[:3], REFS[:3], layer4)
    _, _, f1 = scorer.score(PREDS[:3], REFS[:3])
    assert scores.per_example["bertscore_f1"] == pytest.approx(f1.numpy(), abs=1e-6)


def test_empty_and_failed_predictions_score_zero_and_stay_counted(text_models_no_java):
    scores = score_texts(["", "  ", "squats - chest dropping"], REFS[:3], text_models_no_java, failed=[False, False, True])
    for name, values in scores.per_example.items():
        assert values.shape == (3,) and (values == 0).all(), name
    assert scores.meta["n_empty_or_failed"] == 3
    # They still weigh in BLEU: reference length with no hypothesis words.
    assert scores.bleu_stats[:, 0].sum() == 0 and scores.bleu_stats[:, 1].sum() > 0


def test_cider_equals_pycocoevalcap_or_is_absent_with_a_reason(text_models, monkeypatch):
    scores = score_texts(PREDS, REFS, text_models)
    if text_models.java is None:
        assert "cider" not in scores.per_example and "java" in scores.absent["cider"]
    else:
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        tok = PTBTokenizer()
        gts = tok.tokenize({i: [{"caption": r}] for i, r in enumerate(REFS)})
        res = tok.tokenize({i: [{"caption": p}] for i, p in enumerate(PREDS)})
        mean, per = Cider().compute_score(gts, res)
        assert scores.per_example["cider"] == pytest.approx(np.asarray(per))
        assert float(np.mean(scores.per_example["cider"])) == pytest.approx(mean)
        empty = score_texts(["", PREDS[1]], REFS[:2], text_models)  # an empty answer scores 0, and stays
        assert empty.per_example["cider"][0] == 0.0 and empty.per_example["cider"].shape == (2,)
    without = score_texts(PREDS[:2], REFS[:2], dataclasses.replace(text_models, java=None))
    assert "cider" not in without.per_example and "java not found" in without.absent["cider"]
    assert not math.isnan(without.per_example["meteor"].sum())
