"""tivit.encoders: the table, layer numbering, one-pass pooled states, weights, errors."""

import pickle

import pytest
import torch

from tivit import encoders
from tivit.encoders import (
    ENCODERS,
    POOLS,
    EncoderError,
    EncoderWeightsError,
    check_pool,
    load_encoder,
    load_encoder_from_identity,
    resolve_layers,
)

TINY = dict(img_size=32, depth=4)


@pytest.fixture(scope="module")
def tiny():
    return load_encoder("vit_small_patch16_224", weights="random", device="cpu", seed=0, **TINY)


@pytest.fixture(scope="module")
def images():
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def _manual_tokens(model, x, k):
    """Reference: token embedding then the first k blocks, written out by hand."""
    with torch.no_grad():
        t = model.patch_embed(x)
        t = model._pos_embed(t)
        t = model.norm_pre(model.patch_drop(t))
        for blk in model.blocks[:k]:
            t = blk(t)
    return t


@pytest.mark.parametrize("k", [0, 1, 2, 4])
def test_block_k_equals_manual_forward(tiny, images, k):
    got = tiny.forward_layers(images, [k], pool="mean")[:, 0]
    want = _manual_tokens(tiny.model, images, k).mean(dim=1)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_one_pass_all_layers_equals_separate_passes(tiny, images):
    together = tiny.forward_layers(images, "0-4", pool="mean")
    assert together.shape == (3, 5, tiny.width)
    for i, k in enumerate(range(5)):
        alone = tiny.forward_layers(images, [k], pool="mean")[:, 0]
        torch.testing.assert_close(together[:, i], alone, atol=1e-5, rtol=1e-5)


def test_early_stop_runs_no_later_block_and_matches_full_pass(tiny, images):
    calls = []
    hooks = [b.register_forward_hook(lambda m, a, o, i=i: calls.append(i)) for i, b in enumerate(tiny.model.blocks)]
    try:
        early = tiny.forward_layers(images, [2])
    finally:
        for h in hooks:
            h.remove()
    assert calls == [0, 1]  # blocks 1 and 2 only
    with torch.no_grad():
        full = tiny.model.forward_intermediates(images, indices=[1], return_prefix_tokens=True, output_fmt="NLC")[1][0]
    full_tokens = torch.cat([full[1], full[0]], dim=1)
    torch.testing.assert_close(early[:, 0], full_tokens.mean(1), atol=1e-5, rtol=1e-5)


def test_layer_zero_alone_runs_no_block(tiny, images):
    calls = []
    hook = tiny.model.blocks[0].register_forward_hook(lambda *a: calls.append(1))
    try:
        out = tiny.forward_layers(images, 0)
    finally:
        hook.remove()
    assert calls == []
    torch.testing.assert_close(out[:, 0], _manual_tokens(tiny.model, images, 0).mean(1), atol=1e-6, rtol=1e-6)


def test_pools(tiny, images):
    tokens = _manual_tokens(tiny.model, images, 3)
    p = tiny.prefix_tokens
    want = {
        "mean": tokens.mean(1),
        "mean_patch": tokens[:, p:].mean(1),
        "cls": tokens[:, 0],
        "mean+cls": torch.cat([tokens.mean(1), tokens[:, 0]], dim=-1),
    }
    for pool in POOLS:
        got = tiny.forward_layers(images, [3], pool=pool)[:, 0]
        assert got.shape[-1] == tiny.pooled_width(pool)
        torch.testing.assert_close(got, want[pool], atol=1e-5, rtol=1e-5)
    assert tiny.pooled_width("mean+cls") == 2 * tiny.width


def test_final_norm_applied_when_asked(tiny, images):
    tokens = _manual_tokens(tiny.model, images, 2)
    with torch.no_grad():
        want = tiny.model.norm(tokens).mean(1)
    got = tiny.forward_layers(images, [2], norm=True)[:, 0]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got, tiny.forward_layers(images, [2], norm=False)[:, 0])


