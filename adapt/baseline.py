"""The classic baseline every results table should show: TF-IDF word n-grams + a linear SVM.

A fair baseline is a tuned one: its configuration is chosen on the same validation split the
Transformers use to pick their best checkpoint, then refit on the full training set; the test set
only scores the refit model. Without a split, the fixed configuration (faster; the earlier default).

scikit-learn is an optional dependency (`pip install -e ".[sklearn]"`); it is imported only here.
"""

from __future__ import annotations

import math
import time

from minitransformer.data.classification import LabeledTexts

# The earlier default, and the configuration of `--no-tune`.
FIXED = {"ngram_range": (1, 2), "lowercase": True, "sublinear_tf": True, "C": 1.0}

# 3 × 2 × 2 × 7 = 84 configurations. C (the SVM's inverse regularisation) goes up to 16: on TREC-6 and
# TREC-50 the best validation accuracy sat at the top of a 0.25-4 grid, and from C = 32 on liblinear
# no longer converges on TREC-50 in its default 1000 iterations.
GRID = {
    "ngram_range": [(1, 1), (1, 2), (1, 3)],  # word unigrams, up to bigrams, up to trigrams
    "lowercase": [True, False],
    "sublinear_tf": [True, False],  # 1 + log(tf) instead of tf
    "C": [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0],
}


def _sklearn():
    try:
        from sklearn import model_selection, pipeline, svm
        from sklearn.feature_extraction import text
    except ImportError:
        raise ValueError("--baseline tfidf needs scikit-learn: pip install scikit-learn") from None
    return model_selection, pipeline, svm, text


def tfidf_classifier(config: dict):
    """An unfitted TF-IDF → LinearSVC pipeline for one configuration (keys as in FIXED)."""
    _, pipeline, svm, text = _sklearn()
    vectorizer = text.TfidfVectorizer(
        ngram_range=tuple(config["ngram_range"]),
        lowercase=config["lowercase"],
        sublinear_tf=config["sublinear_tf"],
    )
    return pipeline.Pipeline([("tfidf", vectorizer), ("svm", svm.LinearSVC(C=config["C"], random_state=0))])


def select_config(train: LabeledTexts, valid: LabeledTexts) -> tuple[dict, float]:
    """(the GRID configuration with the best accuracy on `valid` after fitting on `train`, that accuracy).

    GridSearchCV with a PredefinedSplit: one fold, train on `train`, score on `valid`.
    Ties go to the first configuration in GridSearchCV's order, which starts at the smallest C.
    """
    model_selection, *_ = _sklearn()
    fold = model_selection.PredefinedSplit([-1] * len(train) + [0] * len(valid))  # -1: never scored
    grid = {("tfidf__" if key != "C" else "svm__") + key: values for key, values in GRID.items()}
    search = model_selection.GridSearchCV(
        tfidf_classifier(FIXED), grid, scoring="accuracy", cv=fold, refit=False
    )
    search.fit(train.texts + valid.texts, train.labels + valid.labels)
    config = {key.split("__")[1]: value for key, value in search.best_params_.items()}
    return config, float(search.best_score_)


def describe(config: dict) -> str:
    """'word 1-2-grams, cased, sublinear tf, C=1' for the printed summary."""
    low, high = config["ngram_range"]
    return (
        f"word {low}-{high}-grams, {'lowercased' if config['lowercase'] else 'cased'}, "
        f"{'sublinear' if config['sublinear_tf'] else 'raw'} tf, C={config['C']:g}"
    )


def tfidf_baseline(
    train: LabeledTexts, test: LabeledTexts, split: tuple[LabeledTexts, LabeledTexts] | None = None
) -> tuple[list[int], dict]:
    """(predicted label ids for `test`, what was fitted and how it was chosen).

    `split` = (fit, valid), e.g. the split `adapt` validates its Transformers on: the configuration is
    the one that scores best on valid after fitting on fit. None: the FIXED configuration. Either way
    the classifier is then fitted on all of `train`, and `test` is read only to predict.
    """
    started = time.time()
    record: dict = {"config": dict(FIXED), "selected_on": "fixed (--no-tune)"}
    if split is not None:
        fit, valid = split
        record["config"], record["valid_accuracy"] = select_config(fit, valid)
        record["selected_on"] = (
            f"validation split ({len(valid)} texts, fitted on {len(fit)}), "
            f"{math.prod(map(len, GRID.values()))} configurations, then refit on all {len(train)}"
        )
    model = tfidf_classifier(record["config"]).fit(train.texts, train.labels)
    predictions = [int(p) for p in model.predict(test.texts)]  # the first use of the test set
    low, high = record["config"]["ngram_range"]
    record["name"] = f"tfidf-{low}-{high}gram-linearsvc"
    record["config"]["ngram_range"] = [low, high]  # JSON has no tuples
    record["wall_time_s"] = time.time() - started
    return predictions, record
