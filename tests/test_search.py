"""tivit.cv and tivit.search: folds, the layer search on embeddings, the dataset search on real data.

Real-data tests use GunPoint (bundled) with a tiny random-weights ViT (32 px, 3 blocks): the point
is the mechanics (test split untouched, cache reuse, resume, determinism), not the accuracy.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from tivit.cv import cv_folds, fold_plan
from tivit.search import SearchError, SearchSpace, evaluate_search, search_layer

TINY = dict(img_size=32, depth=3)
ENCODER = "vit_small_patch16_224"


# ---------------------------------------------------------------------------------------------
# folds


def test_folds_are_stratified_disjoint_and_capped_by_smallest_class():
    y = np.array(["a"] * 30 + ["b"] * 3 + ["c"] * 67)
    folds = cv_folds(y, 5, seed=0)
    plan = fold_plan(y, 5)
    assert plan.n_splits == 3 and plan.repeats == 1 and plan.stratified
    assert len(folds) == 3
    seen = np.concatenate([val for _, val in folds])
    assert sorted(seen.tolist()) == list(range(100))  # every sample validated exactly once
    for fit, val in folds:
        assert not set(fit) & set(val)
        assert (y[val] == "b").sum() == 1  # the smallest class spread over all folds


def test_tiny_sets_are_repeated_with_different_shuffles_and_seed_is_deterministic():
    y = np.repeat(["x", "y"], 12)
    folds = cv_folds(y, 5, seed=3)
    assert fold_plan(y, 5).repeats == 3 and len(folds) == 15
    first, second = folds[:5], folds[5:10]
    assert any(not np.array_equal(a[1], b[1]) for a, b in zip(first, second))
    again = cv_folds(y, 5, seed=3)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(folds, cv_folds(y, 5, seed=4)))


def test_single_sample_class_falls_back_to_plain_folds_and_bad_labels_raise():
    y = np.array(["a"] * 10 + ["b"] * 10 + ["c"])
    plan = fold_plan(y, 5)
    assert not plan.stratified and plan.n_splits == 5
    assert len(cv_folds(y, 5)) == plan.n_folds
    with pytest.raises(ValueError, match="single class"):
        cv_folds(np.array(["a"] * 10))
    with pytest.raises(ValueError, match="class 'b' has a single training sample"):
        cv_folds(np.array(["a"] * 10 + ["b"]))  # two classes: every fold holding b out fits one class
    with pytest.raises(ValueError, match="at least 4"):
        cv_folds(np.array(["a", "b", "a"]))
    with pytest.raises(ValueError, match="n_splits"):
        cv_folds(np.repeat(["a", "b"], 5), 1)


# ---------------------------------------------------------------------------------------------
# search on embeddings in memory


def _planted(n=48, layers=5, d=16, informative=3, seed=0):
    """Embeddings where only layer ``informative`` separates the classes."""
    rng = np.random.default_rng(seed)
    y = np.repeat(["neg", "pos"], n // 2)
    X = rng.normal(size=(n, layers, d)).astype(np.float32)
    X[y == "pos", informative - 1, :3] += 2.5
    return X, y


def test_search_layer_finds_the_informative_layer_and_is_deterministic():
    X, y = _planted()
    first = search_layer(X, y, n_trials=12, seed=0, n_splits=3)
    assert first.layer == 3
    assert first.cv_score > 0.85
    assert first.layer_scores[3] == max(first.layer_scores.values())
    assert first.n_trials == 12 and first.head == "linear"
    assert 1e-3 <= first.C <= 1e2
    again = search_layer(X, y, n_trials=12, seed=0, n_splits=3)
    assert (again.layer, again.C, again.cv_score) == (first.layer, first.C, first.cv_score)


def test_search_layer_uses_embeddings_layer_numbers():
    from tivit.embed import Embeddings

    X, y = _planted(layers=4, informative=2)
    emb = Embeddings(X, (0, 4, 8, 12))
    choice = search_layer(emb, y, n_trials=8, seed=1, n_splits=3)
    assert choice.layer == 4 and choice.layers == (0, 4, 8, 12)
    with pytest.raises(SearchError, match="layer numbers"):
        search_layer(X, y, layers=(1, 2), n_trials=2)
    with pytest.raises(SearchError, match=r"\(n, layers, d\)"):
        search_layer(X[:, 0], y, n_trials=2)


def test_evaluate_search_scores_test_once_with_the_chosen_layer():
    X, y = _planted(n=60, seed=0)
    Xt, yt = _planted(n=80, seed=1)
    choice, accuracy = evaluate_search(X, y, Xt, yt, n_trials=10, seed=0, n_splits=3)
    assert choice.layer == 3
    assert accuracy > 0.85
    head = choice.fit_head(X, y)
    assert accuracy == pytest.approx(np.mean(choice.predict(head, Xt) == yt))


def test_a_resumed_study_draws_what_an_uninterrupted_one_draws(tmp_path):
    """A fresh sampler's RNG restarted from the seed: a resumed study repeated its first trials."""
    X, y = _planted()
    kwargs = dict(seed=0, n_splits=3, prune=False)
    whole = f"sqlite:///{tmp_path / 'whole.db'}"
    search_layer(X, y, n_trials=8, storage=whole, study_name="s", **kwargs)
    parts = f"sqlite:///{tmp_path / 'parts.db'}"
    search_layer(X, y, n_trials=4, storage=parts, study_name="s", **kwargs)
    search_layer(X, y, n_trials=8, storage=parts, study_name="s", resume=True, **kwargs)

    def params(url):
        import optuna

        return [t.params for t in optuna.load_study(study_name="s", storage=url).get_trials()]

    assert params(parts) == params(whole)
    assert len({tuple(sorted(p.items())) for p in params(parts)}) == 8
    # other data under the same study: refused, never mixed
    with pytest.raises(SearchError, match=r"different settings \(train_sha256\)"):
        search_layer(X, y[::-1], n_trials=9, storage=parts, study_name="s", resume=True, **kwargs)
    with pytest.raises(SearchError, match="already exists"):
        search_layer(X, y, n_trials=9, storage=parts, study_name="s", **kwargs)
    memory = search_layer(X, y, n_trials=2, storage="sqlite:///:memory:", **kwargs)  # crashed: tables dropped
    assert memory.n_trials == 2