def test_registers_and_no_prefix_models(images):
    reg = load_encoder("vit_small_patch14_reg4_dinov2", weights="random", img_size=28, depth=2)
    assert reg.prefix_tokens == 5
    x = torch.randn(2, 3, 28, 28)
    tokens = _manual_tokens(reg.model, x, 1)
    torch.testing.assert_close(reg.forward_layers(x, [1], "mean_patch")[:, 0], tokens[:, 5:].mean(1), atol=1e-5, rtol=1e-5)
    siglip = load_encoder("vit_base_patch16_siglip_224", weights="random", img_size=32, depth=2, embed_dim=64, num_heads=2)
    assert siglip.prefix_tokens == 0
    out = siglip.forward_layers(torch.randn(2, 3, 32, 32), "all")
    assert out.shape == (2, 2, 64)
    with pytest.raises(EncoderError, match="class token"):
        siglip.forward_layers(torch.randn(2, 3, 32, 32), [1], pool="cls")


def test_threads_sharing_an_encoder_read_their_own_layers(tiny, images):
    """Estimators built alike share one encoder; the layer-0 hook on its model, there while one
    thread's pass runs, captured another thread's input (wrong embeddings, then cached)."""
    from concurrent.futures import ThreadPoolExecutor

    other = images.flip(0)
    want_a, want_b = tiny.forward_layers(images, [0, 4]), tiny.forward_layers(other, [4])
    with ThreadPoolExecutor(2) as pool:
        for _ in range(30):
            a, b = pool.submit(tiny.forward_layers, images, [0, 4]), pool.submit(tiny.forward_layers, other, [4])
            assert torch.equal(a.result(), want_a) and torch.equal(b.result(), want_b)


def test_registers_without_class_token_refuse_class_pools():
    """``*_reg4_gap`` models have four register tokens and no class token: token 0 is a register."""
    gap = load_encoder("vit_base_patch16_reg4_gap_256", weights="random", img_size=32, depth=2, embed_dim=64,
                       num_heads=2)
    assert gap.prefix_tokens == 4 and not gap.has_cls
    x = torch.randn(2, 3, 32, 32)
    for pool in ("cls", "mean+cls"):
        with pytest.raises(EncoderError, match="needs a class token"):
            gap.forward_layers(x, [1], pool=pool)
        with pytest.raises(EncoderError, match="needs a class token"):
            gap.pooled_width(pool)
    tokens = _manual_tokens(gap.model, x, 1)
    torch.testing.assert_close(gap.forward_layers(x, [1], "mean_patch")[:, 0], tokens[:, 4:].mean(1), atol=1e-5,
                               rtol=1e-5)


@pytest.mark.parametrize("name", ["vit_relpos_small_patch16_224", "eva02_tiny_patch14_224"])
def test_vits_of_other_classes_read_every_block(name):
    """timm's relpos ViT (no prefix tokens) failed on any block when asked for prefix tokens."""
    import timm

    kwargs = dict(img_size=32, patch_size=8, depth=3, embed_dim=64, num_heads=2)
    enc = load_encoder(name, weights="random", **kwargs)
    x = torch.randn(2, 3, 32, 32)
    got = enc.forward_layers(x, [1, 3], pool="mean")
    with torch.no_grad():
        states = enc.model.forward_intermediates(x, indices=[0, 2], return_prefix_tokens=enc.prefix_tokens > 0,
                                                 output_fmt="NLC", intermediates_only=True)
    want = [torch.cat([s[1], s[0]], 1) if isinstance(s, tuple) else s for s in states]
    for i in range(2):
        torch.testing.assert_close(got[:, i], want[i].mean(1), atol=1e-5, rtol=1e-5)
    assert isinstance(enc.model, timm.models.VisionTransformer) is False


