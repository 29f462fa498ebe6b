"""tivit.sktime on real data with a tiny random-weights encoder: the estimator equals the hand-made
composition, the paper preset equals the published protocol, odd data fits, bad input fails clearly,
and a fitted classifier pickles without its encoder's weights."""

import pickle

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import renderers
from tivit.data import interpolate_missing, load_dataset, pad_to_length
from tivit.embed import extract
from tivit.encoders import EncoderError, load_encoder
from tivit.heads import HeadClassifier
from tivit.presets import paper_layer
from tivit.sktime import TiViTClassifier, TiViTTransformer

NAME = "vit_tiny_patch16_224"
TIMM = {"img_size": 32, "patch_size": 8, "depth": 2}
TINY = dict(encoder=NAME, weights="random", encoder_args=TIMM, cache_dir=False, random_state=0)


def _encoder(seed=0):
    return load_encoder(NAME, weights="random", seed=seed, device="cpu", **TIMM)


def _embed(X, layers, preset="default", normalize=False, seed=0):
    cfg = renderers.make_config("tivit", preset)
    return extract(X, cfg, _encoder(seed), layers=layers, normalize=normalize, cache_dir=False, progress=False)


def _subset(ds, n_train=None, n_test=None):
    """A few series per class from each split (keeps every class in train)."""
    def take(y, n):
        if n is None or n >= len(y):
            return np.arange(len(y))
        idx, _ = train_test_split(np.arange(len(y)), train_size=n, stratify=y, random_state=0)
        return np.sort(idx)

    tr, te = take(ds.y_train, n_train), take(ds.y_test, n_test)
    return ds.X_train[tr], ds.y_train[tr], ds.X_test[te], ds.y_test[te]


@pytest.mark.parametrize("name,n_test", [("GunPoint", None), ("ItalyPowerDemand", 200), ("ArrowHead", None)])
def test_classifier_equals_render_extract_head_by_hand_and_sklearn(name, n_test):
    X_train, y_train, X_test, y_test = _subset(load_dataset(name), None, n_test)
    clf = TiViTClassifier(**TINY, layer=2).fit(X_train, y_train)
    assert clf.random_weights_ and clf.layers_ == (2,)

    train, test = _embed(X_train, 2).layer(2), _embed(X_test, 2).layer(2)
    head = HeadClassifier("linear").fit(train, y_train)
    np.testing.assert_array_equal(clf.predict(X_test), head.predict(test))
    assert clf.score(X_test, y_test) == pytest.approx(head.score(test, y_test))
    np.testing.assert_allclose(clf.predict_proba(X_test), head.predict_proba(test), atol=1e-6)

    sk = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=500)).fit(train, y_train)
    assert abs(head.score(test, y_test) - sk.score(test, y_test)) <= 0.01 + 1e-9


def test_paper_preset_reproduces_the_published_protocol():
    X_train, y_train, X_test, y_test = _subset(load_dataset("GunPoint"), None, 60)
    clf = TiViTClassifier(**{**TINY, "random_state": 3}, preset="paper").fit(X_train, y_train)

    depth = _encoder().depth
    layer = paper_layer(depth)
    assert clf.layers_ == (layer,) and paper_layer(32) == 14
    # zero padding, paper renderer, mean over all tokens, L2-normalised embeddings
    prep = lambda X: pad_to_length(interpolate_missing(X))  # noqa: E731
    # random weights are seeded by random_state
    train = _embed(prep(X_train), layer, "paper", normalize=True, seed=3).layer(layer)
    test = _embed(prep(X_test), layer, "paper", normalize=True, seed=3).layer(layer)
    np.testing.assert_allclose(np.linalg.norm(train, axis=1), 1.0, atol=1e-5)
    # a random, UNSTRATIFIED 80 % of train, never refitted: the published get_split (roschmsi/TiViT
    # tivit/utils.py) after set_random_seed, as for the first dataset of a published run
    state = np.random.get_state()
    np.random.seed(3)
    keys = list(range(len(y_train)))
    np.random.shuffle(keys)
    np.random.set_state(state)
    fit_idx = keys[int(len(keys) * 0.2):]
    np.testing.assert_array_equal(clf.fit_index_, np.sort(fit_idx))
    ref = make_pipeline(StandardScaler(), LogisticRegression(C=1, solver="lbfgs", max_iter=500))
    ref.fit(train[fit_idx], y_train[fit_idx])
    agree = (clf.predict(X_test) == ref.predict(test)).mean()
    assert agree >= 0.98
    assert abs(clf.score(X_test, y_test) - ref.score(test, y_test)) <= 0.01 + 1e-9


