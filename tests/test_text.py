"""Text columns (bpcli/text.py and its place in the data flow): tokens, vocabularies,
tfidf against scikit-learn's, word ids, detection, config errors, and training, predicting
and checking gradients through the CLI."""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from bpcli.cli import app
from bpcli.text import FIRST_WORD_ID, PADDING, UNKNOWN, TextSpec, check_pattern, looks_like_text

TEXTS = ["The film was great, great fun", "A dull film", "", "great acting; dull plot 2024"]


def fitted(texts: list[str], **settings: Any) -> TextSpec:
    spec = TextSpec(**settings)
    spec.fit(texts, np.ones(len(texts), dtype=np.int64))
    return spec


def encoded(spec: TextSpec, texts: list[str]) -> np.ndarray:
    out = np.full((len(texts), spec.width), np.nan)
    spec.encode_texts(texts).write(np.arange(len(texts)), out)
    return out


# -- tokens and vocabularies -----------------------------------------------------------
def test_words_in_lower_case_by_default() -> None:
    assert TextSpec().tokens("The film, GREAT fun! a 2024") == ["the", "film", "great", "fun",
                                                               "2024"]
    assert TextSpec(lowercase=False).tokens("The film") == ["The", "film"]
    assert TextSpec(token_pattern=r"\b\w+\b").tokens("a b") == ["a", "b"]


def test_word_pairs_and_character_ngrams() -> None:
    assert TextSpec(ngrams=(1, 2)).tokens("good fun film") == [
        "good", "fun", "film", "good fun", "fun film"]
    assert TextSpec(ngrams=(2, 2)).tokens("good fun film") == ["good fun", "fun film"]
    assert TextSpec(char_ngrams=(2, 3)).tokens("ok") == ["ok", " o", "ok", "k ", " ok",
                                                         "ok "]
    assert TextSpec(encoding="sequence", ngrams=(1, 2)).tokens("a good film") == [
        "good", "film"]  # a sequence is the words in order


def test_vocabulary_keeps_the_most_frequent_tokens() -> None:
    spec = fitted(["bb bb aa cc", "bb aa dd", "ee"], max_tokens=2)
    assert spec.vocabulary == ["aa", "bb"]  # tfidf: sorted, like scikit-learn's
    spec = fitted(["bb bb aa cc", "bb aa dd", "ee"], max_tokens=3, encoding="sequence")
    assert spec.vocabulary == ["bb", "aa", "cc"]  # by frequency, ties by text
    assert fitted(["aa bb", "aa cc"], min_count=2).vocabulary == ["aa"]


def test_vocabulary_counts_each_training_row() -> None:
    """A text repeated in several rows counts once per row (the weights)."""
    spec = TextSpec(max_tokens=1, encoding="sequence")
    spec.fit(["rare word", "common"], np.array([1, 5]))
    assert spec.vocabulary == ["common"]
    spec = TextSpec(max_tokens=1, encoding="sequence")
    spec.fit(["rare word", "common"], np.array([3, 0]))  # not in the training rows
    assert spec.vocabulary == ["rare"]


def test_tfidf_equals_scikit_learn() -> None:
    sklearn_text = pytest.importorskip("sklearn.feature_extraction.text")
    rows = [line.split(",")[0] for line in _reviews(300)]
    for settings, theirs in [
        ({}, {}),
        ({"ngrams": (1, 2)}, {"ngram_range": (1, 2)}),
        ({"min_count": 3}, {"min_df": 3}),
    ]:
        vectorizer = sklearn_text.TfidfVectorizer(sublinear_tf=True, **theirs)
        expected = vectorizer.fit_transform(rows).toarray()
        spec = fitted(rows, **settings)
        assert spec.vocabulary == list(vectorizer.get_feature_names_out())
        np.testing.assert_allclose(encoded(spec, rows), expected, rtol=0, atol=1e-12)


def test_tfidf_rows_have_unit_length_and_unknown_words_are_left_out() -> None:
    spec = fitted(TEXTS)
    X = encoded(spec, [*TEXTS, "unknown words only", "great unknown"])
    norms = np.linalg.norm(X, axis=1)
    np.testing.assert_allclose(norms[[0, 1, 3, 5]], 1.0)
    assert norms[2] == 0 and norms[4] == 0  # empty, and nothing known
    assert np.count_nonzero(X[5]) == 1


