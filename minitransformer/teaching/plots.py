"""Every figure of the tutorials and the training runs, in one namespace: `plots.plot_mask(...)`.

Each function returns a matplotlib `Figure`; pass `path=` to also save it as a PNG. Inside a Jupyter
kernel every figure is also displayed under the cell that made it, exactly once, whether or not the
cell ends with it; in a script nothing is shown. The same inputs always give the same picture.

The figures live by what they draw: `model_plots` (inside the model), `run_plots` (training runs and
their evaluation); how they are built and saved is `figures`, and the inline display in notebooks,
with `inline` and `show`, is `display`.
"""

from .display import inline, show
from .model_plots import (
    plot_attention_grid,
    plot_embedding_pca,
    plot_layer_curves,
    plot_mask,
    plot_norm_placements,
    plot_positional_encoding,
    plot_prediction_vs_context,
)
from .run_plots import (
    plot_accuracy_bars,
    plot_confusion_matrix,
    plot_head_scores,
    plot_lr_finder,
    plot_lr_per_group,
    plot_seed_spread,
    plot_training_curves,
    read_metrics,
)

__all__ = [
    "inline",
    "plot_accuracy_bars",
    "plot_attention_grid",
    "plot_confusion_matrix",
    "plot_embedding_pca",
    "plot_head_scores",
    "plot_layer_curves",
    "plot_lr_finder",
    "plot_lr_per_group",
    "plot_mask",
    "plot_norm_placements",
    "plot_positional_encoding",
    "plot_prediction_vs_context",
    "plot_seed_spread",
    "plot_training_curves",
    "read_metrics",
    "show",
]