@pytest.mark.parametrize("name,n_train,n_test", [("JapaneseVowels", 27, 18), ("PLAID", 33, 11), ("BasicMotions", None, 12)])
def test_unequal_length_and_multivariate_fit_and_predict(name, n_train, n_test):
    ds = load_dataset(name)
    X_train, y_train, X_test, _ = _subset(ds, n_train, n_test)
    clf = TiViTClassifier(**TINY, layer=[1, 2]).fit(X_train, y_train)
    proba = clf.predict_proba(X_test)
    assert proba.shape == (len(X_test), len(np.unique(y_train)))
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-6)
    assert set(clf.predict(X_test)) <= set(y_train)
    assert clf.head_.n_features_in_ == 2 * ds.n_channels * _encoder().width


def test_unequal_length_in_sktime_containers_equals_the_nan_padded_panel():
    import pandas as pd

    X_train, y_train, X_test, _ = _subset(load_dataset("JapaneseVowels"), 18, 9)
    lengths = (~np.isnan(X_test).all(1)).sum(1)
    df_list = [pd.DataFrame(x[:, :n].T) for x, n in zip(X_test, lengths)]
    clf = TiViTClassifier(**TINY, layer=2).fit(X_train, y_train)
    np.testing.assert_allclose(clf.predict_proba(df_list), clf.predict_proba(X_test), atol=1e-6)


@pytest.mark.parametrize("preset,policy", [("default", "zeros"), ("default", "resample"), ("paper", None)])
def test_training_length_is_the_longest_training_series_not_the_panel_width(preset, policy):
    """load_dataset widens train to the test split's width: that width set the training length, so
    the test split changed the fitted model, and a DataFrame of the same series gave other numbers."""
    X_train, y_train, X_test, _ = _subset(load_dataset("GunPoint"), 12, 10)
    X_train = X_train[:, :, :100].copy()
    X_train[::3, :, 80:] = np.nan  # unequal lengths; the longest training series has 100 values
    wide = np.concatenate([X_train, np.full(X_train.shape[:2] + (50,), np.nan, np.float32)], axis=2)
    args = dict(**TINY, preset=preset, layer=2, unequal_length=policy)
    narrow_clf = TiViTClassifier(**args).fit(X_train, y_train)
    wide_clf = TiViTClassifier(**args).fit(wide, y_train)
    assert narrow_clf.n_timepoints_ == wide_clf.n_timepoints_ == 100
    np.testing.assert_array_equal(wide_clf.predict_proba(X_test), narrow_clf.predict_proba(X_test))
    transformer = TiViTTransformer(**{k: v for k, v in args.items() if k != "layer"}, layers=[2])
    assert transformer.fit(wide).n_timepoints_ == 100


