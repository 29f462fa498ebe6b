"""tivit: time series classification with frozen, pretrained vision transformers.

A series is rendered as an image (:mod:`renderers`), read by a frozen timm encoder that keeps the
pooled hidden state of every block (:mod:`tivit.encoders`, :mod:`tivit.embed`), and classified by a
small head on one layer, several layers or a learned mix (:mod:`tivit.heads`). The sktime
estimators (:mod:`tivit.sktime`), the benchmark (:mod:`tivit.bench`) and the layer search
(:mod:`tivit.search`) are thin layers over those functions.

Importing :mod:`tivit` is cheap: torch, timm, lightning and optuna load when first used.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