def test_sequences_pad_truncate_and_mark_unknown_words() -> None:
    spec = fitted(["bb bb aa", "aa cc", "bb"], encoding="sequence", max_length=3)
    ids = {w: i for i, w in enumerate(spec.vocabulary, FIRST_WORD_ID)}
    X = encoded(spec, ["aa bb", "zz aa bb cc bb", ""])
    np.testing.assert_array_equal(X[0], [ids["aa"], ids["bb"], PADDING])
    np.testing.assert_array_equal(X[1], [UNKNOWN, ids["aa"], ids["bb"]])  # cut at 3
    np.testing.assert_array_equal(X[2], [PADDING] * 3)


def test_default_length_covers_most_texts() -> None:
    texts = [" ".join(["ww"] * n) for n in range(1, 101)]
    assert fitted(texts, encoding="sequence").max_length == 95
    assert fitted(["ww " * 1000], encoding="sequence").max_length == 400


def test_missing_cells_are_empty_texts() -> None:
    spec = fitted(["aa bb"], encoding="sequence")
    out = np.full((2, spec.width), np.nan)
    spec.encode_texts(["aa bb"]).write(np.array([0, -1]), out)
    assert out[1].tolist() == [PADDING] * spec.width and out[0, 0] != PADDING


def test_settings_survive_the_model_file() -> None:
    for spec in (fitted(TEXTS, ngrams=(1, 2), char_ngrams=(2, 3)),
                 fitted(TEXTS, encoding="sequence", lowercase=False)):
        again = TextSpec.from_json(yaml.safe_load(yaml.safe_dump(spec.to_json())))
        np.testing.assert_array_equal(encoded(again, TEXTS), encoded(spec, TEXTS))
    with pytest.raises(ValueError, match="idf"):
        TextSpec.from_json({**fitted(TEXTS).to_json(), "idf": [1.0]})


@pytest.mark.parametrize("pattern", ["(", r"\w*", r"\s+"])
def test_patterns_that_cannot_make_tokens_are_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match="token_pattern"):
        check_pattern(pattern)


def test_free_text_is_told_from_categories() -> None:
    reviews = [f"review number {i} says it was fine" for i in range(100)]
    assert looks_like_text(reviews, 100)
    assert not looks_like_text(["New York City", "Los Angeles"], 100)  # few values
    assert not looks_like_text([f"user{i}" for i in range(100)], 100)  # identifiers
    assert not looks_like_text(reviews, 1000)  # repeated: categories after all


# -- through the CLI -------------------------------------------------------------------
POSITIVE = ["great", "excellent", "loved", "wonderful", "superb"]
NEGATIVE = ["awful", "terrible", "hated", "boring", "poor"]
FILLER = "the movie was and it really plot acting film story quite very".split()


