"""The classic baseline every results table should show: TF-IDF word n-grams + a linear classifier.

scikit-learn is an optional dependency (`pip install -e ".[sklearn]"`); it is imported only here.
"""

from __future__ import annotations

from minitransformer.data.classification import LabeledTexts


def tfidf_baseline(train: LabeledTexts, test: LabeledTexts, ngrams: tuple[int, int] = (1, 2)) -> list[int]:
    """Fit TF-IDF (word 1-2-grams, sublinear tf) + LinearSVC on `train`; return predicted label ids for `test`."""
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import make_pipeline
        from sklearn.svm import LinearSVC
    except ImportError:
        raise ValueError("--baseline tfidf needs scikit-learn: pip install scikit-learn") from None
    model = make_pipeline(TfidfVectorizer(ngram_range=ngrams, sublinear_tf=True), LinearSVC(random_state=0))
    model.fit(train.texts, train.labels)
    return [int(p) for p in model.predict(test.texts)]