def test_an_image_side_the_patches_do_not_tile():
    """dinov2 at img_size=64 (patch 14) reads a 56-pixel grid: the renderer's last 8 rows and
    columns never reach it. A given size is refused; a model's own such size warns."""
    with pytest.raises(EncoderError, match=r"not a multiple of the patch size 14.*img_size=56 or img_size=70"):
        load_encoder("dinov2-s", weights="random", img_size=64, depth=2)
    with pytest.warns(UserWarning, match=r"reads only the first 216 pixels"):
        enc = load_encoder("vit_tiny_patch16_224", weights="random", patch_size=12, depth=1, embed_dim=32, num_heads=2)
    assert enc.input_size == 224
    # an encoder fitted and pickled before the check rebuilds as it was, with the warning
    identity = {"name": "dinov2-s", "timm_name": "vit_small_patch14_dinov2.lvd142m", "weights": "random", "seed": 0,
                "timm_kwargs": {"img_size": 64, "depth": 2}, "random_weights": True}
    with pytest.warns(UserWarning, match=r"reads only the first 56 pixels"):
        assert load_encoder_from_identity(identity).input_size == 64


def test_resolve_layers():
    assert resolve_layers("all", 12) == tuple(range(1, 13))
    assert resolve_layers(None, 3) == (1, 2, 3)
    assert resolve_layers(14, 32) == (14,)
    assert resolve_layers([3, 1, 3], 12) == (1, 3)
    assert resolve_layers("0-2,5", 12) == (0, 1, 2, 5)
    assert resolve_layers("middle", 12) == (6,)
    assert resolve_layers(-1, 12) == (12,)
    with pytest.raises(EncoderError, match=r"valid layers are 0\.\.12"):
        resolve_layers(13, 12)
    with pytest.raises(EncoderError, match="valid layers are 0..12"):
        resolve_layers([-14], 12)
    with pytest.raises(EncoderError, match="cannot read layers"):
        resolve_layers("one", 12)
    with pytest.raises(EncoderError, match="integers"):
        resolve_layers([1.5], 12)
    with pytest.raises(EncoderError, match="empty"):
        resolve_layers([], 12)
    # ranges: negative bounds count from the end; a reversed range is named, not called empty
    assert resolve_layers("10--1", 12) == (10, 11, 12)
    assert resolve_layers("-3--2", 12) == (10, 11)
    with pytest.raises(EncoderError, match=r"'3-1' runs backwards: give the lower layer first \('1-3'\)"):
        resolve_layers("3-1", 12)
    with pytest.raises(EncoderError, match=r"layer range '0-20': layer 20 is out of range .* 0\.\.12"):
        resolve_layers("0-20", 12)


def test_bad_inputs(tiny, images):
    with pytest.raises(EncoderError, match="unknown pool 'avg'"):
        check_pool("avg")
    with pytest.raises(EncoderError, match=r"\(B, 3, 32, 32\)"):
        tiny.forward_layers(torch.randn(2, 3, 64, 64), [1])
    with pytest.raises(EncoderError, match="did you mean"):
        load_encoder("dinov2-small", weights="random")
    with pytest.raises(EncoderError, match="not a ViT-family"):
        load_encoder("resnet18", weights="random")
    with pytest.raises(EncoderError, match="does not return its prefix tokens per block"):
        load_encoder("cait_xxs24_224", weights="random", img_size=32, depth=1, depth_token_only=1)
    # judged before any weights are looked for: offline, a ResNet is not reported as missing weights
    with pytest.raises(EncoderError, match="not a ViT-family"):
        load_encoder("resnet18", weights="pretrained")
    for weights in ("random", "pretrained"):
        with pytest.raises(EncoderError, match=r"unknown tag 'nosuch' for vit_small_patch16_224: its "
                                               r"tags are .*augreg_in1k"):
            load_encoder("vit_small_patch16_224.nosuch", weights=weights, **TINY)
    # a tag timm registers without downloadable weights still names a model
    assert load_encoder("vit_base_patch16_gap_224.untrained", weights="random", img_size=32, depth=1).depth == 1
    with pytest.raises(EncoderError, match="timm rejected the arguments"):
        load_encoder("vit_small_patch16_224", weights="random", no_such_argument=1)


