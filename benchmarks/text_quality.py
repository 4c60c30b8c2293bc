"""Text classification quality: bp's SMS spam configs beside scikit-learn's logistic
regression on TfidfVectorizer features, on the same splits, 3 seeds.

    python benchmarks/text_quality.py            # seeds 0, 1, 2
    python benchmarks/text_quality.py --seeds 0  # one seed

For each seed, ``data.split_seed`` and ``training.seed`` are set to it (``--set``), so the
train/validation/test rows change with the seed. bp trains each example config
(``configs/sms-spam-*.yaml``) through the CLI and is scored on its test split
(``test.json``). The peer is ``TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2),
max_features=5000)`` and ``LogisticRegression(max_iter=1000)``, fitted on the same
training rows (bp's split, reproduced with bp's own reader and ``split_rows``) and scored
on the same test rows; and the same with ``LogisticRegressionCV`` choosing C (0.1 to
1000) by 5-fold cross-validation on the training rows, the peer at its best. Reported:
test accuracy and the spam class's F1 (ham is 88% of the rows, so accuracy alone
flatters), mean ± standard deviation over the seeds. scikit-learn is needed
here only; it is not a dependency of bp.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ["sms-spam-tfidf", "sms-spam-cnn", "sms-spam-gru"]
DATA = ROOT / "datasets" / "sms_spam.csv"
VALIDATION, TEST = 0.15, 0.2  # as the configs set them


def bp_scores(config: str, seed: int, runs: Path) -> tuple[float, float]:
    subprocess.run([sys.executable, "-m", "bpcli", "train", str(ROOT / "configs" /
                    f"{config}.yaml"), "--set", f"data.split_seed={seed}", "--set",
                    f"training.seed={seed}", "--set", f"output.runs_dir={runs}", "--set",
                    f"output.name={config}-{seed}"], check=True, capture_output=True)
    (test,) = runs.glob(f"{config}-{seed}-*/test.json")
    report = json.loads(test.read_text())
    spam = next(c for c in report["classes"] if c["label"] == "spam")
    return report["accuracy"], spam["f1"]


def peer_scores(seed: int, tuned: bool) -> tuple[float, float]:
    import warnings

    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.metrics import accuracy_score, f1_score

    from bpcli.csvfile import read_csv
    from bpcli.splits import split_rows

    warnings.filterwarnings("ignore", category=FutureWarning)  # scikit-learn's API notices

    table = read_csv(DATA, ["text", "label"], kinds={"text": "categorical",
                                                     "label": "categorical"})
    labels = table.columns["label"].values
    train, _, test = split_rows(len(labels), [VALIDATION, TEST], seed, labels)
    texts = np.array(table.columns["text"].categories, dtype=object)[
        table.columns["text"].values]
    names = np.array(table.columns["label"].categories)[labels]
    vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), max_features=5000)
    model = (LogisticRegressionCV(Cs=[0.1, 1, 10, 100, 1000], max_iter=1000) if tuned
             else LogisticRegression(max_iter=1000))
    model.fit(vectorizer.fit_transform(texts[train]), names[train])
    predicted = model.predict(vectorizer.transform(texts[test]))
    return (float(accuracy_score(names[test], predicted)),
            float(f1_score(names[test], predicted, pos_label="spam")))


def summary(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {spread:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    rows: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            rows.setdefault("scikit-learn tfidf + LogisticRegression", []).append(
                peer_scores(seed, tuned=False))
            rows.setdefault("scikit-learn tfidf + LogisticRegressionCV (C by 5-fold CV)",
                            []).append(peer_scores(seed, tuned=True))
            for config in CONFIGS:
                rows.setdefault(f"bp {config}", []).append(bp_scores(config, seed,
                                                                      Path(tmp)))
    print(f"| model | test accuracy | spam F1 | seeds {', '.join(map(str, args.seeds))} |")
    print("|---|---|---|---|")
    for name, scores in rows.items():
        print(f"| {name} | {summary([a for a, _ in scores])} | "
              f"{summary([f for _, f in scores])} | |")


if __name__ == "__main__":
    main()