def test_layer_auto_mix_and_fusion():
    from sktime.transformations.rocket import MiniRocket

    X_train, y_train, X_test, _ = _subset(load_dataset("GunPoint"), 30, 20)
    auto = TiViTClassifier(**TINY, layer="auto", search_trials=8).fit(X_train, y_train)
    assert auto.layer_ in (1, 2) and set(auto.layer_scores_) <= {1, 2} and auto.layers_ == (auto.layer_,)
    assert auto.search_.n_trials == 8 and auto.head_.C == auto.C_ == auto.search_.C
    from tivit.search import evaluate_search, search_layer  # train only: the same search by hand

    train, test = _embed(X_train, [1, 2]), _embed(X_test, [1, 2])
    by_hand = search_layer(train, y_train, n_trials=8, seed=0)
    assert (by_hand.layer, by_hand.C, by_hand.layer_scores) == (auto.layer_, auto.C_, auto.layer_scores_)
    head = by_hand.fit_head(train, y_train)
    np.testing.assert_array_equal(auto.predict(X_test), by_hand.predict(head, test))
    assert evaluate_search(train, y_train, test, auto.predict(X_test), n_trials=8, seed=0)[1] == 1.0
    with pytest.raises(ValueError, match="search_trials must be a positive integer"):
        TiViTClassifier(**TINY, layer="auto", search_trials=0).fit(X_train, y_train)

    mix = TiViTClassifier(**TINY, layer="mix").fit(X_train, y_train)
    w = mix.head_.layer_weights_
    assert w.shape == (2,) and abs(w.sum() - 1) < 1e-5
    assert mix.predict(X_test).shape == (20,)

    fused = TiViTClassifier(**TINY, layer=2, fuse_with=MiniRocket(num_kernels=84, random_state=0))
    fused.fit(X_train, y_train)
    features = fused._features(X_train)
    width = _encoder().width
    assert features.shape[1] > width  # tivit block + MiniRocket block
    for block in (features[:, :width], features[:, width:]):  # each block standardised to equal total variance
        assert block.var(axis=0).sum() == pytest.approx(1.0, rel=1e-3)
    assert fused.predict(X_test).shape == (20,)