def test_models_that_cannot_build_without_tensors_are_judged_after_the_real_build(monkeypatch, tmp_path):
    import timm

    cait = dict(img_size=32, depth=1, depth_token_only=1)
    path = tmp_path / "cait.pth"
    torch.save(timm.create_model("cait_xxs24_224", num_classes=0, **cait).state_dict(), path)
    monkeypatch.setattr(encoders, "_weightless", lambda *a: None)  # as for a model that fails on meta
    with pytest.raises(EncoderError, match="does not return its prefix tokens per block"):
        load_encoder("cait_xxs24_224", weights=path, **cait)
    with pytest.raises(EncoderError, match="not a ViT-family"):
        load_encoder("resnet18", weights="random")  # random weights: always judged on the real build
    assert load_encoder("vit_small_patch16_224", weights="random", **TINY).depth == TINY["depth"]
    with pytest.raises(EncoderError, match="'gpu' is not a torch device"):
        load_encoder("vit_small_patch16_224", weights="random", device="gpu", **TINY)
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(EncoderError, match="no CUDA GPU here" if count == 0 else "CUDA GPU\\(s\\)"):
        load_encoder("vit_small_patch16_224", weights="random", device=f"cuda:{count}" if count else "cuda", **TINY)


def test_random_weights_are_seeded_and_labelled(images):
    a = load_encoder("vit_small_patch16_224", weights="random", seed=3, **TINY)
    b = load_encoder("vit_small_patch16_224", weights="random", seed=3, **TINY)
    c = load_encoder("vit_small_patch16_224", weights="random", seed=4, **TINY)
    assert a.random_weights and a.weights == "random(seed=3)"
    assert a.identity()["random_weights"] is True
    torch.testing.assert_close(a.forward_layers(images, [2]), b.forward_layers(images, [2]))
    assert not torch.allclose(a.forward_layers(images, [2]), c.forward_layers(images, [2]))


@pytest.mark.parametrize("fmt", ["safetensors", "pth"])
def test_weights_file_loads_and_reproduces(tiny, images, tmp_path, fmt):
    state = {k: v.contiguous() for k, v in tiny.model.state_dict().items()}
    path = tmp_path / f"w.{fmt}"
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    loaded = load_encoder("vit_small_patch16_224", weights=path, seed=99, **TINY)
    assert loaded.weights.startswith("file:") and not loaded.random_weights
    assert loaded.identity()["sha256"] and loaded.identity()["path"] == str(path.resolve())
    torch.testing.assert_close(loaded.forward_layers(images, "all"), tiny.forward_layers(images, "all"))
    again = load_encoder_from_identity(loaded.identity())
    torch.testing.assert_close(again.forward_layers(images, [1]), tiny.forward_layers(images, [1]))
    path.write_bytes(b"changed")
    with pytest.raises(EncoderWeightsError, match="changed"):
        load_encoder_from_identity(loaded.identity())


def test_wrong_or_missing_weights_file(tmp_path):
    with pytest.raises(EncoderWeightsError, match="does not exist"):
        load_encoder("vit_small_patch16_224", weights=tmp_path / "nope.pth", **TINY)
    other = load_encoder("vit_small_patch16_224", weights="random", img_size=32, depth=2, embed_dim=64, num_heads=2)
    path = tmp_path / "other.pth"
    torch.save(other.model.state_dict(), path)
    with pytest.raises(EncoderWeightsError, match="does not fit"):
        load_encoder("vit_small_patch16_224", weights=path, **TINY)
    with pytest.raises(EncoderWeightsError, match="is a folder, not a file"):
        load_encoder("vit_small_patch16_224", weights=tmp_path, **TINY)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\xff" * 64)
    with pytest.raises(EncoderWeightsError, match="does not fit"):
        load_encoder("vit_small_patch16_224", weights=garbage, **TINY)