def _reviews(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        good = rng.random() < 0.5
        words = rng.choices(FILLER, k=rng.randint(3, 12)) + rng.choices(
            POSITIVE if good else NEGATIVE, k=rng.randint(1, 2))
        rng.shuffle(words)
        rows.append(f"{' '.join(words)},{'positive' if good else 'negative'},"
                    f"{rng.choice(['web', 'shop'])}")
    return rows


@pytest.fixture
def reviews(tmp_path: Path) -> Path:
    path = tmp_path / "reviews.csv"
    path.write_text("review,label,site\n" + "\n".join(_reviews(400)) + "\n")
    return path


def config(data: Path, layers: list[dict[str, Any]], **columns: Any) -> dict[str, Any]:
    return {"data": {"path": str(data), "target": "label",
                     **({"columns": columns} if columns else {})},
            "model": {"layers": layers},
            "optimizer": {"name": "adam", "learning_rate": 0.01},
            "training": {"epochs": 4, "batch_size": 32, "seed": 0},
            "output": {"runs_dir": str(data.parent / "runs"), "name": "t"}}


SEQUENCE = {"review": {"encoding": "sequence"}}
MODELS = {
    "tfidf": ([{"type": "dense", "units": 8}, {"type": "dense"}], {}),
    "embedding bag": ([{"type": "embedding", "dimension": 8},
                       {"type": "global_avg_pool1d"}, {"type": "dense"}], SEQUENCE),
    "text cnn": ([{"type": "embedding", "dimension": 8},
                  {"type": "conv1d", "filters": 8, "kernel_size": 3},
                  {"type": "global_max_pool1d"}, {"type": "dense"}], SEQUENCE),
    "lstm": ([{"type": "embedding", "dimension": 8}, {"type": "lstm", "units": 8},
              {"type": "dense"}], SEQUENCE),
}


def train(tmp_path: Path, cfg: dict[str, Any]) -> Any:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return CliRunner().invoke(app, ["train", str(path)])


@pytest.mark.parametrize("name", MODELS)
def test_text_models_train_predict_and_check(tmp_path: Path, reviews: Path, name: str) -> None:
    layers, columns = MODELS[name]
    result = train(tmp_path, config(reviews, layers, **columns))
    assert result.exit_code == 0, result.output
    assert "free text, encoded as" in result.output
    (model,) = (tmp_path / "runs").glob("*/model.npz")
    new = tmp_path / "new.csv"
    new.write_text("review,site\nloved it superb,web\nhated it awful poor,shop\n"
                   "never seen words,web\n,shop\n")
    predicted = CliRunner().invoke(app, ["predict", str(model), str(new)])
    assert predicted.exit_code == 0, predicted.output
    labels = [row["label"] for row in csv.DictReader(predicted.output.splitlines())]
    assert len(labels) == 4
    if name in ("tfidf", "embedding bag", "text cnn"):  # those learn it in 4 epochs
        assert labels[:2] == ["positive", "negative"]
    checked = CliRunner().invoke(app, ["gradcheck", str(tmp_path / "c.yaml")])
    assert checked.exit_code == 0, checked.output
    evaluated = CliRunner().invoke(app, ["evaluate", str(model), str(reviews)])
    assert evaluated.exit_code == 0 and "accuracy" in evaluated.output, evaluated.output
    import bpcli

    loaded = bpcli.load(model)  # the Python API reads raw text as predict does
    assert list(loaded.predict({"review": ["loved it superb", "hated it awful poor",
                                           "never seen words", ""],
                                "site": ["web", "shop", "web", "shop"]})) == labels


@pytest.mark.parametrize("columns,layers,message", [
    ({"review": {"encoding": "sequence"}}, [{"type": "dense"}], "start model.layers with"),
    ({}, [{"type": "embedding", "dimension": 4}, {"type": "global_max_pool1d"},
          {"type": "dense"}], "encoding: sequence"),
    ({"review": {"encoding": "sequence"}},
     [{"type": "dense", "units": 4}, {"type": "embedding", "dimension": 4}, {"type": "dense"}],
     "must be the first layer"),
    ({"review": {"encoding": "sequence", "ngrams": [1, 2]}}, [{"type": "dense"}],
     "ngrams are for encoding: tfidf"),
    ({"review": {"token_pattern": "x*"}}, [{"type": "dense"}], "matches empty text"),
    ({"site": {"type": "categorical", "encoding": "tfidf"}}, [{"type": "dense"}],
     "is categorical, not text"),
    ({"review": {"max_length": 5}}, [{"type": "dense"}], "max_length is for encoding"),
    ({"review": {"encoding": "sequence"}},
     [{"type": "embedding", "dimension": 4, "vocabulary": 3}, {"type": "global_max_pool1d"},
      {"type": "dense"}], "leave it out"),
    ({"review": {"encoding": "sequence"}},
     [{"type": "embedding", "dimension": 4}, {"type": "dense"}], "global_max_pool1d"),
])
def test_text_config_errors(tmp_path: Path, reviews: Path, columns: dict[str, Any],
                            layers: list[dict[str, Any]], message: str) -> None:
    result = train(tmp_path, config(reviews, layers, **columns))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("bp:")]
    assert len(errors) == 1 and message in errors[0], result.output


def test_two_sequence_columns_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "two.csv"
    rows = _reviews(100)
    path.write_text("review,label,site,again\n" + "\n".join(
        f"{r},{r.split(',')[0]}" for r in rows) + "\n")
    result = train(tmp_path, config(path, MODELS["lstm"][0], review={"encoding": "sequence"},
                                    again={"encoding": "sequence"}))
    assert result.exit_code == 2 and "only one text column can be a sequence" in result.output


