"""Matthews correlation coefficient against values computed by hand."""

import math

import pytest
import torch
from ignite.engine import Engine
from ignite.metrics import ConfusionMatrix, MetricsLambda

from minitransformer.training.metrics import matthews_corrcoef


def test_binary_mcc_by_hand():
    # 10 examples: TP=3, FN=1 (true class 1 row), FP=2, TN=4 (true class 0 row); rows true, columns predicted
    confusion = torch.tensor([[4, 2], [1, 3]])
    # (TP·TN − FP·FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (12 − 2) / sqrt(5·4·6·5) = 10 / sqrt(600)
    assert matthews_corrcoef(confusion) == pytest.approx(10 / math.sqrt(600))
    assert matthews_corrcoef(confusion.T) == pytest.approx(10 / math.sqrt(600))  # orientation-free


def test_three_class_mcc_by_hand():
    confusion = torch.tensor([[2, 1, 0], [0, 2, 1], [1, 0, 3]])
    # s=10, c=7, true counts t=(3,3,4), predicted p=(3,3,4): Σp·t = 9+9+16 = 34, Σp² = Σt² = 34
    # (7·10 − 34) / sqrt((100 − 34)(100 − 34)) = 36 / 66
    assert matthews_corrcoef(confusion) == pytest.approx(36 / 66)


def test_perfect_inverted_and_degenerate():
    assert matthews_corrcoef(torch.tensor([[5, 0], [0, 3]])) == pytest.approx(1.0)
    assert matthews_corrcoef(torch.tensor([[0, 5], [3, 0]])) == pytest.approx(-1.0)
    assert matthews_corrcoef(torch.tensor([[5, 0], [3, 0]])) == 0.0  # every prediction in one class


def test_as_an_ignite_metric_beside_the_confusion_matrix():
    logits = torch.tensor([[2.0, 0.0], [2.0, 0.0], [0.0, 2.0], [0.0, 2.0], [2.0, 0.0]])
    labels = torch.tensor([0, 0, 1, 0, 1])  # TN=2, FP=1, TP=1, FN=1
    evaluator = Engine(lambda engine, batch: batch)
    confusion = ConfusionMatrix(2)
    confusion.attach(evaluator, "confusion")
    MetricsLambda(matthews_corrcoef, confusion).attach(evaluator, "mcc")
    evaluator.run([(logits, labels)])
    assert evaluator.state.metrics["confusion"].sum() == 5  # counted once, not twice
    assert evaluator.state.metrics["mcc"] == pytest.approx((1 * 2 - 1 * 1) / math.sqrt(2 * 2 * 3 * 3))