def test_a_weights_file_must_set_every_tensor(tmp_path):
    """A file that fits nothing (or only part of the model) is refused: timm would load it non-strictly
    and leave random tensors behind a 'file:' label."""
    empty = tmp_path / "empty.pth"
    torch.save({}, empty)
    with pytest.raises(EncoderWeightsError, match="leaves .* tensors unset"):
        load_encoder("vit_small_patch16_224", weights=empty, **TINY)
    shallow = load_encoder("vit_small_patch16_224", weights="random", img_size=32, depth=2)
    path = tmp_path / "depth2.pth"
    torch.save(shallow.model.state_dict(), path)
    with pytest.raises(EncoderWeightsError, match=r"blocks\.2\."):  # a depth-3 model misses block 3
        load_encoder("vit_small_patch16_224", weights=path, img_size=32, depth=3)
    with pytest.warns(UserWarning, match="tensors are not used"):  # a shallower model reads the first blocks
        one = load_encoder("vit_small_patch16_224", weights=path, img_size=32, depth=1)
    images = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(one.forward_layers(images, [1]), shallow.forward_layers(images, [1]))


def test_offline_missing_pretrained_error_names_alternatives(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EncoderWeightsError) as info:
        load_encoder("dinov2-s", weights="pretrained", img_size=28, depth=1)
    text = str(info.value)
    assert "cannot be loaded" in text and "random" in text and "PATH" in text and "dinov2-s" in text


def test_pickle_stores_identity_not_weights(tiny, images):
    blob = pickle.dumps(tiny)
    assert len(blob) < 10_000  # the weights (~10 MB) are not in it
    back = pickle.loads(blob)
    torch.testing.assert_close(back.forward_layers(images, [1, 4]), tiny.forward_layers(images, [1, 4]))


def test_table_matches_timm_models():
    """Every row's depth, width, prefix tokens, input size and mean/std agree with the timm model."""
    import timm

    for spec in ENCODERS.values():
        with torch.device("meta"):
            model = timm.create_model(spec.timm_name, pretrained=False, num_classes=0, **dict(spec.timm_kwargs))
        assert len(model.blocks) == spec.depth, spec.name
        assert model.embed_dim == spec.width, spec.name
        assert model.num_prefix_tokens == spec.prefix_tokens, spec.name
        assert model.patch_embed.img_size == (spec.input_size, spec.input_size), spec.name
        assert tuple(model.pretrained_cfg["mean"]) == spec.mean, spec.name
        assert tuple(model.pretrained_cfg["std"]) == spec.std, spec.name
        assert (type(model.norm).__name__ != "Identity") == spec.final_norm, spec.name


def test_friendly_name_input_size_from_model():
    enc = load_encoder("dinov2-s", weights="random", img_size=56, depth=1)
    assert enc.input_size == 56 and enc.name == "dinov2-s"
    assert enc.mean == ENCODERS["dinov2-s"].mean


def test_auto_batch_size_cpu(tiny):
    assert tiny.auto_batch_size() == 32
    assert tiny.auto_batch_size(5) == 5


