"""Text columns: tokens, a vocabulary fitted on the training rows, and two encodings.

- ``tfidf``: a bag of words (and optional word bigrams and character n-grams), one input
  per vocabulary token: ``(1 + ln tf) * idf``, ``idf = ln((1 + n) / (1 + df)) + 1`` over the
  ``n`` training rows, each row scaled to unit length, as scikit-learn's
  ``TfidfVectorizer(sublinear_tf=True)`` computes it. Tokens outside the vocabulary are
  left out. Fast, and strong on short texts.
- ``sequence``: the words' ids in order, ``max_length`` inputs, for the sequence layers
  (``embedding`` first): id 0 is padding (after the text's end), id 1 stands for every
  word outside the vocabulary, the vocabulary's words follow from the most frequent.

Everything here is fitted on the training rows, saved in the model file and applied as
saved, so that ``bp predict`` tokenises exactly as training did. A missing cell is an
empty text.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: scikit-learn's default: words of two or more letters or digits
WORD_PATTERN = r"(?u)\b\w\w+\b"
PADDING, UNKNOWN = 0, 1  # the first two sequence ids
FIRST_WORD_ID = 2
DEFAULT_MAX_TOKENS = {"tfidf": 5000, "sequence": 20000}
#: sequence: the default length covers this share of the training texts whole ...
LENGTH_QUANTILE = 0.95
MAX_DEFAULT_LENGTH = 400  # ... up to this many words


@dataclass
class TextSpec:
    """How a text column is tokenised and encoded, with what was fitted."""

    encoding: str = "tfidf"  # tfidf | sequence
    lowercase: bool = True
    token_pattern: str = WORD_PATTERN
    ngrams: tuple[int, int] = (1, 1)  # word n-grams, tfidf only
    char_ngrams: tuple[int, int] | None = None  # character n-grams within words, tfidf only
    max_tokens: int | None = None  # None: DEFAULT_MAX_TOKENS of the encoding
    min_count: int = 1  # tfidf: rows a token is in; sequence: times it occurs
    max_length: int | None = None  # sequence: ids per row; None until fitted
    vocabulary: list[str] = field(default_factory=list)
    idf: list[float] = field(default_factory=list)  # tfidf: one per vocabulary token

    @property
    def width(self) -> int:
        if self.encoding == "sequence":
            assert self.max_length is not None, "the text column is not fitted"
            return self.max_length
        return len(self.vocabulary)

    def input_names(self, column: str) -> list[str]:
        if self.encoding == "sequence":
            return [f"{column}[{i}]" for i in range(self.width)]
        return [f"{column}:{token}" for token in self.vocabulary]

    def tokens(self, text: str) -> list[str]:
        """The text's tokens: words in order; for tfidf, then its word n-grams and
        character n-grams."""
        if self.lowercase:
            text = text.lower()
        words = re.compile(self.token_pattern).findall(text)
        if self.encoding == "sequence":
            return words
        low, high = self.ngrams
        found = [] if low > 1 else list(words)
        for n in range(max(low, 2), high + 1):
            found.extend(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))
        if self.char_ngrams is not None:
            lo, hi = self.char_ngrams
            for word in words:
                padded = f" {word} "
                for n in range(lo, hi + 1):
                    found.extend(padded[i : i + n] for i in range(len(padded) - n + 1))
        return found

    # -- fitting -----------------------------------------------------------------------
    def fit(self, texts: Sequence[str], weights: NDArray[np.int64]) -> None:
        """The vocabulary (and idf, or the default length) from distinct ``texts``, each
        standing for ``weights`` training rows."""
        tokenised = [self.tokens(t) for t in texts]
        counts: Counter[str] = Counter()
        rows_with: Counter[str] = Counter()
        for tokens, weight in zip(tokenised, weights.tolist(), strict=True):
            if not weight:
                continue
            for token, n in Counter(tokens).items():
                counts[token] += n * weight
                rows_with[token] += weight
        limit = self.max_tokens or DEFAULT_MAX_TOKENS[self.encoding]
        basis = rows_with if self.encoding == "tfidf" else counts
        eligible = [t for t in counts if basis[t] >= self.min_count]
        eligible.sort(key=lambda t: (-counts[t], t))  # the most frequent, ties by text
        kept = eligible[:limit]
        if self.encoding == "tfidf":
            self.vocabulary = sorted(kept)
            n = int(weights.sum())
            self.idf = [math.log((1 + n) / (1 + rows_with[t])) + 1 for t in self.vocabulary]
        else:
            self.vocabulary = kept
            if self.max_length is None:
                lengths = np.repeat([len(t) for t in tokenised], weights)
                quantile = (np.quantile(lengths, LENGTH_QUANTILE, method="inverted_cdf")
                            if len(lengths) else 1)
                self.max_length = int(min(max(math.ceil(quantile), 1), MAX_DEFAULT_LENGTH))

    # -- encoding ----------------------------------------------------------------------
    def encode_texts(self, texts: Sequence[str]) -> EncodedTexts:
        """Every distinct text's inputs, looked up by code when rows are encoded; the last
        entry is the empty text (a missing cell)."""
        if self.encoding == "sequence":
            return self._sequences([*texts, ""])
        return self._tfidf([*texts, ""])

    def _sequences(self, texts: Sequence[str]) -> EncodedTexts:
        assert self.max_length is not None
        ids = {t: i for i, t in enumerate(self.vocabulary, FIRST_WORD_ID)}
        table = np.zeros((len(texts), self.max_length), dtype=np.int32)
        for row, text in enumerate(texts):
            words = self.tokens(text)[: self.max_length]
            table[row, : len(words)] = [ids.get(w, UNKNOWN) for w in words]
        return EncodedTexts(dense=table)

    def _tfidf(self, texts: Sequence[str]) -> EncodedTexts:
        index = {t: i for i, t in enumerate(self.vocabulary)}
        idf = np.asarray(self.idf, dtype=np.float64)
        pointers = [0]
        columns: list[int] = []
        values: list[float] = []
        for text in texts:
            counts = Counter(index[t] for t in self.tokens(text) if t in index)
            if counts:
                cols = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
                tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
                weights = (1 + np.log(tf)) * idf[cols]
                weights /= np.sqrt(np.dot(weights, weights))
                columns.extend(cols.tolist())
                values.extend(weights.tolist())
            pointers.append(len(columns))
        return EncodedTexts(pointers=np.asarray(pointers, dtype=np.int64),
                            columns=np.asarray(columns, dtype=np.int64),
                            values=np.asarray(values, dtype=np.float64))

    # -- the model file ----------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "encoding": self.encoding, "lowercase": self.lowercase,
            "token_pattern": self.token_pattern, "vocabulary": self.vocabulary}
        if self.encoding == "tfidf":
            data.update(ngrams=list(self.ngrams), idf=self.idf,
                        char_ngrams=None if self.char_ngrams is None else list(self.char_ngrams))
        else:
            data["max_length"] = self.max_length
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TextSpec:
        spec = cls(encoding=str(data["encoding"]), lowercase=bool(data["lowercase"]),
                   token_pattern=str(data["token_pattern"]),
                   vocabulary=[str(t) for t in data["vocabulary"]])
        if spec.encoding not in DEFAULT_MAX_TOKENS:
            raise ValueError(f"unknown text encoding {spec.encoding!r}")
        check_pattern(spec.token_pattern)
        if spec.encoding == "tfidf":
            spec.ngrams = _pair(data["ngrams"])
            spec.char_ngrams = None if data.get("char_ngrams") is None \
                else _pair(data["char_ngrams"])
            spec.idf = [float(v) for v in data["idf"]]
            if len(spec.idf) != len(spec.vocabulary):
                raise ValueError("a text column's idf does not match its vocabulary")
        else:
            spec.max_length = int(data["max_length"])
            if spec.max_length < 1:
                raise ValueError("a text column's max_length must be positive")
        return spec


@dataclass
class EncodedTexts:
    """Inputs per distinct text: a dense table (sequence ids), or rows of a sparse
    matrix in compressed-row form (tfidf)."""

    dense: NDArray[np.int32] | None = None
    pointers: NDArray[np.int64] | None = None
    columns: NDArray[np.int64] | None = None
    values: NDArray[np.float64] | None = None

    def write(self, codes: NDArray[np.integer], out: NDArray[np.floating]) -> None:
        """The inputs of the texts with ``codes`` (-1 for a missing cell) into ``out``."""
        codes = np.where(codes < 0, self._empty(), codes)
        if self.dense is not None:
            out[...] = self.dense[codes]
            return
        assert self.pointers is not None and self.columns is not None \
            and self.values is not None
        starts = self.pointers[codes]
        lengths = self.pointers[codes + 1] - starts
        rows = np.repeat(np.arange(len(codes)), lengths)
        first = np.cumsum(lengths) - lengths
        entries = np.arange(int(lengths.sum())) - np.repeat(first - starts, lengths)
        out[...] = 0
        out[rows, self.columns[entries]] = self.values[entries]

    def _empty(self) -> int:
        if self.dense is not None:
            return len(self.dense) - 1
        assert self.pointers is not None
        return len(self.pointers) - 2


def check_pattern(pattern: str) -> None:
    """A token pattern must compile and never match an empty text."""
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        raise ValueError(f"token_pattern {pattern!r} is not a regular expression: "
                         f"{error}") from None
    if compiled.search("") is not None or compiled.fullmatch(" ") is not None:
        raise ValueError(f"token_pattern {pattern!r} matches empty text or spaces; tokens "
                         r"need characters, e.g. '\b\w+\b'")


def looks_like_text(texts: Sequence[str], present: int) -> bool:
    """Free text rather than categories: many distinct values, most of several words."""
    if len(texts) <= 20 or len(texts) < 0.3 * present:
        return False
    sample = texts[:: max(1, len(texts) // 500)]
    words = sum(len(t.split()) for t in sample) / len(sample)
    return words >= 4


def _pair(value: Any) -> tuple[int, int]:
    low, high = (int(v) for v in value)
    if not 1 <= low <= high:
        raise ValueError(f"an n-gram range must be [low, high] with 1 <= low <= high, "
                         f"got {value!r}")
    return low, high