# -- explain, inspect and validate on text --------------------------------------------
def trained(tmp_path: Path, reviews: Path, layers: list[dict[str, Any]],
            **columns: Any) -> Path:
    result = train(tmp_path, config(reviews, layers, **columns))
    assert result.exit_code == 0, result.output
    (model,) = (tmp_path / "runs").glob("*/model.npz")
    return model


def test_word_shares_are_weight_times_input_for_a_linear_tfidf_model(
        tmp_path: Path, reviews: Path) -> None:
    from bpcli.explain import token_shares
    from bpcli.inference import read_inputs
    from bpcli.modelfile import load_model

    saved = load_model(trained(tmp_path, reviews, [{"type": "dense"}]))
    pre, network = saved.preprocessor, saved.network
    X = pre.transform_features(read_inputs(pre, reviews, with_targets=False),
                               np.arange(3), np.float64).astype(np.float64)
    (W,) = [layer.params["W"] for layer in network.layers[:1]]
    for k, found in enumerate(token_shares(network, pre, X, [1, 2, 3])):
        unit = int(np.argmax(X[k] @ W))
        assert found.output.endswith(f"{pre.classes[unit]!r}")
        vocabulary = pre.inputs[0].text.vocabulary  # type: ignore[union-attr]
        expected = {vocabulary[j]: X[k, j] * W[j, unit] for j in np.flatnonzero(X[k, :len(
            vocabulary)])}
        assert dict(found.shares) == pytest.approx(expected, abs=1e-6)
        magnitudes = [abs(s) for _, s in found.shares]
        assert magnitudes == sorted(magnitudes, reverse=True)


def test_word_shares_of_an_embedding_bag_are_each_words_part_of_the_mean(
        tmp_path: Path, reviews: Path) -> None:
    from bpcli.explain import token_shares
    from bpcli.inference import read_inputs
    from bpcli.modelfile import load_model

    saved = load_model(trained(tmp_path, reviews, MODELS["embedding bag"][0], **SEQUENCE))
    pre, network = saved.preprocessor, saved.network
    row = tmp_path / "row.csv"
    row.write_text("review,site\nloved the loved zzzz,web\n")
    X = pre.transform_features(read_inputs(pre, row, with_targets=False), None,
                               np.float64).astype(np.float64)
    (found,) = token_shares(network, pre, X, [1])
    E, W = network.layers[0].params["W"], network.layers[2].params["W"]
    unit = int(np.argmax(network.forward(X)[0]))
    ids = X[0, :4].astype(int)
    expected = [E[i] @ W[: E.shape[1], unit] / 4 for i in ids]
    assert sorted(s for _, s in found.shares) == pytest.approx(sorted(expected), abs=1e-6)
    assert sorted(w for w, _ in found.shares) == ["<unknown>", "loved", "loved", "the"]


def test_explain_inspect_and_validate_speak_of_the_words(tmp_path: Path,
                                                        reviews: Path) -> None:
    model = trained(tmp_path, reviews, MODELS["text cnn"][0], **SEQUENCE)
    explained = CliRunner().invoke(app, ["explain", str(model), "--row", "2"])
    assert explained.exit_code == 0, explained.output
    assert "The words that carried the prediction" in explained.output
    assert "row 2, 'review': the logit of the predicted class" in explained.output
    shown = CliRunner().invoke(app, ["inspect", str(model)])
    assert shown.exit_code == 0, shown.output
    assert "text as a sequence of" in shown.output and "most common:" in shown.output
    assert "review[0]" not in shown.output  # word ids are not scaled features
    checked = CliRunner().invoke(app, ["validate", str(tmp_path / "c.yaml")])
    assert checked.exit_code == 0, checked.output
    assert "free text" in checked.output and "looks like an identifier" not in checked.output
    assert "the inputs take" in checked.output


def test_a_text_column_without_tokens_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "numbers.csv"
    path.write_text("code,label\n" + "\n".join(f"{i % 7}.{i % 3},{'ab'[i % 2]}"
                                              for i in range(60)) + "\n")
    result = train(tmp_path, config(path, [{"type": "dense"}], code={"type": "text"}))
    assert result.exit_code == 2, result.output
    assert "column 'code': no token of the training rows matches the token pattern" in \
        result.output