@pytest.mark.slow
def test_compiled_encoder_matches_eager(tiny, images):
    """torch.compile path (~15 s to compile on a small CPU): same numbers, smaller last batch padded."""
    compiled = load_encoder("vit_small_patch16_224", weights="random", device="cpu", seed=0, compile=True, **TINY)
    torch.testing.assert_close(compiled.forward_layers(images, "all"), tiny.forward_layers(images, "all"),
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(compiled.forward_layers(images[:2], "all"), tiny.forward_layers(images[:2], "all"),
                               atol=1e-5, rtol=1e-5)
    # layer 0 runs eagerly and still matches
    torch.testing.assert_close(compiled.forward_layers(images, [0, 1]), tiny.forward_layers(images, [0, 1]),
                               atol=1e-5, rtol=1e-5)
    assert pickle.loads(pickle.dumps(compiled)).compile is True


def test_encoder_is_float32_under_a_float64_default_dtype(float64_default, images):
    enc = load_encoder("vit_small_patch16_224", weights="random", **TINY)
    assert {p.dtype for p in enc.model.parameters()} == {torch.float32}
    assert enc.forward_layers(images.float(), [1]).dtype == torch.float32


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_a_precision_asked_for_by_name_runs_on_cpu(tiny, images, precision):
    """bf16 on CPU was silently run in fp32; CPUs with bf16 units run it ~3x faster."""
    low = load_encoder("vit_small_patch16_224", weights="random", device="cpu", seed=0, precision=precision, **TINY)
    assert low.precision == precision
    got, want = low.forward_layers(images, "all"), tiny.forward_layers(images, "all")
    assert got.dtype == torch.float32
    error = ((got - want).norm() / want.norm()).item()
    assert 0 < error < 0.05  # it ran in the lower precision, and stays close to fp32
    assert low.to("cpu").precision == precision  # a precision named is kept on a move
    assert pickle.loads(pickle.dumps(low)).precision == precision


def test_auto_precision_is_fp32_on_cpu_and_chosen_again_when_unpickled(tiny):
    assert tiny.precision == "fp32" and tiny._auto_precision
    rebuilt = pickle.loads(pickle.dumps(tiny))
    assert rebuilt.precision == "fp32" and rebuilt._auto_precision
    assert encoders._default_precision("cpu") == "fp32"
    with pytest.raises(EncoderError, match="precision must be one of"):
        load_encoder("vit_small_patch16_224", weights="random", device="cpu", precision="int8", **TINY)


@pytest.mark.parametrize("kwargs, match", [
    (dict(depth=-1), r"depth=-1: must be an integer >= 1"),
    (dict(depth=0), r"depth=0: must be an integer >= 1"),
    (dict(img_size=0), r"img_size=0: must be an integer >= 1"),
    (dict(img_size=(32, -32)), r"img_size=\(32, -32\)"),
    (dict(patch_size=True), r"patch_size=True"),
    (dict(img_size=32, patch_size=64), r"patch_size=64 is larger than img_size=32"),
    (dict(img_size=32, in_chans=1), r"in_chans=1: the renderers feed 3-channel images"),
    (dict(img_size=32, embed_dim=65, num_heads=2), r"timm rejected the arguments .*divisible"),
    (dict(img_size=32, mlp_ratio=-1), r"timm cannot build vit_small_patch16_224 .*negative dimension"),
])
def test_timm_size_arguments_are_checked_first(kwargs, match):
    """depth=-1 surfaced as torch's "number of steps must be non-negative"."""
    with pytest.raises(EncoderError, match=match):
        load_encoder("vit_small_patch16_224", weights="random", device="cpu", **kwargs)


def _pretrained_file(tmp_path, **kwargs):
    """A checkpoint standing in for a hub download, read through timm's real pretrained loading
    (``pretrained_cfg_overlay=dict(file=...)``): saved with an ImageNet classifier, as timm's are."""
    import timm

    torch.manual_seed(3)
    model = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, num_classes=10)
    path = tmp_path / "hub.pth"
    torch.save({k: v for k, v in model.state_dict().items() if kwargs.get("head", True) or not k.startswith("head")},
               path)
    return model, path


