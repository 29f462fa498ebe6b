"""tivit.heads: the linear head matches scikit-learn, the batched per-layer/per-fold fits match
one-at-a-time fits, MLP and layer-mix learn, fits are deterministic and leave no trace."""

import os
import pickle
import random

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tivit.heads import HeadClassifier, LayerChoice, choose_layer, fit_linear_per_layer


def _blobs(n=240, d=32, k=4, signal=0.5, seed=0, offset=3.0, spread=5.0):
    """Overlapping Gaussian classes, features on arbitrary scales (so standardisation matters)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    rng.shuffle(y)
    centres = rng.normal(size=(k, d))
    X = signal * centres[y] + rng.normal(size=(n, d))
    X = X * rng.uniform(0.1, spread, size=d) + offset
    return X.astype(np.float32), np.array([f"c{v}" for v in y])


def _sklearn(X, y, C=1.0):
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=500)).fit(X.astype(np.float64), y)


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("C", [1.0, 0.05])
def test_linear_head_matches_sklearn_logistic_regression(k, C):
    X, y = _blobs(k=k)
    fit, test = slice(0, 180), slice(180, None)
    head = HeadClassifier("linear", C=C).fit(X[fit], y[fit])
    ref = _sklearn(X[fit], y[fit], C)
    assert list(head.classes_) == list(ref.classes_)
    np.testing.assert_allclose(head.predict_proba(X), ref.predict_proba(X), atol=5e-3)
    weight = head.module_.weight.detach().numpy()[0, 0]  # (d, outputs): binary has one vector, as sklearn
    np.testing.assert_allclose(weight.T, ref[-1].coef_, atol=5e-3 * max(1.0, np.abs(ref[-1].coef_).max()))
    acc, ref_acc = head.score(X[test], y[test]), ref.score(X[test], y[test])
    assert abs(acc - ref_acc) <= 0.01 + 1e-9


def test_standardisation_lives_inside_the_head():
    X, y = _blobs()
    a = HeadClassifier().fit(X, y).predict_proba(X)
    b = HeadClassifier().fit(X * 1000.0 - 7.0, y).predict_proba(X * 1000.0 - 7.0)
    np.testing.assert_allclose(a, b, atol=2e-3)


def test_per_layer_fit_equals_one_head_per_layer():
    X, y = _blobs(d=16)
    layers = np.stack([X, X[:, ::-1] * 0.5, np.random.default_rng(1).normal(size=X.shape).astype(np.float32)], 1)
    heads = fit_linear_per_layer(layers, y)
    proba = heads.predict_proba(layers)
    for k in range(3):
        single = HeadClassifier().fit(layers[:, k], y)
        np.testing.assert_allclose(proba[k], single.predict_proba(layers[:, k]), atol=5e-3)
    scores = heads.score(layers, y)
    assert scores.shape == (3,) and scores[2] < scores[0]


@pytest.mark.parametrize("k", [2, 4])
def test_fold_x_layer_fits_stop_at_a_stationary_point_of_each_objective(k):
    """Every fold x layer problem ends where the autograd gradient of its own objective is below tol."""
    from tivit.heads import _fit_linear, _quiet

    X, y = _blobs(n=90, d=10, k=k, signal=0.8)
    layers = np.ascontiguousarray(np.stack([X, X[:, ::-1] * 3.0 + 2.0], 0))  # (L, n, d)
    y_idx = np.unique(y, return_inverse=True)[1]
    groups = np.ones((3, 90), dtype=np.float32)
    groups[0, :30] = groups[1, 30:60] = groups[2, 60:] = 0  # three folds' fit masks
    for C, tol in ((1.0, 1e-4), (0.05, 1e-4), (1.0, 1e-6)):
        with _quiet():
            module = _fit_linear(layers, y_idx, k, C, 500, tol, True, "cpu", groups)
        assert module.converged and module.iterations.shape == (3, 2) and module.n_iter == module.iterations.max()
        x0 = (torch.from_numpy(layers) - module.shift) / module.unit
        module.zero_grad()
        module.objective(x0, torch.from_numpy(y_idx), torch.from_numpy(groups)).backward()
        grad = max(module.weight.grad.abs().max().item(), module.bias.grad.abs().max().item())
        assert grad <= 2 * tol + 1e-6, (C, tol, grad)
    with pytest.warns(ConvergenceWarning, match="6 of 6 linear heads at max_iter=2"), _quiet():
        early = _fit_linear(layers, y_idx, k, 1.0, 2, 1e-8, True, "cpu", groups)
    assert not early.converged and early.n_iter == 2  # max_iter reached: said, not hidden
    with pytest.warns(ConvergenceWarning, match="the linear head at max_iter=3"):
        HeadClassifier(max_iter=3).fit(X, y)


def test_classes_in_any_order_name_the_same_label_set():
    """``classes`` is a set: given in any order, the fit and the column order are those of the sorted labels."""
    X, y = _blobs(n=90, d=6, k=3, signal=2.0)
    features = np.stack([X, X[:, ::-1]], axis=1)
    sorted_fit = fit_linear_per_layer(features, y)
    for order in (["c1", "c0", "c2"], ["c2", "c1", "c0"], np.array(["c2", "c0", "c1", "unseen"])):
        heads = fit_linear_per_layer(features, y, classes=order)
        assert heads.classes_[:3].tolist() == ["c0", "c1", "c2"]
        np.testing.assert_array_equal(heads.predict(features), sorted_fit.predict(features))
        assert (heads.score(features, y) == sorted_fit.score(features, y)).all()
    with pytest.raises(ValueError, match="duplicates"):
        fit_linear_per_layer(features, y, classes=["c0", "c1", "c1", "c2"])


def test_choose_layer_uses_folds_like_separate_fits_and_picks_the_informative_layer():
    from tivit.cv import cv_folds

    X, y = _blobs(n=120, d=12, signal=0.8)
    noise = np.random.default_rng(2).normal(size=X.shape).astype(np.float32)
    feats = np.stack([noise, X, noise * 2 + 1], axis=1)
    choice = choose_layer(feats, y, layers=(3, 6, 9), random_state=0)
    assert isinstance(choice, LayerChoice) and choice.layer == 6
    assert set(choice.scores) == {3, 6, 9} and choice.scores[6] > choice.scores[3]
    # the batched fold x layer problem scores like a fold-by-fold loop with sklearn
    folds = cv_folds(np.unique(y, return_inverse=True)[1], 5, seed=0)
    expected = np.mean([_sklearn(X[f], y[f]).score(X[v], y[v]) for f, v in folds])
    assert abs(choice.scores[6] - expected) <= 0.02
    assert choose_layer(feats, y, layers=(3, 6, 9), random_state=0) == choice  # deterministic


def test_mlp_head_learns_and_is_deterministic():
    X, y = _blobs(n=160, d=16, signal=1.5)
    a = HeadClassifier("mlp", hidden=(32,), max_epochs=60, patience=5, random_state=3).fit(X[:120], y[:120])
    b = HeadClassifier("mlp", hidden=(32,), max_epochs=60, patience=5, random_state=3).fit(X[:120], y[:120])
    np.testing.assert_array_equal(a.predict_proba(X[120:]), b.predict_proba(X[120:]))
    assert a.score(X[120:], y[120:]) > 0.6
    two = HeadClassifier("mlp", hidden=(16, 8), max_epochs=5, random_state=0).fit(X, y)
    assert two.predict_proba(X).shape == (160, 4)


def test_layer_mix_exposes_weights_and_favours_the_informative_layer():
    X, y = _blobs(n=160, d=16, signal=1.0)
    noise = np.random.default_rng(5).normal(size=X.shape).astype(np.float32)
    head = HeadClassifier("layer_mix").fit(np.stack([noise, X, noise[::-1]], 1), y)
    w = head.layer_weights_
    assert w.shape == (3,) and abs(w.sum() - 1) < 1e-5 and w.argmax() == 1
    assert head.predict(np.stack([noise, X, noise[::-1]], 1)).shape == (160,)


def test_fit_leaves_global_state_and_disk_alone(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    X, y = _blobs(n=60, d=8)
    random.seed(7)
    np.random.seed(7)
    torch.manual_seed(7)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(7)
    np.random.seed(7)
    torch.manual_seed(7)
    flag = torch.are_deterministic_algorithms_enabled()
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)  # Lightning's deterministic mode turns it off
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)  # ... and sets this variable
    monkeypatch.setenv("PL_SEED_WORKERS", "1")  # seed_everything(workers=False) set it to "0"
    heads = [HeadClassifier().fit(X, y), HeadClassifier("mlp", max_epochs=3).fit(X, y),
             HeadClassifier("layer_mix").fit(np.stack([X, X], 1), y)]
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    assert torch.are_deterministic_algorithms_enabled() == flag
    assert torch.backends.cudnn.benchmark is True and "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    assert os.environ["PL_SEED_WORKERS"] == "1"
    assert os.listdir(tmp_path) == []  # no lightning_logs, no checkpoints
    # a fitted head keeps no Trainer (its loaders held a copy of the training data)
    assert all(head.module_._trainer is None for head in heads)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_heads_fit_on_a_gpu_and_leave_its_random_state_alone():
    """The mlp's validation stacked a CPU count with a CUDA loss; seeding reseeded every CUDA generator."""
    X, y = _blobs(n=120, d=8, signal=1.5)
    torch.cuda.manual_seed_all(11)
    before = torch.cuda.get_rng_state()
    for kind in ("linear", "mlp", "layer_mix"):
        features = np.stack([X, X], 1) if kind == "layer_mix" else X
        head = HeadClassifier(kind, accelerator="cuda", max_epochs=5).fit(features, y)
        cpu = HeadClassifier(kind, max_epochs=5).fit(features, y)
        assert (head.predict(features) == cpu.predict(features)).mean() > 0.9  # float order differs on a GPU
    assert torch.equal(torch.cuda.get_rng_state(), before)


