"""tivit: time series classification with frozen, pretrained vision transformers.

A series is rendered as an image (:mod:`renderers`), read by a frozen timm encoder that keeps the
pooled hidden state of every block (:mod:`tivit.encoders`, :mod:`tivit.embed`), and classified by a
small head on one layer, several layers or a learned mix (:mod:`tivit.heads`). The sktime
estimators (:mod:`tivit.sktime`), the benchmark (:mod:`tivit.bench`) and the layer search
(:mod:`tivit.search`) are thin layers over those functions.

Importing :mod:`tivit` is cheap: torch, timm, lightning and optuna load when first used.

Where things live:

* ``tivit.data``      UCR/UEA loaders (``load_dataset``, ``list_datasets``) and the NaN/length policies
* ``tivit.encoders``  the encoder table, ``load_encoder`` -> ``FrozenEncoder.forward_layers``
* ``tivit.embed``     ``extract``: render -> encode, every layer in one pass -> ``Embeddings``
* ``tivit.cache``     the checksummed, resumable on-disk embedding cache
* ``tivit.heads``     Lightning heads (``HeadClassifier``), ``choose_layer``, ``fit_linear_per_layer``
* ``tivit.search``    Optuna search over layer / pool / renderer / head on TRAIN-only CV
* ``tivit.sktime``    ``TiViTClassifier`` and ``TiViTTransformer``
* ``tivit.bench``, ``tivit.report``, ``tivit.baselines``  the benchmark behind ``tivit bench``
* ``tivit.presets``   the ``paper`` and ``default`` recipes

Example (a tiny random-weights encoder, offline; results are labelled random weights)::

    from tivit.data import load_dataset
    from tivit.sktime import TiViTClassifier

    ds = load_dataset("GunPoint")
    clf = TiViTClassifier(encoder="vit_small_patch16_224", weights="random",
                          encoder_args={"img_size": 64, "depth": 4}, layer="auto")
    clf.fit(ds.X_train, ds.y_train).score(ds.X_test, ds.y_test)

With pretrained weights: ``TiViTClassifier(encoder="clip-h14", layer=14)`` (the published setting).
"""

__version__ = "0.2.1"

__all__ = ["__version__"]