def test_search_layer_refuses_what_it_cannot_score():
    X, y = _planted()
    bad = X.copy()
    bad[0, 1, 3] = np.nan  # one value: fp16 overflow in a cache, say
    with pytest.raises(SearchError, match=r"NaN or inf in layers \[2\]"):
        search_layer(bad, y, n_trials=2)
    with pytest.raises(SearchError, match="every one of the 8 classes has a single training series"):
        search_layer(X[:8], np.arange(8), n_trials=2)
    with pytest.raises(SearchError, match=r"layers \[1, 1, 2, 3, 4\] repeat a layer"):
        search_layer(X, y, layers=[1, 1, 2, 3, 4], n_trials=2)
    assert search_layer(X, y, heads="linear", n_trials=2, n_splits=3).head == "linear"  # a string is one head


def test_the_sampler_is_made_without_optunas_experimental_warnings():
    import warnings

    from tivit.search import _sampler

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _sampler(0)
    assert not caught


def test_fold_fits_do_not_warn_once_per_fold_and_trial():
    """mlp trials on a set with a class of one series: every fold fit warned that early stopping was
    off, and scikit-learn's many-classes warning came once per fit."""
    import warnings

    X, y = _planted()
    y = y.copy()
    y[0] = -1  # a class of one series
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        search_layer(X, y, heads=("mlp",), n_trials=2, n_splits=3)
    assert not [w for w in caught if "early stopping is off" in str(w.message)]


def test_a_storage_that_cannot_be_opened_is_a_search_error(tmp_path):
    from tivit.search import _rdb_storage

    with pytest.raises(SearchError, match="cannot open the study storage"):
        _rdb_storage(f"sqlite:///{tmp_path}/no/such/folder/study.db")


