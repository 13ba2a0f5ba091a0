"""Matthews correlation coefficient (MCC) from a confusion matrix (wrap it in Ignite's `MetricsLambda`).

MCC is the correlation between predicted and true labels: 1 perfect, 0 no better than chance, -1
always wrong. Unlike accuracy it stays informative on unbalanced classes, which is why acceptability
tasks such as CoLA are judged by it. For K classes (Gorodkin's generalisation, the one scikit-learn
computes), with c correct predictions out of s, t_k true and p_k predicted examples of class k:

    MCC = (c·s − Σ_k p_k·t_k) / sqrt((s² − Σ_k p_k²) · (s² − Σ_k t_k²))

and 0 when a factor under the root is 0 (every prediction, or every label, in one class).
"""

from __future__ import annotations

import math

import torch


def matthews_corrcoef(confusion: torch.Tensor) -> float:
    """MCC of a K×K confusion matrix of counts (either orientation: the formula is symmetric)."""
    confusion = confusion.double()
    s = confusion.sum()
    c = confusion.trace()
    t, p = confusion.sum(dim=1), confusion.sum(dim=0)  # (K,) true and predicted counts per class
    numerator = c * s - (p * t).sum()
    denominator = (s * s - (p * p).sum()) * (s * s - (t * t).sum())
    return float(numerator / math.sqrt(denominator)) if denominator > 0 else 0.0