def test_pickle_and_joblib_store_the_encoder_identity_not_its_weights(tmp_path):
    X_train, y_train, X_test, _ = _subset(load_dataset("GunPoint"), 20, 10)
    clf = TiViTClassifier(**TINY, layer=2).fit(X_train, y_train)
    expected = clf.predict_proba(X_test)
    blob = pickle.dumps(clf)
    weight_bytes = sum(p.numel() * 4 for p in _encoder().model.parameters())
    assert len(blob) < weight_bytes / 10
    again = pickle.loads(blob)
    assert again._encoder_slot.encoder is None and again.encoder_identity_["random_weights"]
    np.testing.assert_array_equal(again.predict_proba(X_test), expected)
    assert again._encoder_slot.encoder is not None  # rebuilt lazily on first use
    joblib.dump(clf, tmp_path / "clf.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "clf.joblib").predict_proba(X_test), expected)


def test_precision_reaches_the_encoder_and_survives_pickling():
    X_train, y_train, X_test, _ = _subset(load_dataset("GunPoint"), 20, 10)
    fp32 = TiViTClassifier(**TINY, layer=2).fit(X_train, y_train)
    bf16 = TiViTClassifier(**TINY, layer=2, precision="bf16").fit(X_train, y_train)
    assert bf16._encoder_slot.encoder.precision == "bf16" and fp32._encoder_slot.encoder.precision == "fp32"
    expected = bf16.predict_proba(X_test)
    assert not np.array_equal(expected, fp32.predict_proba(X_test))  # the encoder ran in bf16
    again = pickle.loads(pickle.dumps(bf16))
    np.testing.assert_array_equal(again.predict_proba(X_test), expected)
    assert again._encoder_slot.encoder.precision == "bf16"
    with pytest.raises(EncoderError, match="precision must be one of"):
        TiViTTransformer(**TINY, precision="half").fit(X_train)


def test_missing_values_interpolated_or_refused():
    X_train, y_train, X_test, _ = _subset(load_dataset("GunPoint"), 20, 10)
    holes = X_test.copy()
    holes[:, 0, 40:45] = np.nan
    clf = TiViTClassifier(**TINY, layer=2).fit(X_train, y_train)
    np.testing.assert_allclose(clf.predict_proba(holes), clf.predict_proba(interpolate_missing(holes)), atol=1e-6)
    strict = TiViTClassifier(**TINY, layer=2, missing="error").fit(X_train, y_train)
    with pytest.raises(ValueError, match="missing='error'"):
        strict.predict(holes)
    with pytest.raises(ValueError, match="missing='error'"):
        TiViTClassifier(**TINY, layer=2, missing="error").fit(holes, y_train[:10])


def test_a_nan_in_the_last_row_of_a_dataframe_series_is_a_missing_value():
    """In pd-multiindex a series has as many time points as rows: a NaN in its last row was taken as
    padding (a shorter series) and got past missing='error'."""
    import pandas as pd

    X_train, y_train, X_test, _ = _subset(load_dataset("GunPoint"), 12, 4)
    X_test = X_test.copy()
    X_test[0, 0, -1] = np.nan
    frame = pd.DataFrame({"c0": X_test[:, 0].ravel()},
                         index=pd.MultiIndex.from_product([range(len(X_test)), range(X_test.shape[2])]))
    strict = TiViTClassifier(**TINY, layer=2, missing="error").fit(X_train, y_train)
    with pytest.raises(ValueError, match=r"missing values \(a series' last 1 rows hold no value\) but missing='error'"):
        strict.predict(frame)
    filled = X_test.copy()
    filled[0, 0, -1] = filled[0, 0, -2]  # the nearest value, at the end of a series that has that row
    clf = TiViTClassifier(**TINY, layer=2).fit(X_train, y_train)
    np.testing.assert_array_equal(clf.predict_proba(frame), clf.predict_proba(filled))


def test_a_shorter_channel_reads_alike_from_numpy_and_dataframes():
    """sktime's nested format holds channels of different lengths; as a DataFrame the shorter one ends
    in NaN while the other goes on: a shorter channel, padding as in numpy, not missing values."""
    import pandas as pd

    X_train, y_train, X_test, _ = _subset(load_dataset("BasicMotions"), 8, 4)
    X_test = X_test[:, :2].copy()
    X_test[:, 1, 60:] = np.nan  # channel 1 ends at 60 of 100
    n, c, t = X_test.shape
    frame = pd.DataFrame(X_test.transpose(0, 2, 1).reshape(n * t, c), columns=["a", "b"],
                         index=pd.MultiIndex.from_product([range(n), range(t)]))
    clf = TiViTClassifier(**TINY, layer=2, missing="error").fit(X_train[:, :2], y_train)
    np.testing.assert_array_equal(clf.predict_proba(frame), clf.predict_proba(X_test))


def test_bad_input_gets_sktime_style_errors():
    X_train, y_train, X_test, y_test = _subset(load_dataset("GunPoint"), 12, 6)
    with pytest.raises(EncoderError, match="unknown encoder 'vit_nonexistent'"):
        TiViTClassifier(**{**TINY, "encoder": "vit_nonexistent"}, layer=1).fit(X_train, y_train)
    with pytest.raises(EncoderError, match=r"valid layers are 0\.\.2"):
        TiViTClassifier(**TINY, layer=5).fit(X_train, y_train)
    with pytest.raises(ValueError, match="layer='deep' is not understood"):
        TiViTClassifier(**TINY, layer="deep").fit(X_train, y_train)
    with pytest.raises(ValueError, match="unknown preset"):
        TiViTClassifier(**TINY, preset="best").fit(X_train, y_train)
    with pytest.raises(ValueError, match="head='svm'"):
        TiViTClassifier(**TINY, layer=1, head="svm").fit(X_train, y_train)
    with pytest.raises((TypeError, ValueError)):  # wrong dims: sktime's own input check
        TiViTClassifier(**TINY, layer=1).fit(X_train[:, :, :, None], y_train)
    with pytest.raises(ValueError):  # one label per series
        TiViTClassifier(**TINY, layer=1).fit(X_train, y_train[:-1])

    clf = TiViTClassifier(**TINY, layer=1).fit(X_train, y_train)
    with pytest.raises(ValueError, match="only in the evaluation data"):
        clf.score(X_test, np.where(y_test == y_test[0], "unseen", y_test))
    # a single class: sktime's documented behaviour is to warn and predict that class, without fitting
    with pytest.warns(UserWarning, match="only single label seen"):
        single = TiViTClassifier(**TINY, layer=1).fit(X_train, np.full(len(y_train), "a"))
    assert set(single.predict(X_test)) == {"a"}

    two = np.concatenate([X_test, X_test], axis=1)  # features are per channel: a second one is an error
    with pytest.raises(ValueError, match=r"X has 2 channel\(s\); the estimator was fitted on 1"):
        clf.predict(two)
    transformer = TiViTTransformer(**{k: v for k, v in TINY.items() if k != "layer"}, layers=1).fit(X_train)
    with pytest.raises(ValueError, match=r"X has 2 channel\(s\); the estimator was fitted on 1"):
        transformer.transform(two)
    for params, match in [
        (dict(layer="mix", head="mlp"), "head='mlp' cannot apply"),
        (dict(layer="mix", head_params={"hidden": (8,)}), r"not \['hidden'\]"),
        (dict(layer=1, head_params={"kind": "mlp"}), r"head_params\['kind'\] is set by the estimator's head="),
        (dict(layer=1, head_params={"random_state": 3}), r"head_params\['random_state'\]"),
        (dict(layer=1, random_state=np.random.RandomState(0)), "random_state must be None or an integer"),
        (dict(layer=1, random_state=-1), "random_state must be None or an integer"),
    ]:
        with pytest.raises(ValueError, match=match):
            TiViTClassifier(**{**TINY, **params}).fit(X_train, y_train)
    lone = np.array(["a"] * (len(y_train) - 1) + ["b"])  # two classes, one a single series: no CV fold fits both
    with pytest.raises(ValueError, match="single training sample.*layer=<int>"):
        TiViTClassifier(**TINY, layer="auto", search_trials=2).fit(X_train, lone)


def test_transformer_features_and_pipeline():
    from sktime.classification.compose import SklearnClassifierPipeline

    X_train, y_train, X_test, y_test = _subset(load_dataset("GunPoint"), 20, 10)
    t = TiViTTransformer(**TINY, layers=[1, 2])
    out = t.fit_transform(X_test)
    values = _embed(X_test, [1, 2]).values
    assert out.shape == (10, 2 * values.shape[2]) and out.columns[0] == "layer1_0"
    np.testing.assert_allclose(out.to_numpy(), values.reshape(10, -1), atol=1e-6)

    pipe = SklearnClassifierPipeline(LogisticRegression(max_iter=500), [TiViTTransformer(**TINY, layers=2)])
    pipe.fit(X_train, y_train)
    assert pipe.predict(X_test).shape == (10,)
    paper = TiViTTransformer(**TINY, preset="paper").fit(X_train)
    assert paper.layers_ == (paper_layer(2),)
    np.testing.assert_allclose(np.linalg.norm(paper.transform(X_test).to_numpy(), axis=1), 1.0, atol=1e-5)


def test_unequal_length_in_sktimes_own_nested_format_fits():
    """sktime's loaders return nested_univ; it was converted to numpy3D, which cannot hold
    unequal lengths ("all input arrays must have the same shape")."""
    from sklearn.linear_model import RidgeClassifierCV
    from sktime.datasets import load_japanese_vowels

    X, y = load_japanese_vowels(split="train", return_X_y=True)
    X, y = X.iloc[::15], y[::15]
    clf = TiViTClassifier(**TINY, layer=2).fit(X, y)
    assert clf.predict_proba(X).shape == (len(X), len(np.unique(y)))
    table = TiViTTransformer(**TINY, layers=2).fit_transform(X)
    assert table.shape[0] == len(X) and np.isfinite(table.to_numpy()).all()
    assert (TiViTTransformer(**TINY, layers=2) * RidgeClassifierCV()).fit(X, y).predict(X).shape == (len(X),)


def test_zero_padding_makes_no_series_depend_on_its_batch():
    """With unequal_length='zeros' one long series in a batch re-padded every other one to its length."""
    import pandas as pd
    from sktime.datasets import load_unit_test

    X, y = load_unit_test(split="train", return_X_y=True, return_type="numpy3D")  # length 24
    Xt, _ = load_unit_test(split="test", return_X_y=True, return_type="numpy3D")
    clf = TiViTClassifier(**TINY, layer=2, unequal_length="zeros").fit(X, y)
    three = [pd.DataFrame(s.T) for s in Xt[:3]]
    longer = pd.DataFrame(np.tile(Xt[3].T, (2, 1)))  # length 48, longer than any training series
    shorter = pd.DataFrame(Xt[3].T[:10])
    batched = clf.predict_proba(three + [longer, shorter])
    np.testing.assert_allclose(batched[:3], clf.predict_proba(three), atol=1e-6)
    np.testing.assert_allclose(batched[3:4], clf.predict_proba([longer]), atol=1e-6)
    # a shorter series is zero-padded to the training length, as the published recipe pads
    padded = np.zeros((1, 1, 24), np.float32)
    padded[0, 0, :10] = Xt[3, 0, :10]
    np.testing.assert_allclose(batched[4:], clf.predict_proba(padded), atol=1e-6)
    t = TiViTTransformer(**TINY, layers=2, unequal_length="zeros").fit(X)
    np.testing.assert_allclose(t.transform(three + [longer]).to_numpy()[:3], t.transform(three).to_numpy(), atol=1e-6)


def test_layer_auto_keeps_a_C_the_user_gave_and_refuses_mlp_settings_it_would_replace():
    X_train, y_train, _, _ = _subset(load_dataset("GunPoint"), 20, 6)
    for C in (0.001, 1000.0, np.float32(0.5), np.int64(2)):  # numpy scalars: a grid from np.array([...])
        clf = TiViTClassifier(**TINY, head_params={"C": C}, search_trials=3).fit(X_train, y_train)
        assert clf.mode_ == "auto" and clf.C_ == C and clf.head_.C == C and clf.search_.C == C
    with pytest.raises(ValueError, match=r"head_params \['hidden'\] would be replaced"):
        TiViTClassifier(**TINY, head="mlp", head_params={"hidden": (7,)}, search_trials=2).fit(X_train, y_train)
    with pytest.raises(ValueError, match=r"head_params\['C'\] must be a positive number"):
        TiViTClassifier(**TINY, head_params={"C": -1.0}, search_trials=2).fit(X_train, y_train)


def test_transformer_rows_keep_the_instance_ids():
    import pandas as pd
    from sktime.datasets import load_unit_test

    X, _ = load_unit_test(split="train", return_X_y=True, return_type="pd-multiindex")
    ids = X.index.get_level_values(0).unique()[5:10]
    part = X.loc[ids]
    out = TiViTTransformer(**TINY, layers=2).fit_transform(part)
    assert list(out.index) == list(ids)
    union = (TiViTTransformer(**TINY, layers=2) + TiViTTransformer(**TINY, layers=1)).fit_transform(part)
    assert union.shape[0] == 5 and not union.isna().any().any()  # rows aligned, not doubled with NaN
    assert isinstance(TiViTTransformer(**TINY, layers=2).fit_transform(part.to_numpy().reshape(5, 1, -1)).index,
                      pd.RangeIndex)


def test_fusion_and_float32_range_errors_name_their_cause():
    from sktime.transformations.base import BaseTransformer

    class Gappy(BaseTransformer):
        _tags = {"scitype:transform-output": "Primitives", "X_inner_mtype": "numpy3D", "fit_is_empty": True}

        def _transform(self, X, y=None):
            out = X.mean(axis=2)
            return np.concatenate([out, np.full_like(out, np.nan)], axis=1)

    class SeriesToSeries(BaseTransformer):
        _tags = {"scitype:transform-output": "Series", "X_inner_mtype": "numpy3D", "fit_is_empty": True}

        def _transform(self, X, y=None):
            return X * 2

    X_train, y_train, _, _ = _subset(load_dataset("GunPoint"), 12, 6)
    with pytest.raises(ValueError, match=r"fuse_with=Gappy returned NaN or inf in 1 of its 2 feature columns"):
        TiViTClassifier(**TINY, layer=1, fuse_with=Gappy()).fit(X_train, y_train)
    with pytest.raises(ValueError, match=r"fuse_with=SeriesToSeries must return one row of features per series"):
        TiViTClassifier(**TINY, layer=1, fuse_with=SeriesToSeries()).fit(X_train, y_train)
    huge = X_train.astype(np.float64)
    huge[0, 0, 3] = 1e39
    with pytest.raises(ValueError, match="beyond float32's range"):
        TiViTClassifier(**TINY, layer=1).fit(huge, y_train)


def test_estimators_pickled_before_precision_existed_still_load_and_predict():
    """A pickle made before the precision parameter lacks the attribute: predict, repr and clone
    failed with AttributeError."""
    from sklearn.base import clone

    X_train, y_train, X_test, _ = _subset(load_dataset("GunPoint"), 12, 6)
    for est in (TiViTClassifier(**TINY, layer=2).fit(X_train, y_train), TiViTTransformer(**TINY, layers=2).fit(X_train)):
        expected = est.predict_proba(X_test) if hasattr(est, "predict_proba") else est.transform(X_test).to_numpy()
        del est.__dict__["precision"]  # as an older tivit pickled it
        old = pickle.loads(pickle.dumps(est))
        assert old.precision == "auto" and repr(old) and clone(old).precision == "auto"
        got = old.predict_proba(X_test) if hasattr(old, "predict_proba") else old.transform(X_test).to_numpy()
        np.testing.assert_array_equal(got, expected)


def test_paper_preset_runs_the_encoder_in_fp32_as_published(monkeypatch):
    """The published code runs its ViT in fp32 on a GPU too; 'auto' means that under preset='paper'
    (elsewhere bf16 autocast on CUDA), and a precision asked for by name still wins."""
    import tivit.encoders

    import weakref

    import tivit.sktime

    monkeypatch.setattr(tivit.encoders, "_default_precision", lambda device: "bf16")  # as on a GPU
    # an encoder another test built on this worker resolved 'auto' without the stand-in: not shared here
    monkeypatch.setattr(tivit.sktime, "_LIVE_ENCODERS", weakref.WeakValueDictionary())
    X_train, y_train, _, _ = _subset(load_dataset("GunPoint"), 12, 6)
    paper = TiViTClassifier(**TINY, preset="paper").fit(X_train, y_train)
    default = TiViTClassifier(**TINY, layer=1).fit(X_train, y_train)
    asked = TiViTTransformer(**TINY, preset="paper", precision="bf16").fit(X_train)
    assert paper._encoder_slot.encoder.precision == "fp32"
    assert default._encoder_slot.encoder.precision == "bf16"
    assert asked._encoder_slot.encoder.precision == "bf16"
    again = pickle.loads(pickle.dumps(paper))
    again.predict(X_train[:2])
    assert again._encoder_slot.encoder.precision == "fp32"


def test_search_trials_only_matter_to_the_auto_layer():
    """search_trials=0 (bench's 'no search') failed a fit whose layer is fixed, where it is unused."""
    X_train, y_train, X_test, _ = _subset(load_dataset("GunPoint"), 12, 6)
    TiViTClassifier(**TINY, layer=2, search_trials=0).fit(X_train, y_train).predict(X_test)
    with pytest.raises(ValueError, match="search_trials must be a positive integer"):
        TiViTClassifier(**TINY, layer="auto", search_trials=0).fit(X_train, y_train)