def test_space_validation():
    with pytest.raises(SearchError, match="unknown heads"):
        SearchSpace(heads=("svm",))
    with pytest.raises(SearchError, match="C bounds"):
        SearchSpace(C=(1.0, 0.1))
    with pytest.raises(SearchError, match="not searched"):
        SearchSpace(renderer_params=(("gasf", (("size", (8,)),)),))
    with pytest.raises(SearchError, match="unknown keys"):
        SearchSpace.from_dict({"layer": 3})
    space = SearchSpace.from_dict({"pools": ["mean", "cls"], "renderer_params": {"tivit": {"stride": [0.1, 1.0]}}})
    assert space.embedding_keys == 4
    assert SearchSpace.from_dict(space.to_dict()) == space


def test_plots_are_written(tmp_path):
    import matplotlib.image as mpimg
    import optuna

    from tivit.search_plots import plot_search

    X, y = _planted()
    storage = f"sqlite:///{tmp_path / 's.db'}"
    search_layer(X, y, n_trials=8, seed=0, n_splits=3, storage=storage, study_name="plots")
    study = optuna.load_study(study_name="plots", storage=storage)
    paths = plot_search(study, tmp_path / "plots", title="planted", random_weights=True)
    assert [p.name for p in paths] == ["layers.png", "importances.png", "history.png"]
    for path in paths:
        image = mpimg.imread(path)
        assert image.shape[0] > 200 and image.shape[1] > 300


# ---------------------------------------------------------------------------------------------
# search on a real dataset (GunPoint, tiny random-weights encoder)


@pytest.fixture(scope="module")
def gunpoint():
    from tivit.data import load_dataset

    return load_dataset("GunPoint")


@pytest.fixture(scope="module")
def enc():
    from tivit.encoders import load_encoder

    return load_encoder(ENCODER, weights="random", device="cpu", **TINY)


class TrainOnly:
    """A dataset whose test split cannot be read during the search.

    Reading ``X_test``/``y_test`` raises, unless ``study`` is given as ``(storage, name)``: then each
    read records how many trials of that study had finished at that moment.
    """

    def __init__(self, dataset, study=None):
        self._dataset, self._study, self.reads = dataset, study, []
        self.name, self.X_train, self.y_train = dataset.name, dataset.X_train, dataset.y_train

    def _test(self, attr):
        if self._study is None:
            raise AssertionError(f"the search read {attr}")
        import optuna

        storage, name = self._study
        trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
        self.reads.append((attr, sum(t.state.is_finished() for t in trials)))
        return getattr(self._dataset, attr)

    @property
    def X_test(self):
        return self._test("X_test")

    @property
    def y_test(self):
        return self._test("y_test")


def _count_forward(monkeypatch, enc):
    calls = []
    original = type(enc).forward_layers

    def counted(images, *args, **kwargs):
        calls.append(images.shape[0])
        return original(enc, images, *args, **kwargs)

    monkeypatch.setattr(enc, "forward_layers", counted)
    return calls


def test_search_never_reads_the_test_split(gunpoint, enc):
    from tivit.search import search

    result = search(TrainOnly(gunpoint), enc, n_trials=4, n_splits=3, score_test=False, cache_dir=False)
    assert result.test_score is None and result.n_trials == 4
    assert result.random_weights and "RANDOM WEIGHTS" in result.to_dict()["label"]
    assert 0.0 <= result.cv_score <= 1.0 and result.best_config["layer"] in (1, 2, 3)


def test_test_split_is_read_only_after_the_search_to_score_the_best_trial(gunpoint, enc, tmp_path):
    from tivit.embed import extract
    from tivit.heads import HeadClassifier
    from tivit.search import search

    storage = f"sqlite:///{tmp_path / 'guard.db'}"
    guarded = TrainOnly(gunpoint, study=(storage, "guard"))
    result = search(guarded, enc, n_trials=4, n_splits=3, storage=storage, study_name="guard", seed=0)
    assert guarded.reads and all(done == 4 for _, done in guarded.reads)
    # the score is the best configuration refit on all of train, applied once to test
    best = result.best_config
    train = extract(gunpoint.X_train, "tivit", enc, layers=[best["layer"]])
    test = extract(gunpoint.X_test, "tivit", enc, layers=[best["layer"]])
    head = HeadClassifier("linear", C=best["C"], random_state=0).fit(train.values[:, 0], gunpoint.y_train)
    assert result.test_score == pytest.approx(np.mean(head.predict(test.values[:, 0]) == gunpoint.y_test))