def test_fits_in_threads_give_what_they_give_alone():
    """Seeding uses the process's generators: two mlp fits at once drew from each other's streams."""
    from concurrent.futures import ThreadPoolExecutor

    X, y = _blobs(n=120, d=8, signal=1.0)
    alone = [HeadClassifier("mlp", max_epochs=8, random_state=s).fit(X, y).predict_proba(X) for s in (0, 1)]
    with ThreadPoolExecutor(2) as pool:
        for _ in range(3):
            fits = [pool.submit(lambda s=s: HeadClassifier("mlp", max_epochs=8, random_state=s).fit(X, y))
                    for s in (0, 1)]
            for want, fit in zip(alone, fits):
                np.testing.assert_array_equal(fit.result().predict_proba(X), want)


def test_mlp_says_when_no_validation_split_holds_every_class():
    """Three classes of three: 20 % of 9 rounds to 2 validation samples, fewer than the classes, and
    early stopping was silently off. It stays off there (holding out a third of such a set costs more
    than early stopping gains), with a warning; a fraction that holds every class validates."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(9, 4)).astype(np.float32)
    y = np.repeat(["a", "b", "c"], 3)
    with pytest.warns(UserWarning, match=r"no stratified validation split of validation_fraction=0.2 holds every "
                                         r"class \(9 samples, 3 classes, the smallest of 3\); early stopping is off"):
        head = HeadClassifier("mlp", max_epochs=4).fit(X, y)
    assert head.n_iter_ == 4
    head = HeadClassifier("mlp", max_epochs=400, patience=2, validation_fraction=0.34).fit(X, y)
    assert np.isfinite(head.module_.best_loss) and head.n_iter_ < 400
    with pytest.warns(UserWarning, match="the smallest of 1"):
        HeadClassifier("mlp", max_epochs=4).fit(X[:7], y[:7])  # class "c" has one sample


def test_heads_report_what_they_did(tmp_path):
    """layer_mix logged its starting loss (torch's L-BFGS step returns its first evaluation) and never
    said it stopped at max_iter; a diverged mlp returned NaN probabilities; devices=2 started DDP."""
    import csv

    from lightning.pytorch.loggers import CSVLogger

    X, y = _blobs(n=120, d=8, signal=1.5, k=2)
    stacked = np.stack([X, X[::-1]], 1)
    HeadClassifier("layer_mix", trainer_kwargs={"logger": CSVLogger(str(tmp_path))}).fit(stacked, y)
    (metrics,) = tmp_path.rglob("metrics.csv")
    with metrics.open() as handle:
        loss = float(next(csv.DictReader(handle))["loss"])
    assert loss < 0.9 * np.log(2)
    with pytest.warns(ConvergenceWarning, match="layer_mix head at max_iter=2"):
        HeadClassifier("layer_mix", max_iter=2).fit(stacked, y)
    with pytest.raises(ValueError, match="training diverged"):
        HeadClassifier("mlp", lr=1e30, max_epochs=3).fit(X, y)
    for key in ("devices", "strategy", "num_nodes", "limit_val_batches"):
        with pytest.raises(ValueError, match=f"trainer_kwargs sets {key!r}: a head is fitted in memory"):
            HeadClassifier(trainer_kwargs={key: 2}).fit(X, y)
    for one in (1, "1"):  # which one device a head runs on stays the user's choice (devices=[1] on a GPU)
        HeadClassifier(trainer_kwargs={"devices": one}).fit(X, y)


def test_trainer_kwargs_turn_logs_and_checkpoints_on_when_asked(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    X, y = _blobs(n=80, d=8, signal=1.5)
    asked = {"logger": CSVLogger(str(tmp_path / "mlp")), "enable_checkpointing": True,
             "default_root_dir": str(tmp_path)}
    HeadClassifier("mlp", max_epochs=3, trainer_kwargs=asked).fit(X, y)
    (metrics,) = (tmp_path / "mlp").rglob("metrics.csv")
    assert {"train_loss", "val_loss"} <= set(metrics.read_text().splitlines()[0].split(","))
    assert list(tmp_path.rglob("*.ckpt"))  # the checkpoint asked for
    HeadClassifier(trainer_kwargs={"logger": CSVLogger(str(tmp_path / "linear"))}).fit(X, y)
    (metrics,) = (tmp_path / "linear").rglob("metrics.csv")
    assert "lbfgs_iterations" in metrics.read_text()
    with pytest.raises(ValueError, match="use the head's own 'max_epochs'"):
        HeadClassifier("mlp", trainer_kwargs={"max_epochs": 3}).fit(X, y)
    with pytest.raises(ValueError, match="'bogus' is not a Lightning Trainer argument"):
        HeadClassifier(trainer_kwargs={"bogus": 1}).fit(X, y)


def test_sklearn_compatibility_cross_val_and_pickle():
    X, y = _blobs(n=100, d=8, signal=1.5)
    scores = cross_val_score(HeadClassifier(C=0.5), X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.5
    from sklearn.model_selection import GridSearchCV

    grid = GridSearchCV(HeadClassifier(), {"C": np.array([0.5, 2.0])}, cv=3).fit(X, y)  # NumPy scalars as C
    assert grid.best_params_["C"] in (0.5, 2.0)
    binary = np.where(y == "c0", "c0", "rest")
    auc = cross_val_score(HeadClassifier(), X, binary, cv=3, scoring="roc_auc", error_score="raise")
    assert auc.mean() > 0.5
    head = HeadClassifier().fit(X, binary)
    score = head.decision_function(X)  # sklearn's binary contract: (n,), > 0 means classes_[1]
    assert score.shape == (len(X),)
    np.testing.assert_array_equal(head.classes_[(score > 0).astype(int)], head.predict(X))
    assert HeadClassifier().fit(X, y).decision_function(X).shape == (len(X), 4)
    np.testing.assert_array_equal(HeadClassifier().fit(X, y[:, None]).predict(X), HeadClassifier().fit(X, y).predict(X))
    assert isinstance(HeadClassifier("mlp", max_epochs=2).fit(X, y).n_iter_, int)
    head = HeadClassifier().fit(X, y)
    again = pickle.loads(pickle.dumps(head))
    np.testing.assert_array_equal(again.predict_proba(X), head.predict_proba(X))


def test_bad_input_gets_clear_errors():
    X, y = _blobs(n=40, d=4)
    with pytest.raises(ValueError, match="single class"):
        HeadClassifier().fit(X, np.zeros(40))
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        HeadClassifier().fit(bad, y)
    with pytest.raises(ValueError, match=r"shape \(n, d\)"):
        HeadClassifier().fit(X[:, :, None], y)
    with pytest.raises(ValueError, match=r"shape \(n, layers, d\)"):
        HeadClassifier("layer_mix").fit(X, y)
    with pytest.raises(ValueError, match="one label per sample"):
        HeadClassifier().fit(X, y[:-1])
    with pytest.raises(ValueError, match="kind='svm' is not a head"):
        HeadClassifier("svm").fit(X, y)
    for params, match in [(dict(C=0), "C must be a positive"), (dict(C=True), "C must be a positive"),
                          (dict(max_iter=0), "max_iter must be a positive integer"),
                          (dict(max_iter=-1), "max_iter must be a positive integer"),
                          (dict(tol=-1.0), "tol must be a positive"),
                          (dict(random_state=-1), r"random_state must be None or an integer in \[0, 2\*\*32\)"),
                          (dict(random_state=np.random.RandomState(0)), "random_state must be None or an integer")]:
        with pytest.raises(ValueError, match=match):
            HeadClassifier(**params).fit(X, y)
    with pytest.raises(ValueError, match="Unknown label type"):
        HeadClassifier().fit(X, np.linspace(0, 1, len(X)))  # continuous targets are not classes
    with pytest.raises(TypeError, match="real numbers"):
        HeadClassifier().fit(X + 1j, y)
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        HeadClassifier().predict(X)
    head = HeadClassifier().fit(X, y)
    with pytest.raises(ValueError, match="fitted on"):
        head.predict(X[:, :3])
    with pytest.raises(ValueError, match="only in the evaluation data"):
        head.score(X, np.where(y == "c0", "never-seen", y))


def test_heads_stay_float32_under_a_float64_default_dtype(float64_default):
    X, y = _blobs(n=90, d=8, k=3)
    layers = np.stack([X, X[:, ::-1]], axis=1).astype(np.float32)  # (n, 2, d)
    per_layer = fit_linear_per_layer(layers, y)
    assert per_layer.score(layers, y).shape == (2,)
    for kind, features in (("linear", X), ("mlp", X), ("layer_mix", layers)):
        head = HeadClassifier(kind=kind, max_epochs=3, random_state=0).fit(features, y)
        assert head.predict_proba(features).shape == (90, 3)


@pytest.mark.parametrize("kind", ["mlp", "linear", "layer_mix"])
def test_ctrl_c_in_a_head_is_a_keyboard_interrupt(kind, monkeypatch):
    """Lightning turns Ctrl-C during fit into sys.exit(1) and ignores SIGINT afterwards: `tivit bench`
    and `tivit search` then exited 1 without their "interrupted" message."""
    import signal

    from tivit import heads

    module = {"mlp": heads.MLPHead, "linear": heads.LinearHead, "layer_mix": heads.LayerMixHead}[kind]

    def interrupted(self, batch, batch_idx):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "training_step", interrupted)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 2, 8) if kind == "layer_mix" else (40, 8)).astype(np.float32)
    y = np.arange(40) % 2
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        heads.HeadClassifier(kind, max_epochs=2).fit(X, y) if kind == "mlp" else heads.HeadClassifier(kind).fit(X, y)
    assert signal.getsignal(signal.SIGINT) is before  # a second Ctrl-C is not ignored


@pytest.mark.parametrize("scale", [1e-7, 1e19])
def test_features_at_any_scale_are_standardised_as_sklearn_does(scale):
    """A spread below about 1e-6 counted as constant, and float32 squares of 1e19 overflowed: either
    way the head silently ignored every feature (0.55 accuracy where sklearn has 1.0)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = (X[:, 0] > 0).astype(int)
    X = X * scale
    for kind in ("linear", "mlp"):
        head = HeadClassifier(kind, max_epochs=50, random_state=0).fit(X, y)
        assert head.score(X, y) > 0.9, kind
    np.testing.assert_array_equal(HeadClassifier().fit(X, y).predict(X), _sklearn(X, y).predict(X))
    constant = np.column_stack([X, np.full(60, 3.0 * scale)])  # a constant column still gets scale 1
    assert HeadClassifier().fit(constant, y).score(constant, y) > 0.9
    with pytest.raises(ValueError, match="beyond float32's range"):
        HeadClassifier().fit(np.where(X > 0, 1e39, X), y)


def test_settings_are_checked_for_every_entry_point():
    X, y = _blobs(n=40, d=4, k=2)
    L3 = np.stack([X, X, X], axis=1)
    for kwargs, match in ((dict(C=-1.0), "C must be a positive number"), (dict(C=0), "C must be"),
                          (dict(max_iter=0), "max_iter must be a positive integer")):
        with pytest.raises(ValueError, match=match):
            fit_linear_per_layer(L3, y, **kwargs)
        with pytest.raises(ValueError, match=match):
            choose_layer(L3, y, **kwargs)
    assert choose_layer(L3, y, random_state=None).layer == 1  # None is seed 0, as for HeadClassifier
    with pytest.raises(ValueError, match="random_state"):
        fit_linear_per_layer(L3, y, random_state=-1)
    with pytest.raises(ValueError, match="single class"):
        fit_linear_per_layer(L3[y == y[0]], y[y == y[0]], classes=[y[0]])
    for kwargs, match in ((dict(max_epochs=-1), "max_epochs must be a positive integer"),
                          (dict(max_epochs=0), "max_epochs"), (dict(max_epochs=None), "max_epochs"),
                          (dict(lr=0), "lr must be a positive number"), (dict(patience=0), "patience"),
                          (dict(weight_decay=-1), "weight_decay"), (dict(hidden="wide"), "hidden")):
        with pytest.raises(ValueError, match=match):
            HeadClassifier("mlp", **kwargs).fit(X, y)
    assert HeadClassifier("mlp", hidden=8, max_epochs=2).fit(X, y).score(X, y) >= 0  # one width as an int


def test_choose_layer_ties_go_to_the_shallower_layer_and_layers_are_unique():
    X, y = _blobs(n=40, d=4, k=2)
    same = np.stack([X] * 4, axis=1)
    assert choose_layer(same, y, layers=[8, 7, 6, 5]).layer == 5
    with pytest.raises(ValueError, match="repeat a layer number"):
        choose_layer(same, y, layers=[1, 1, 2, 2])


def test_dataframe_columns_are_checked_and_misuse_is_named():
    import pandas as pd
    from sklearn.exceptions import NotFittedError

    X, y = _blobs(n=40, d=5, k=2)
    frame = pd.DataFrame(X, columns=list("abcde"))
    head = HeadClassifier().fit(frame, y)
    assert list(head.feature_names_in_) == list("abcde")
    np.testing.assert_array_equal(head.predict(frame), head.predict(X))
    with pytest.raises(ValueError, match="feature names differ"):
        head.predict_proba(frame[list("edcba")])
    with pytest.raises(NotFittedError):
        HeadClassifier().score(X, y)
    mix = HeadClassifier("layer_mix", max_iter=20).fit(np.stack([X, X], axis=1), y)
    assert hasattr(mix, "layer_weights_")
    assert not hasattr(mix.set_params(kind="linear").fit(X, y), "layer_weights_")
    per_layer = fit_linear_per_layer(np.stack([X, X], axis=1), y)
    with pytest.raises(ValueError, match="4 values per layer; the heads were fitted on 5"):
        per_layer.predict(np.stack([X[:, :4], X[:, :4]], axis=1))


@pytest.mark.parametrize("n, mean, sd", [(1000, 1000.0, 0.05), (5000, 10.0, 0.004), (200, 1.0, 1e-5)])
def test_small_spreads_far_from_zero_are_standardised_as_sklearn_does(n, mean, sd):
    """float32's eps in sklearn's constant test called a spread of 0.05 at 1,000 (n = 1,000) constant."""
    from tivit.heads import _moments

    x = (mean + sd * np.random.default_rng(0).standard_normal((n, 1))).astype(np.float32)
    _, scale = _moments(torch.from_numpy(x), 0)
    np.testing.assert_allclose(float(scale), StandardScaler().fit(x).scale_[0], rtol=1e-5)