def test_pretrained_weights_must_set_every_tensor(tmp_path, images):
    """timm loads a checkpoint non-strictly when the classifier differs (always, for a headless model):
    a deeper model than the checkpoint kept random blocks under the label 'pretrained'."""
    model, path = _pretrained_file(tmp_path)
    args = dict(img_size=32, patch_size=8, pretrained_cfg_overlay=dict(file=str(path)))
    enc = load_encoder("vit_tiny_patch16_224", weights="pretrained", depth=2, **args)
    assert enc.weights == "pretrained" and not enc.random_weights
    torch.testing.assert_close(enc.model.blocks[1].mlp.fc2.weight, model.blocks[1].mlp.fc2.weight)
    with pytest.raises(EncoderWeightsError, match=r"do not fit the model built .* leave \d+ tensors unset "
                                                  r"\(e.g. blocks\.2\."):
        load_encoder("vit_tiny_patch16_224", weights="pretrained", depth=3, **args)
    # a checkpoint whose classifier matches loads strictly: torch's error, reported as a misfit, not offline
    strict = dict(args, pretrained_cfg_overlay=dict(file=str(path), num_classes=0))
    _, headless = _pretrained_file(tmp_path, head=False)
    strict["pretrained_cfg_overlay"]["file"] = str(headless)
    with pytest.raises(EncoderWeightsError, match=r"do not fit the model built .* Missing key"):
        load_encoder("vit_tiny_patch16_224", weights="pretrained", depth=3, **strict)
    with pytest.raises(EncoderWeightsError, match=r"do not fit the model built .* size mismatch"):
        load_encoder("vit_tiny_patch16_224", weights="pretrained", depth=2, embed_dim=96, num_heads=3, **strict)


def test_weights_files_users_actually_have(tmp_path):
    """Saved with another patch size (timm resampled the kernels silently), a whole pickled model, a
    tutorial-style checkpoint, an empty file, and weights=None."""
    args = dict(img_size=32, patch_size=8, depth=2)
    coarse = load_encoder("vit_tiny_patch16_224", weights="random", img_size=32, patch_size=16, depth=2)
    torch.save(coarse.model.state_dict(), tmp_path / "p16.pth")
    with pytest.raises(EncoderWeightsError, match=r"saved with patch size \(16, 16\), .* give patch_size=16"):
        load_encoder("vit_tiny_patch16_224", weights=tmp_path / "p16.pth", **args)
    fine = load_encoder("vit_tiny_patch16_224", weights="random", **args)
    torch.save(fine.model, tmp_path / "whole.pth")
    with pytest.raises(EncoderWeightsError, match="holds a pickled object, not a state dict"):
        load_encoder("vit_tiny_patch16_224", weights=tmp_path / "whole.pth", **args)
    torch.save({"epoch": 3, "model_state_dict": fine.model.state_dict()}, tmp_path / "tutorial.pth")
    with pytest.raises(EncoderWeightsError, match=r"top-level keys are \['epoch', 'model_state_dict'\]"):
        load_encoder("vit_tiny_patch16_224", weights=tmp_path / "tutorial.pth", **args)
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(EncoderWeightsError, match="is empty"):
        load_encoder("vit_tiny_patch16_224", weights=tmp_path / "empty.pth", **args)
    with pytest.raises(EncoderError, match="weights must be 'pretrained', 'random' or a path .* got None"):
        load_encoder("vit_tiny_patch16_224", weights=None, **args)


def test_recording_pretrained_loads_sees_its_own_thread_only_and_restores_torch():
    """The patch of torch.nn.Module.load_state_dict recorded other threads' loads (a foreign
    non-strict load could fail a pretrained one), and overlapping uses restored the wrong method."""
    import threading

    original = torch.nn.Module.load_state_dict
    layer = torch.nn.Linear(2, 2)
    with encoders._recorded_loads() as loads:
        other = threading.Thread(target=lambda: layer.load_state_dict(layer.state_dict(), strict=False))
        other.start()
        other.join()
        layer.load_state_dict(layer.state_dict())
    assert len(loads) == 1
    assert torch.nn.Module.load_state_dict is original