def test_layer_and_C_trials_never_run_the_encoder(gunpoint, enc, monkeypatch):
    from tivit.search import search

    calls = _count_forward(monkeypatch, enc)
    result = search(TrainOnly(gunpoint), enc, n_trials=8, n_splits=3, score_test=False, cache_dir=False)
    assert sum(calls) == len(gunpoint.y_train)  # one pass over the training series, for 8 trials
    assert result.embedding_passes == 1 and len(result.layer_scores) >= 2
    # a new search in a new call reads the on-disk cache: the encoder does not run at all
    search(TrainOnly(gunpoint), enc, n_trials=2, n_splits=3, score_test=False)
    calls.clear()
    again = search(TrainOnly(gunpoint), enc, n_trials=2, n_splits=3, score_test=False)
    assert sum(calls) == 0 and again.embedding_passes == 1


def test_renderer_choices_cost_one_pass_each(gunpoint, enc, monkeypatch):
    from tivit.search import search

    calls = _count_forward(monkeypatch, enc)
    space = {"layers": "2-3", "renderer_params": {"tivit": {"stride": [0.5, 1.0], "segment": ["sqrt", 16]}}}
    result = search(TrainOnly(gunpoint), enc, space=space, n_trials=10, n_splits=3, score_test=False, cache_dir=False)
    assert 1 <= result.embedding_passes <= 4
    assert sum(calls) == result.embedding_passes * len(gunpoint.y_train)
    assert result.best_config["renderer_params"]["stride"] in (0.5, 1.0)
    assert result.best_config["layer"] in (2, 3)


def test_length_rules_follow_the_training_series_and_are_recorded(gunpoint, enc):
    """A loaded panel is as wide as the longer split; a '2sqrt' rule took the test split's width."""
    from types import SimpleNamespace

    from tivit.search import search

    X = np.full((len(gunpoint.y_train), 1, 200), np.nan, dtype=np.float32)
    X[:, :, :150] = gunpoint.X_train  # as if a test series were 200 long
    data = SimpleNamespace(name="gp", X_train=X, y_train=gunpoint.y_train)
    result = search(data, enc, space={"renderer_params": {"tivit": {"segment": ["2sqrt"]}}}, n_trials=1, score_test=False, cache_dir=False,
                     progress=False)
    assert result.best_config["renderer_config"]["segment"] == round(2 * np.sqrt(150))
    with pytest.raises(SearchError, match="no X_test/y_test"):  # said before the search, not after
        search(data, enc, n_trials=1, cache_dir=False, progress=False)


def test_same_seed_same_best_trial(gunpoint, enc):
    from tivit.search import search

    runs = [search(TrainOnly(gunpoint), enc, n_trials=6, n_splits=3, seed=7, score_test=False) for _ in range(2)]
    assert runs[0].best_params == runs[1].best_params
    assert runs[0].cv_score == runs[1].cv_score and runs[0].layer_scores == runs[1].layer_scores


def test_interrupted_study_resumes_and_continues(gunpoint, enc, tmp_path, monkeypatch, capfd):
    import optuna

    from tivit.cv import LinearFoldScores
    from tivit.search import search

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    original, folds = LinearFoldScores.accuracy, []

    def interrupt_at_8th_fold(self, *args):
        folds.append(1)
        if len(folds) == 8:
            raise KeyboardInterrupt("simulated Ctrl-C")
        return original(self, *args)

    monkeypatch.setattr(LinearFoldScores, "accuracy", interrupt_at_8th_fold)
    capfd.readouterr()
    with pytest.raises(KeyboardInterrupt):
        search(TrainOnly(gunpoint), enc, n_trials=6, n_splits=3, storage=storage, study_name="s", score_test=False)
    printed = capfd.readouterr().err
    assert "failed" not in printed and "Traceback" not in printed  # Optuna's warnings for it are dropped
    monkeypatch.setattr(LinearFoldScores, "accuracy", original)
    before = optuna.load_study(study_name="s", storage=storage).get_trials()
    done_before = [t for t in before if t.state.name in ("COMPLETE", "PRUNED")]
    assert 1 <= len(done_before) < 6 and len(before) == len(done_before)  # the interrupted trial left nothing

    with pytest.raises(SearchError, match="already exists"):
        search(TrainOnly(gunpoint), enc, n_trials=6, n_splits=3, storage=storage, study_name="s", score_test=False)
    with pytest.raises(SearchError, match="different settings"):
        search(TrainOnly(gunpoint), enc, n_trials=6, n_splits=3, storage=storage, study_name="s", seed=1,
               score_test=False, resume=True)

    result = search(TrainOnly(gunpoint), enc, n_trials=6, n_splits=3, storage=storage, study_name="s",
                    score_test=False, resume=True)
    after = optuna.load_study(study_name="s", storage=storage).get_trials()
    assert result.study_name == "s" and result.n_trials == 6
    assert result.trials_this_run == 6 - len(done_before)
    assert len(after) == len(before) + result.trials_this_run  # the same study, grown
    assert [t.params for t in after[: len(before)]] == [t.params for t in before]
    assert all(t.state.name != "RUNNING" for t in after)


def test_cli_search_writes_json_and_plots_and_resumes(tmp_path):
    import matplotlib.image as mpimg
    from typer.testing import CliRunner

    from tivit.cli import app

    out, db = tmp_path / "result.json", f"sqlite:///{tmp_path / 'cli.db'}"
    args = ["search", "--dataset", "GunPoint", "--encoder", ENCODER, "--encoder-args", "img_size=32,depth=3",
            "--weights", "random", "--storage", db, "--folds", "3", "--out", str(out)]
    runner = CliRunner()
    first = runner.invoke(app, [*args, "--trials", "3"])
    assert first.exit_code == 0, first.output
    assert "RANDOM WEIGHTS" in first.output
    data = json.loads(out.read_text())
    for key in ("best_params", "cv_score", "test_score", "n_trials", "seconds", "random_weights", "weights"):
        assert key in data
    assert data["random_weights"] is True and data["n_trials"] == 3 and 0 <= data["test_score"] <= 1
    pngs = sorted(Path(p).name for p in data["plots"])
    assert pngs == ["history.png", "importances.png", "layers.png"]
    assert all(mpimg.imread(p).shape[0] > 100 for p in data["plots"])

    again = runner.invoke(app, [*args, "--trials", "3"])
    assert again.exit_code == 2 and "--resume" in again.output
    resumed = runner.invoke(app, [*args, "--trials", "5", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    data = json.loads(out.read_text())
    assert data["n_trials"] == 5 and data["trials_this_run"] == 2


def test_plots_that_cannot_be_written_cost_only_the_plots(tmp_path):
    from tivit.search import search

    blocked = tmp_path / "a-file"
    blocked.write_text("x")  # the plots folder would have to be a file: the finished search is kept
    with pytest.warns(UserWarning, match="search plots not written"):
        result = search("GunPoint", encoder=ENCODER, weights="random", encoder_args={"img_size": 32, "depth": 2},
                        n_trials=2, n_splits=2, max_repeats=1, score_test=False, progress=False,
                        cache_dir=False, plots_dir=blocked)
    assert result.n_trials == 2 and result.plots == []


def test_C_grid_and_segment_rules():
    from tivit.search import segment_length, snap_C

    assert snap_C(1.0) == 1.0 and snap_C(1.7) == 1.0 and snap_C(2.0) == pytest.approx(10**0.5)  # 2 per decade
    assert snap_C(0.0011, (0.001, 100)) == 0.001 and snap_C(95, (0.001, 50)) == 50
    assert segment_length("sqrt", 150) is None and segment_length(None, 150) is None
    assert segment_length("2sqrt", 100) == 20 and segment_length("0.5sqrt", 100) == 5
    assert segment_length(16, 100) == 16 and segment_length("12", 100) == 12
    with pytest.raises(SearchError, match="not understood"):
        segment_length("cube", 100)
    with pytest.raises(SearchError, match=">= 1"):
        segment_length(0, 100)


def test_other_heads_are_searched_through_the_head_classifier():
    X, y = _planted(n=40, layers=3, d=8, informative=2)
    mix = search_layer(X, y, heads=("layer_mix",), n_trials=2, seed=0, n_splits=2, max_repeats=1,
                      prune=False)
    assert mix.head == "layer_mix" and mix.layer is None and mix.C is not None
    assert mix.layer_scores == {}  # no trial chose a single layer
    mlp = search_layer(X, y, heads=("mlp",), n_trials=1, seed=0, n_splits=2, max_repeats=1,
                      prune=False)
    assert mlp.head == "mlp" and mlp.layer in (1, 2, 3) and mlp.C is None
    assert mlp.config.hidden in (64, 256) and 1e-5 <= mlp.config.weight_decay <= 1e-1
    head = mlp.fit_head(X, y)
    assert mlp.predict(head, X).shape == (40,)


@pytest.mark.parametrize("n_classes", [2, 4])
def test_fold_fits_solve_the_linear_heads_objective(n_classes):
    """The search's fast fold fits (span reduction + Newton) match sklearn's LogisticRegression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from tivit.cv import LinearFoldScores, newton_logistic

    rng = np.random.default_rng(n_classes)
    n, d = 48, 120  # fewer samples than features, as in a search
    y_idx = np.arange(n) % n_classes
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 3, size=d)
    X[:, :4] += 0.6 * y_idx[:, None]
    for C in (0.01, 1.0, 30.0):
        W, b = newton_logistic(X, y_idx, n_classes, C)
        ref = LogisticRegression(C=C, max_iter=20000, tol=1e-12).fit(X, y_idx).decision_function(X)
        ours = X @ W + b
        if n_classes == 2:
            np.testing.assert_allclose(ours[:, 0], ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
        else:  # multinomial logits are defined up to a per-sample shift
            centre = lambda z: z - z.mean(1, keepdims=True)  # noqa: E731
            np.testing.assert_allclose(centre(ours), centre(ref), atol=1e-4 * np.abs(ref).max())

    y = np.array([f"class{k}" for k in y_idx])
    fit, val = np.arange(36), np.arange(36, 48)
    folds = LinearFoldScores(y, [(fit, val)])
    for C in (0.01, 1.0):
        scaler = StandardScaler().fit(X[fit])
        full = LogisticRegression(C=C, max_iter=20000, tol=1e-12).fit(scaler.transform(X[fit]), y[fit])
        expected = np.mean(full.predict(scaler.transform(X[val])) == y[val])
        assert folds.accuracy("layer", X, 0, C) == expected


def test_bad_requests_fail_before_any_trial(gunpoint, enc, monkeypatch):
    from tivit.data import DatasetError
    from tivit.encoders import EncoderError
    from tivit.search import search

    calls = _count_forward(monkeypatch, enc)
    ds = TrainOnly(gunpoint)
    with pytest.raises(SearchError, match="database URL"):
        search(ds, enc, n_trials=2, storage="study.db")
    with pytest.raises(SearchError, match="n_trials"):
        search(ds, enc, n_trials=0)
    with pytest.raises(SearchError, match="unknown renderers"):
        search(ds, enc, n_trials=2, space={"renderers": ["tivit", "spectrogram"]})
    with pytest.raises(ValueError, match="stride"):
        search(ds, enc, n_trials=2, space={"renderer_params": {"tivit": {"stride": [0.1, 2.0]}}})
    with pytest.raises(EncoderError, match="out of range"):
        search(ds, enc, n_trials=2, space={"layers": [1, 9]})
    with pytest.raises(EncoderError, match="unknown pool"):
        search(ds, enc, n_trials=2, space={"pools": ["max"]})
    with pytest.raises(DatasetError):
        search("NoSuchDataset", enc, n_trials=2)
    with pytest.raises(SearchError, match="no X_train"):
        search(object(), enc, n_trials=2)
    assert calls == []  # nothing was embedded


def test_only_interrupted_trials_lose_their_failure_warnings():
    import logging
    import sys

    from tivit.search import _NoInterruptedTrialWarnings

    def record(message, error=None):
        info = None
        if error is not None:
            try:
                raise error
            except BaseException:  # noqa: BLE001 - the record carries whatever was raised
                info = sys.exc_info()
        return logging.LogRecord("optuna.study._optimize", logging.WARNING, __file__, 1, message, None, info)

    keep = _NoInterruptedTrialWarnings()
    assert not keep.filter(record("Trial 3 failed with parameters: {} because of ...", KeyboardInterrupt()))
    assert not keep.filter(record("Trial 3 failed with value None."))
    assert keep.filter(record("Trial 4 failed with value None."))  # only the interrupted trial's line
    assert keep.filter(record("Trial 5 failed with parameters: {} because of ...", ValueError("bad")))
    assert keep.filter(record("Trial 5 failed with value None."))


def test_a_study_resumes_only_in_the_precision_it_was_made_in(tmp_path):
    """fp32 and bf16 embeddings differ: their trials must not share a study (older studies did not
    record a precision, and resume as before)."""
    from tivit.search import open_study

    storage = f"sqlite:///{tmp_path / 'p.db'}"
    meta = {"dataset": "GunPoint", "precision": "fp32"}
    open_study("s", storage, seed=0, prune=False, resume=False, meta=meta)
    open_study("s", storage, seed=0, prune=False, resume=True, meta=meta)
    with pytest.raises(SearchError, match=r"different settings \(precision\)"):
        open_study("s", storage, seed=0, prune=False, resume=True, meta={**meta, "precision": "bf16"})
    open_study("old", storage, seed=0, prune=False, resume=False, meta={"dataset": "GunPoint"})
    open_study("old", storage, seed=0, prune=False, resume=True, meta=meta)


def test_search_fits_its_heads_on_one_torch_thread(gunpoint, enc, monkeypatch):
    """Heads on one thread give the same numbers on any core count (tivit._threads); the encoder keeps
    its threads."""
    import torch

    from tivit.cv import LinearFoldScores
    from tivit.search import search

    seen, original = [], LinearFoldScores.accuracy

    def record(self, *args):
        seen.append(torch.get_num_threads())
        return original(self, *args)

    monkeypatch.setattr(LinearFoldScores, "accuracy", record)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        search(TrainOnly(gunpoint), enc, n_trials=3, n_splits=3, score_test=False)
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("kwargs", [dict(precision="bf16"), dict(weights="random"), dict(encoder_args={"depth": 1})])
def test_search_refuses_encoder_settings_a_built_encoder_cannot_take(gunpoint, enc, kwargs):
    """They were ignored silently (extract refuses them the same way)."""
    from tivit.search import search

    with pytest.raises(TypeError, match="only apply when the encoder is given by name"):
        search(TrainOnly(gunpoint), enc, n_trials=1, n_splits=3, score_test=False, **kwargs)


def test_cli_resize_applies_to_the_renderers_that_resize(tmp_path, monkeypatch):
    """--resize with lineplot among the renderers failed with "lineplot has no parameter(s) ['resize']"."""
    from typer.testing import CliRunner

    import tivit.search
    from tivit.cli import app

    seen = {}

    def fake_search(dataset, encoder, *, space, **kwargs):
        seen["space"] = space
        raise SearchError("stop here")

    monkeypatch.setattr(tivit.search, "search", fake_search)
    base = ["search", "--dataset", "GunPoint", "--encoder", ENCODER, "--weights", "random", "--out",
            str(tmp_path / "r.json"), "--no-plots"]
    result = CliRunner().invoke(app, base + ["--renderers", "gasf,lineplot", "--resize", "nearest,box"])
    assert "stop here" in result.output, result.output
    params = dict(seen["space"].renderer_params)
    assert dict(params["gasf"])["resize"] == ("nearest", "box") and "lineplot" not in params
    result = CliRunner().invoke(app, base + ["--renderers", "lineplot", "--resize", "box"])
    assert result.exit_code == 2 and "--resize applies to renderers with a resize step; none of lineplot" in result.output


def test_one_study_runs_in_one_process_at_a_time(tmp_path):
    """Two searches on one study both ran every trial and stored each twice (301 trials for 200)."""
    from tivit.search import study_lock

    X, y = _planted()
    url = f"sqlite:///{tmp_path / 'study.db'}"
    with study_lock(url, "s"):  # as another process would hold it
        with pytest.raises(SearchError, match="study 's' .* is being run by another process"):
            search_layer(X, y, n_trials=2, storage=url, study_name="s", resume=True)
        assert search_layer(X, y, n_trials=2, storage=url, study_name="other", n_splits=3).n_trials == 2
    assert search_layer(X, y, n_trials=2, storage=url, study_name="s", n_splits=3).n_trials == 2


def test_storage_guards_name_the_study_file_and_not_its_url(tmp_path, monkeypatch):
    """The per-study lock was keyed on the URL text ('?timeout=30' or a link ran two processes on one
    study); a folder it could not write in was a traceback; a missing server driver was a raw
    ImportError, and a server URL's password went into results and messages."""
    import tivit._lock
    from tivit.search import _rdb_storage, _storage_label, study_lock

    db = tmp_path / "s.db"
    link = tmp_path / "link.db"
    link.symlink_to(db)
    with study_lock(f"sqlite:///{db}", "s"):
        for other in (f"sqlite:///{db}?timeout=30", f"sqlite:///{link}"):
            with pytest.raises(SearchError, match="is being run by another process"):
                with study_lock(other, "s"):
                    pass

    def unwritable(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / ".s.db.lock"))

    monkeypatch.setattr(tivit._lock, "held", unwritable)
    with pytest.raises(SearchError, match="cannot use the study storage .*Permission denied"):
        with study_lock(f"sqlite:///{db}", "s"):
            pass
    assert _storage_label("postgresql://me:secret@db.example/x") == "postgresql://me:***@db.example/x"
    with pytest.raises(SearchError, match=r"cannot open the study storage postgresql://me:\*\*\*@") as err:
        _rdb_storage("postgresql://me:secret@localhost:1/x")
    assert "secret" not in str(err.value)


def test_a_study_tivit_did_not_make_is_not_taken_over(tmp_path):
    import optuna

    storage = f"sqlite:///{tmp_path / 'foreign.db'}"
    foreign = optuna.create_study(study_name="foreign", storage=storage)
    foreign.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    X, y = _planted()
    with pytest.raises(SearchError, match="holds trials that tivit did not make"):
        search_layer(X, y, n_trials=4, storage=storage, study_name="foreign", resume=True)
    assert "tivit" not in optuna.load_study(study_name="foreign", storage=storage).user_attrs
    search_layer(X, y, n_trials=2, storage=storage, study_name="mine", n_splits=3)
    with pytest.raises(SearchError, match=r"different settings \(prune\)"):  # --no-prune on a pruned study
        search_layer(X, y, n_trials=3, storage=storage, study_name="mine", n_splits=3, prune=False, resume=True)


def test_search_results_hold_what_repeating_them_needs_and_the_train_split_alone_keys_them(gunpoint, enc, tmp_path):
    """normalize and precision were missing from the result; the training data's fingerprint held the
    padding the test split's width set, so a resume with another test file was refused."""
    from tivit.search import search

    storage = f"sqlite:///{tmp_path / 'keys.db'}"
    result = search(TrainOnly(gunpoint), enc, n_trials=2, n_splits=3, score_test=False, cache_dir=False,
                    storage=storage, study_name="k", normalize=True)
    assert result.to_dict()["normalize"] is True and result.to_dict()["precision"] == enc.precision
    wide = TrainOnly(gunpoint)
    wide.X_train = np.concatenate([gunpoint.X_train, np.full(gunpoint.X_train.shape[:2] + (30,), np.nan,
                                                             np.float32)], axis=2)
    again = search(wide, enc, n_trials=3, n_splits=3, score_test=False, cache_dir=False, storage=storage,
                   study_name="k", normalize=True, resume=True)
    assert again.n_trials == 3


def test_importances_are_drawn_with_conditional_parameters(tmp_path, monkeypatch):
    """fANOVA refuses parameters some trials lack (C of linear heads only): the plot was always blank."""
    import optuna

    from tivit.search_plots import plot_search

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(trial):
        head = trial.suggest_categorical("head", ["linear", "mlp"])
        layer = trial.suggest_int("layer", 1, 6)
        c = trial.suggest_float("C", 1e-3, 1e3, log=True) if head == "linear" else 1.0
        return layer / 6 + 0.01 * np.log10(c)

    study.optimize(objective, n_trials=12)
    seen = []
    original = optuna.importance.get_param_importances

    def spy(*args, **kwargs):
        seen.append(original(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(optuna.importance, "get_param_importances", spy)
    plot_search(study, tmp_path)
    assert seen and set(seen[0]) == {"head", "layer"}
