"""Heads: small classifiers trained on frozen embeddings, as Lightning modules.

The encoder is the expensive part of tivit; a head must cost little next to it, so that changing
the layer, the head or its regularisation is cheap. Three kinds:

- ``linear``: multinomial logistic regression with an L2 penalty -- the published TiViT head
  (``StandardScaler + LogisticRegression(C=1, lbfgs)``). It minimises scikit-learn's objective
  ``C * sum_i CE_i + 0.5 * ||W||^2`` (no penalty on the intercept; one weight vector for two
  classes, as sklearn's binomial loss), scaled by ``1 / (C n)``, with full-batch L-BFGS as
  scikit-learn runs it (10 correction pairs, strong-Wolfe steps, stop at ``max |grad| <= tol``).
  Independent problems (every layer, every fold x layer) are solved together, each with its own
  L-BFGS history and step, in shared batched products (:mod:`tivit._multinomial`,
  :func:`fit_linear_per_layer`).
- ``mlp``: one or two hidden layers with dropout, AdamW, early stopping on a stratified
  validation split; the best epoch's weights are kept (where ``validation_fraction`` of the data
  cannot hold every class, it trains ``max_epochs`` epochs on all of it and keeps the last, with a
  warning).
- ``layer_mix``: softmax weights over layers, then the linear head on the mixed features; the
  learned weights are exposed as ``layer_weights_``.

Features are standardised inside every head (mean and standard deviation fitted on the training
data), so the head can be applied to raw embeddings. :class:`HeadClassifier` is the sklearn-style
face of the three (``fit``/``predict``/``predict_proba``/``classes_``), usable with sklearn's
cross-validation tools. :func:`choose_layer` picks a layer by stratified cross-validation on
training data only.

Training runs through a Lightning ``Trainer`` that writes nothing (no logger, no checkpoints,
no progress bar) unless asked: ``HeadClassifier(trainer_kwargs={...})`` passes a logger,
checkpointing or a progress bar on to it. A fit is deterministic given ``random_state`` and
leaves the caller's global random state and torch's determinism flag as they were.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import logging
import numbers
import os
import random
import threading
import warnings
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from torch import nn

from tivit._multinomial import Problems, solve
from tivit._seed import check_seed

HEADS = ("linear", "mlp", "layer_mix")


# ---------------------------------------------------------------------------------------------
# plumbing: quiet, isolated, deterministic Lightning fits


@contextlib.contextmanager
def _isolated_seed(seed: int) -> Iterator[None]:
    """Seed every RNG for a fit, then put the caller's RNG states and flags back.

    The generators are the process's own, so fits in several threads take turns (``_FITS``): two at
    once drew from each other's streams, and a seeded mlp gave other numbers than fitted alone."""
    with _FITS:
        with _seeded(seed):
            yield


_FITS = threading.RLock()


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    py_state, np_state = random.getstate(), np.random.get_state()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic  # Trainer(deterministic=True) sets them
    env = {name: os.environ.get(name) for name in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS", "CUBLAS_WORKSPACE_CONFIG")}
    # seeding torch seeds every CUDA generator too: theirs are saved and put back, where CUDA is
    # running already (reading a state would start CUDA, and its memory, for a CPU fit)
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=cuda):
        pl.seed_everything(int(seed), workers=False, verbose=False)
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
            torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
            torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = cudnn
            for name, value in env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence Lightning's banners ("GPU available ...") and its few-workers hints for in-memory data."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric", "lightning")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"lightning.*")
            warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


_OWN_SETTINGS = {"max_epochs": "max_epochs", "accelerator": "accelerator"}  # Trainer argument: head parameter
# a head is fitted in memory on one device (``devices=2`` started DDP, re-running the caller's script),
# and the mlp's early stopping validates every epoch (``limit_val_batches=0`` broke it)
_FIXED_SETTINGS = ("devices", "num_nodes", "strategy", "limit_val_batches")


def _one_device(devices: Any) -> bool:
    """``1``, ``"1"`` or one index (``[1]``: the second GPU); Lightning reads ``"1,"`` as index 1."""
    if isinstance(devices, (list, tuple)):
        return len(devices) == 1
    if isinstance(devices, str):
        text = devices.strip()
        return text == "1" or (text.endswith(",") and text[:-1].strip().isdigit())
    return not isinstance(devices, bool) and devices == 1


def _check_trainer_kwargs(trainer_kwargs: dict | None) -> dict:
    """The extra Trainer arguments a user asked for, checked against Lightning's signature."""
    extra = dict(trainer_kwargs or {})
    allowed = set(inspect.signature(pl.Trainer.__init__).parameters) - {"self"}
    for key in extra:
        if key in _OWN_SETTINGS:
            raise ValueError(f"trainer_kwargs sets {key!r}; use the head's own {_OWN_SETTINGS[key]!r} parameter")
        if key == "devices" and _one_device(extra[key]):
            continue  # which one device (devices=[1]: the second GPU)
        if key in _FIXED_SETTINGS:
            raise ValueError(f"trainer_kwargs sets {key!r}: a head is fitted in memory on one device, and the mlp "
                             "validates every epoch (validation_fraction sets its share)")
        if key not in allowed:
            raise ValueError(f"trainer_kwargs: {key!r} is not a Lightning Trainer argument")
    return extra


def _trainer(max_epochs: int, accelerator: str, callbacks: list | None = None, validate: bool = False,
             trainer_kwargs: dict | None = None) -> pl.Trainer:
    """A Trainer that writes and shows nothing, unless ``trainer_kwargs`` asks (a logger, checkpoints,
    a progress bar...); callbacks asked for are added to the head's own."""
    settings = dict(
        max_epochs=max_epochs,
        accelerator=accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
        callbacks=list(callbacks or []),
        num_sanity_val_steps=0,
        limit_val_batches=1.0 if validate else 0,
    )
    extra = dict(trainer_kwargs or {})  # checked by the caller (HeadClassifier._check_params)
    settings["callbacks"] += list(extra.pop("callbacks", None) or [])
    settings.update(extra)
    return pl.Trainer(**settings)


def _fit(trainer: pl.Trainer, module: pl.LightningModule, *loaders) -> None:
    """``trainer.fit``, with Ctrl-C raised as KeyboardInterrupt.

    Lightning catches a KeyboardInterrupt during ``fit``, ignores SIGINT from then on and calls
    ``sys.exit(1)``: a bench or search interrupted in a head would exit 1 without its "interrupted"
    message (and the next Ctrl-C would be ignored). The interrupt is handed back as it came.
    """
    import signal
    import threading

    handler = signal.getsignal(signal.SIGINT)
    try:
        trainer.fit(module, *loaders)
    except SystemExit:
        if not trainer.interrupted:
            raise
        if threading.current_thread() is threading.main_thread() and handler is not None:
            signal.signal(signal.SIGINT, handler)
        raise KeyboardInterrupt from None
    finally:
        module.trainer = None  # a fitted head must not keep the Trainer, and with it its training data


class _FullBatch(torch.utils.data.Dataset):
    """A dataset of one item: the whole training set, for full-batch optimisers."""

    def __init__(self, *tensors: torch.Tensor) -> None:
        self.tensors = tensors

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        return self.tensors


def _full_batch_loader(*tensors: torch.Tensor) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(_FullBatch(*tensors), batch_size=None, shuffle=False)


def _moments(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and population standard deviation as sklearn's StandardScaler takes them.

    A feature counts as constant (scale 1) by sklearn's test, relative to its size:
    ``var <= n eps var + (n eps mean)^2`` with float64's eps (an absolute threshold dropped every
    feature whose spread was below about 1e-6). The mean is accumulated in float64, so a constant
    column centres to exactly 0 and its variance is exactly 0, as in sklearn's float64 arithmetic. Features whose squares would overflow or underflow (values near 1e19,
    or below 1e-19) are first scaled by a power of two, which is exact.
    """
    n = x.shape[dim]
    peak = x.abs().amax(dim=dim, keepdim=True)
    shift = None
    if bool(((peak > 2.0**60) | ((peak < 2.0**-60) & (peak > 0))).any()):
        # peak = m 2**e, m in [0.5, 1); |e| <= 126 keeps 2**e a normal float32 (subnormal features)
        shift = torch.frexp(peak).exponent.clamp(-126, 126).to(x.dtype)
        x = torch.ldexp(x, -shift)
    # the mean accumulated in float64: a constant column's mean is then its value, and centres it to 0
    mean = x.mean(dim=dim, keepdim=True, dtype=torch.float64).to(x.dtype)
    var = (x - mean).pow_(2).mean(dim=dim, keepdim=True)  # two-pass
    eps = torch.finfo(torch.float64).eps  # sklearn's; float32's would call a spread of 1e-4 at 1,000 constant
    constant = var <= n * eps * var + (n * eps * mean.double()) ** 2
    std = var.sqrt_()
    if shift is not None:
        mean, std = torch.ldexp(mean, shift), torch.ldexp(std, shift)
    return mean, torch.where(constant, torch.ones_like(std), std)


def _lbfgs(params, max_iter: int, tol: float) -> torch.optim.LBFGS:
    # scipy's L-BFGS-B as sklearn calls it: 10 correction pairs, stop at max |grad| <= tol.
    return torch.optim.LBFGS(
        params,
        lr=1.0,
        max_iter=max_iter,
        max_eval=max_iter * 2,
        tolerance_grad=tol,
        tolerance_change=1e-12,
        history_size=10,
        line_search_fn="strong_wolfe",
    )


def _lbfgs_step(opt, closure) -> tuple[torch.Tensor, int]:
    """One Lightning optimizer step of L-BFGS (the whole solve); returns the loss and the iterations used."""
    loss = opt.step(closure=closure)
    return loss, int(opt.optimizer.state[opt.optimizer._params[0]].get("n_iter", 0))


# ---------------------------------------------------------------------------------------------
# Lightning modules


class LinearHead(pl.LightningModule):
    """L2 multinomial logistic regression, ``G x L`` independent problems fitted together.

    The input ``x`` is ``(L, n, d)``: ``L`` feature sets (layers) of the same ``n`` samples.
    ``G`` groups of 0/1 sample weights ``(G, n)`` (cross-validation folds) select the samples
    each problem is fitted on, so every fold x layer head is fitted in one solver run without
    copying the features. The solver (:func:`tivit._multinomial.solve`, run from
    ``training_step``) gives each problem its own L-BFGS history and step, as scikit-learn's
    ``lbfgs`` would fitting them one by one. Logits come back as ``(G, L, n, K)``.

    Each problem's features are standardised with the statistics of its own fit samples. The
    parameters live in that standardised space (the L2 penalty applies there, as in
    ``StandardScaler + LogisticRegression``); the standardisation is folded into the product
    with the raw features, after a global pre-standardisation that keeps float32 exact.

    Args:
        n_features: feature width ``d``.
        n_classes: number of classes ``K`` (2 uses one weight vector, as sklearn).
        n_layers: ``L``.
        n_groups: ``G`` (1 without folds).
        C: inverse regularisation strength, sklearn's meaning.
        max_iter: L-BFGS iterations (sklearn's ``max_iter``).
        tol: stop when the largest gradient entry is below this (sklearn's ``tol``).
        standardize: z-score the features with training statistics inside the head.
    """

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        n_layers: int = 1,
        n_groups: int = 1,
        C: float = 1.0,
        max_iter: int = 500,
        tol: float = 1e-4,
        standardize: bool = True,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.n_classes, self.C, self.max_iter, self.tol = int(n_classes), float(C), int(max_iter), float(tol)
        self.standardize = bool(standardize)
        outputs = 1 if n_classes == 2 else n_classes
        self.weight = nn.Parameter(torch.zeros(n_groups, n_layers, n_features, outputs, dtype=torch.float32))
        self.bias = nn.Parameter(torch.zeros(n_groups, n_layers, outputs, dtype=torch.float32))
        # global pre-standardisation, then a per-problem one on top
        self.register_buffer("shift", torch.zeros(n_layers, 1, n_features, dtype=torch.float32))
        self.register_buffer("unit", torch.ones(n_layers, 1, n_features, dtype=torch.float32))
        self.register_buffer("mean", torch.zeros(n_groups, n_layers, n_features, dtype=torch.float32))
        self.register_buffer("scale", torch.ones(n_groups, n_layers, n_features, dtype=torch.float32))
        self.grouped = False  # True once per-group statistics are fitted (mean/scale then matter)
        self.iterations = np.zeros((n_groups, n_layers), dtype=np.int64)  # L-BFGS iterations per problem
        self.met_tol = np.zeros((n_groups, n_layers), dtype=bool)  # the gradient met tol

    def fit_scaler(self, x: torch.Tensor, groups: torch.Tensor | None = None) -> None:
        """Fit the standardisation of each problem on its own samples (``groups`` ``(G, n)``)."""
        if not self.standardize:
            return
        shift, unit = _moments(x, dim=1)
        self.shift.copy_(shift)
        self.unit.copy_(unit)
        if groups is None:
            return  # x0 is standardised already: mean 0, scale 1
        self.grouped = True
        x0 = ((x - shift) / unit).double()
        w = groups.double()
        count = w.sum(1)[:, None, None]
        mean = torch.einsum("gn,lnd->gld", w, x0) / count
        var = (torch.einsum("gn,lnd->gld", w, x0.pow(2)) / count - mean.pow(2)).clamp_min(0)
        std = var.sqrt()
        std = torch.where(std < 1e-6, torch.ones_like(std), std)
        self.mean.copy_(mean.float())
        self.scale.copy_(std.float())

    def _logits(self, x0: torch.Tensor) -> torch.Tensor:
        if self.weight.shape[0] == 1 and not self.grouped:  # no folds: x0 is the standardised input
            out = torch.baddbmm(self.bias[0][:, None, :], x0, self.weight[0])[None]
        else:
            weight = self.weight / self.scale[..., None]
            offset = self.bias - torch.einsum("gld,gldk->glk", self.mean, weight)
            out = torch.einsum("lnd,gldk->glnk", x0, weight) + offset[:, :, None, :]
        return torch.cat([torch.zeros_like(out), out], dim=-1) if self.n_classes == 2 else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every problem for raw features ``x``."""
        return self._logits((x - self.shift) / self.unit)

    def objective(self, x0: torch.Tensor, y: torch.Tensor, groups: torch.Tensor | None) -> torch.Tensor:
        """sklearn's objective / (C n_g), summed over problems: mean CE + ||W||^2 / (2 C n_g).

        The solver minimises each term in closed form; this autograd version is the reference.
        """
        logits = self._logits(x0)
        G, L, n, K = logits.shape
        ce = F.cross_entropy(logits.reshape(-1, K), y.expand(G, L, n).reshape(-1), reduction="none").view(G, L, n)
        if groups is None:
            count = torch.full((G, 1), float(n), dtype=x0.dtype, device=x0.device)
            ce = ce.sum(-1) / count
        else:
            count = groups.sum(1, keepdim=True)
            ce = (ce * groups[:, None, :]).sum(-1) / count
        penalty = self.weight.pow(2).sum((2, 3)) / (2.0 * self.C * count)
        return (ce + penalty).sum()

    def _problems(self, x0: torch.Tensor, y: torch.Tensor, groups: torch.Tensor | None) -> Problems:
        """The ``G x L`` problems for :func:`tivit._multinomial.solve`, problem ``g * L + l``."""
        G, L = self.weight.shape[:2]
        n = x0.shape[1]
        layer = np.tile(np.arange(L), G)
        if groups is None:
            count, weight = np.full(G, float(n)), None
        else:
            g64 = groups.double()
            sums = g64.sum(1, keepdim=True)
            count, weight = sums[:, 0].cpu().numpy(), (g64 / sums).repeat_interleave(L, dim=0)
        lam = np.repeat(1.0 / (self.C * count), L)
        mean = scale = None
        if self.grouped:
            mean, scale = self.mean.reshape(G * L, -1), self.scale.reshape(G * L, -1)
        return Problems(x0, y, self.n_classes, layer, weight, lam, mean, scale)

    def training_step(self, batch, batch_idx):
        x, y, groups = batch
        x0 = (x - self.shift).div_(self.unit)
        problems = self._problems(x0, y, groups if groups.numel() else None)
        theta, n_iter, converged = solve(problems, self.max_iter, self.tol)
        G, L, d, k = self.weight.shape
        with torch.no_grad():
            self.weight.copy_(theta[:, : d * k].reshape(G, L, d, k))
            self.bias.copy_(theta[:, d * k :].reshape(G, L, k))
        self.iterations, self.met_tol = n_iter.reshape(G, L), converged.reshape(G, L)
        # one step per fit: logged per epoch, so that a logger asked for receives it (none by default)
        self.log("lbfgs_iterations", float(self.n_iter), on_step=False, on_epoch=True)
        self.log("converged", float(self.converged), on_step=False, on_epoch=True)
        return None

    def configure_optimizers(self):
        return None  # the solver is the module's own: a per-problem L-BFGS (tivit._multinomial)

    @property
    def n_iter(self) -> int:
        """Iterations of the slowest problem."""
        return int(self.iterations.max())

    @property
    def converged(self) -> bool:
        """Every problem met tol within max_iter."""
        return bool(self.met_tol.all())

    @property
    def at_limit(self) -> int:
        """Problems that max_iter stopped before tol."""
        return int(((self.iterations >= self.max_iter) & ~self.met_tol).sum())


class MLPHead(pl.LightningModule):
    """A small MLP (hidden layers with ReLU and dropout), AdamW, validation loss tracked per epoch.

    The weights of the epoch with the lowest validation loss are kept (see ``best_state``).
    """

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        hidden: Sequence[int] = (256,),
        dropout: float = 0.2,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
    ) -> None:
        super().__init__()
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        layers: list[nn.Module] = []
        width = n_features
        for h in hidden:
            layers += [nn.Linear(width, int(h), dtype=torch.float32), nn.ReLU(), nn.Dropout(float(dropout))]
            width = int(h)
        layers.append(nn.Linear(width, n_classes, dtype=torch.float32))
        self.net = nn.Sequential(*layers)
        self.register_buffer("mean", torch.zeros(1, n_features, dtype=torch.float32))
        self.register_buffer("scale", torch.ones(1, n_features, dtype=torch.float32))
        self.best_loss = float("inf")
        self.best_state: dict | None = None
        self.n_iter = 0  # epochs trained
        self._val_losses: list[torch.Tensor] = []

    def fit_scaler(self, x: torch.Tensor) -> None:
        """Store the training features' mean and std (the head standardises its input)."""
        self.mean.copy_(_moments(x, 0)[0])
        self.scale.copy_(_moments(x, 0)[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.scale)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y, reduction="sum")
        self._val_losses.append(torch.stack([loss, loss.new_tensor(float(len(y)))]))  # on the loss's device

    def on_validation_epoch_end(self) -> None:
        total = torch.stack(self._val_losses).sum(0)
        self._val_losses.clear()
        loss = float(total[0] / total[1])
        self.log("val_loss", loss)
        if loss < self.best_loss:
            self.best_loss = loss
            self.best_state = copy.deepcopy(self.net.state_dict())

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)


class LayerMixHead(pl.LightningModule):
    """Softmax-weighted mix of ``L`` standardised layers, then L2 logistic regression.

    Input ``(n, L, d)``. Objective as :class:`LinearHead` (the mixing logits are not penalised),
    fitted by full-batch L-BFGS. The model is not convex; starting from uniform weights it is
    deterministic.
    """

    def __init__(self, n_layers: int, n_features: int, n_classes: int, C: float = 1.0,
                 max_iter: int = 500, tol: float = 1e-4) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.n_classes, self.C, self.max_iter, self.tol = int(n_classes), float(C), int(max_iter), float(tol)
        outputs = 1 if n_classes == 2 else n_classes
        self.mix = nn.Parameter(torch.zeros(n_layers, dtype=torch.float32))
        self.weight = nn.Parameter(torch.zeros(n_features, outputs, dtype=torch.float32))
        self.bias = nn.Parameter(torch.zeros(outputs, dtype=torch.float32))
        self.register_buffer("mean", torch.zeros(1, n_layers, n_features, dtype=torch.float32))
        self.register_buffer("scale", torch.ones(1, n_layers, n_features, dtype=torch.float32))
        self.n_iter = 0

    def fit_scaler(self, x: torch.Tensor) -> None:
        """Store each layer's training mean and std (the head standardises its input)."""
        mean, scale = _moments(x, 0)
        self.mean.copy_(mean)
        self.scale.copy_(scale)

    def layer_weights(self) -> torch.Tensor:
        """The softmax weight of each layer, shape ``(L,)``; they sum to 1."""
        return torch.softmax(self.mix, dim=0)

    def _logits(self, z: torch.Tensor) -> torch.Tensor:
        mixed = torch.einsum("nld,l->nd", z, self.layer_weights())
        out = mixed @ self.weight + self.bias
        return torch.cat([torch.zeros_like(out), out], dim=-1) if self.n_classes == 2 else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._logits((x - self.mean) / self.scale)

    def training_step(self, batch, batch_idx):
        x, y = batch
        z = (x - self.mean) / self.scale
        n = z.shape[0]
        opt = self.optimizers()

        def objective():
            return F.cross_entropy(self._logits(z), y) + self.weight.pow(2).sum() / (2.0 * self.C * n)

        def closure():
            opt.zero_grad()
            loss = objective()
            self.manual_backward(loss)
            return loss

        _, self.n_iter = _lbfgs_step(opt, closure)
        with torch.no_grad():  # the step returns its first evaluation's loss: the objective at the start
            loss = objective()
        self.log("loss", loss, on_step=False, on_epoch=True)
        self.log("lbfgs_iterations", float(self.n_iter), on_step=False, on_epoch=True)
        return loss

    def configure_optimizers(self):
        return _lbfgs(self.parameters(), self.max_iter, self.tol)


# ---------------------------------------------------------------------------------------------
# validation helpers


def _check_features(X, ndim: int, name: str = "features") -> np.ndarray:
    X = np.asarray(X)
    if X.dtype == object or not np.issubdtype(X.dtype, np.number) or X.dtype.kind == "c":
        raise TypeError(f"{name} must be real numbers, got dtype {X.dtype}")
    if X.ndim != ndim:
        shape = "(n, d)" if ndim == 2 else "(n, layers, d)"
        raise ValueError(f"{name} must have shape {shape}, got an array of shape {X.shape}")
    if X.shape[0] == 0 or X.shape[-1] == 0:
        raise ValueError(f"{name} is empty (shape {X.shape})")
    if not np.isfinite(X).all():
        raise ValueError(f"{name} contain NaN or inf; heads need finite features")
    with np.errstate(over="ignore"):
        X = np.ascontiguousarray(X, dtype=np.float32)
    if not np.isfinite(X).all():
        raise ValueError(f"{name} hold values beyond float32's range (about 3.4e38), in which heads compute; "
                         "rescale them")
    return X


def _column_names(X: Any) -> np.ndarray | None:
    """A DataFrame's column names (when all are text, as sklearn records them), else None."""
    columns = getattr(X, "columns", None)
    if columns is None or not all(isinstance(c, str) for c in columns):
        return None
    return np.asarray(list(columns), dtype=object)


def _check_solver(C: Any, max_iter: Any, tol: Any) -> None:
    """The linear solver's settings, checked the same way for every entry point."""
    _check_number("C", C, lambda v: v > 0, "a positive number")
    _check_count("max_iter", max_iter)
    _check_number("tol", tol, lambda v: v > 0, "a positive number")


def _hidden(hidden: Any) -> tuple:
    """``hidden`` as a tuple of widths (one width may be given as an int, as sklearn's MLP takes it)."""
    if isinstance(hidden, numbers.Integral) and not isinstance(hidden, bool):
        return (hidden,)
    try:
        return tuple(hidden)
    except TypeError:
        raise ValueError(f"hidden must be one or two positive integer widths, got {hidden!r}") from None


def _check_number(name: str, value: Any, ok, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not ok(value):
        raise ValueError(f"{name} must be {what}, got {value!r}")


def _check_count(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _encode_labels(y, n: int, classes=None) -> tuple[np.ndarray, np.ndarray]:
    """``(classes, indices)``: the sorted label set (sklearn's ``classes_`` order) and each label's index.

    ``classes`` (optional, any order) is the full label set when ``y`` may lack some of it.
    """
    from sklearn.utils.multiclass import check_classification_targets

    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()  # a column vector, as sklearn takes it
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"y must be 1-D with one label per sample ({n}), got shape {y.shape}")
    check_classification_targets(y)  # continuous targets are an error, not thousands of classes
    if classes is None:
        classes = np.unique(y)
        if len(classes) < 2:
            raise ValueError(f"y has a single class ({classes[0].item()!r}); a classifier needs at least 2")
    else:
        given = np.asarray(classes)
        classes = np.unique(given)
        if len(classes) != len(given):
            raise ValueError(f"classes has duplicates: {given.tolist()}")
    unknown = np.setdiff1d(np.unique(y), classes)
    if unknown.size:
        raise ValueError(f"labels {unknown.tolist()} are not among the classes {classes.tolist()}")
    return classes, np.searchsorted(classes, y)


def check_known_labels(classes: np.ndarray, y) -> None:
    """Raise if ``y`` (e.g. test labels) holds labels the classifier never saw in training."""
    unseen = np.setdiff1d(np.unique(np.asarray(y)), np.asarray(classes))
    if unseen.size:
        raise ValueError(
            f"labels {unseen.tolist()} occur only in the evaluation data, never in training "
            f"(training classes: {np.asarray(classes).tolist()})"
        )


def _softmax_np(logits: torch.Tensor) -> np.ndarray:
    return torch.softmax(logits.double(), dim=-1).cpu().numpy()


# ---------------------------------------------------------------------------------------------
# sklearn-style estimator


class HeadClassifier(ClassifierMixin, BaseEstimator):
    """A head as a scikit-learn classifier: ``fit(features, y)``, ``predict``, ``predict_proba``.

    Args:
        kind: ``"linear"``, ``"mlp"`` or ``"layer_mix"`` (features ``(n, layers, d)``).
        C: inverse L2 strength for ``linear`` and ``layer_mix`` (sklearn's meaning; 1 = published).
        max_iter: L-BFGS iterations for ``linear`` and ``layer_mix``.
        tol: L-BFGS gradient tolerance.
        hidden: hidden layer widths of ``mlp`` (one or two layers).
        dropout: dropout of ``mlp``.
        lr: AdamW learning rate of ``mlp``.
        weight_decay: AdamW weight decay of ``mlp``.
        max_epochs: epoch limit of ``mlp``.
        patience: epochs without validation improvement before ``mlp`` stops.
        batch_size: minibatch size of ``mlp``.
        validation_fraction: stratified share of the training data that ``mlp`` validates on.
        standardize: z-score features inside the head (``linear``; the others always do).
        accelerator: Lightning accelerator; heads are small, so ``"cpu"`` by default.
        random_state: seed of the fit (initialisation, minibatches, dropout, validation split).
        trainer_kwargs: extra arguments for the Lightning ``Trainer`` that fits the head, e.g.
            ``{"logger": CSVLogger("logs"), "enable_checkpointing": True, "enable_progress_bar":
            True, "default_root_dir": "runs"}``. Without them a fit writes nothing and shows no
            progress bar. The heads log ``train_loss``/``val_loss`` (mlp), ``loss`` (layer_mix)
            and ``lbfgs_iterations`` (linear, layer_mix).

    Attributes:
        classes_: the sorted labels, the column order of ``predict_proba``.
        module_: the fitted Lightning module.
        n_iter_: L-BFGS iterations (linear, layer_mix) or epochs trained (mlp).
        layer_weights_: the learned softmax weights over layers (layer_mix).

    Examples:
        >>> import numpy as np
        >>> from tivit.heads import HeadClassifier
        >>> rng = np.random.default_rng(0)
        >>> X, y = rng.normal(size=(40, 5)), np.repeat(["a", "b"], 20)
        >>> X[y == "b"] += 1.0
        >>> head = HeadClassifier("linear").fit(X, y)
        >>> head.predict(X[:2]).tolist()
        ['a', 'a']
    """

    def __init__(
        self,
        kind: str = "linear",
        C: float = 1.0,
        max_iter: int = 500,
        tol: float = 1e-4,
        hidden: tuple[int, ...] = (256,),
        dropout: float = 0.2,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        max_epochs: int = 200,
        patience: int = 20,
        batch_size: int = 64,
        validation_fraction: float = 0.2,
        standardize: bool = True,
        accelerator: str = "cpu",
        random_state: int | None = 0,
        trainer_kwargs: dict | None = None,
    ) -> None:
        self.kind = kind
        self.C = C
        self.max_iter = max_iter
        self.tol = tol
        self.hidden = hidden
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.patience = patience
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.standardize = standardize
        self.accelerator = accelerator
        self.random_state = random_state
        self.trainer_kwargs = trainer_kwargs

    def _check_params(self) -> None:
        if self.kind not in HEADS:
            raise ValueError(f"kind={self.kind!r} is not a head; choose one of {HEADS}")
        _check_solver(self.C, self.max_iter, self.tol)
        check_seed(self.random_state)
        if self.kind == "mlp":
            hidden = _hidden(self.hidden)
            if not 1 <= len(hidden) <= 2 or any(isinstance(h, bool) or not isinstance(h, numbers.Integral) or h < 1
                                                for h in hidden):
                raise ValueError(f"hidden must be one or two positive integer widths, got {self.hidden!r}")
            _check_number("dropout", self.dropout, lambda v: 0 <= v < 1, "in [0, 1)")
            _check_number("validation_fraction", self.validation_fraction, lambda v: 0 < v < 1, "in (0, 1)")
            _check_number("lr", self.lr, lambda v: v > 0, "a positive number")
            _check_number("weight_decay", self.weight_decay, lambda v: v >= 0, "a non-negative number")
            _check_count("max_epochs", self.max_epochs)  # Lightning reads -1 as "train forever"
            _check_count("patience", self.patience)
            _check_count("batch_size", self.batch_size)
        _check_trainer_kwargs(self.trainer_kwargs)

    @property
    def _seed(self) -> int:
        return check_seed(self.random_state)

    def fit(self, X, y) -> "HeadClassifier":
        """Fit the head on training features.

        Args:
            X: ``(n, d)`` features (``(n, layers, d)`` for ``layer_mix``), finite.
            y: ``(n,)`` labels, at least two classes.
        """
        self._check_params()
        self.__dict__.pop("feature_names_in_", None)
        names = _column_names(X)
        if names is not None:  # a DataFrame's columns, checked at predict as sklearn does
            self.feature_names_in_ = names
        X = _check_features(X, 3 if self.kind == "layer_mix" else 2)
        self.__dict__.pop("layer_weights_", None)  # a refit as another kind must not keep the last one's
        self.classes_, y_idx = _encode_labels(y, X.shape[0])
        self.n_features_in_ = int(np.prod(X.shape[1:]))
        self.input_shape_ = X.shape[1:]
        with _isolated_seed(self._seed), _quiet():
            if self.kind == "linear":
                self.module_ = _fit_linear(X[None], y_idx, len(self.classes_), self.C, self.max_iter, self.tol,
                                           self.standardize, self.accelerator, trainer_kwargs=self.trainer_kwargs)
            elif self.kind == "layer_mix":
                self.module_ = _fit_layer_mix(X, y_idx, len(self.classes_), self.C, self.max_iter, self.tol,
                                              self.accelerator, self.trainer_kwargs)
                self.layer_weights_ = self.module_.layer_weights().detach().cpu().numpy()
            else:
                self.module_ = self._fit_mlp(X, y_idx)
        self.n_iter_ = getattr(self.module_, "n_iter", None)
        return self

    def _fit_mlp(self, X: np.ndarray, y_idx: np.ndarray) -> MLPHead:
        from sklearn.model_selection import train_test_split

        counts = np.bincount(y_idx)
        n, k = len(y_idx), len(counts)
        n_val = int(round(self.validation_fraction * n))
        # stratified: every class on both sides; a split that needs more than validation_fraction of
        # the data (two or three series per class) is not taken, as training on them all pays more
        can_validate = counts.min() >= 2 and k <= n_val <= n - k
        if can_validate:
            fit_idx, val_idx = train_test_split(np.arange(n), test_size=n_val, stratify=y_idx, random_state=self._seed)
        else:
            fraction = self.validation_fraction
            warnings.warn(f"mlp head: no stratified validation split of validation_fraction={fraction:g} "
                          f"holds every class ({n} samples, {k} classes, the smallest of {counts.min()}); early "
                          f"stopping is off and the weights of the last of max_epochs={int(self.max_epochs)} epochs "
                          "are kept", UserWarning, stacklevel=3)
            fit_idx, val_idx = np.arange(n), np.arange(0)
        module = MLPHead(X.shape[1], len(counts), tuple(int(h) for h in _hidden(self.hidden)), self.dropout, self.lr,
                         self.weight_decay)
        x_fit, y_fit = torch.from_numpy(X[fit_idx]), torch.from_numpy(y_idx[fit_idx])
        module.fit_scaler(x_fit)
        generator = torch.Generator().manual_seed(self._seed)
        train = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(x_fit, y_fit),
            batch_size=min(int(self.batch_size), len(fit_idx)),
            shuffle=True,
            generator=generator,
        )
        callbacks, val = [], None
        if can_validate:
            from lightning.pytorch.callbacks import EarlyStopping

            callbacks.append(EarlyStopping(monitor="val_loss", patience=int(self.patience), mode="min"))
            val = torch.utils.data.DataLoader(
                torch.utils.data.TensorDataset(torch.from_numpy(X[val_idx]), torch.from_numpy(y_idx[val_idx])),
                batch_size=1024,
            )
        trainer = _trainer(int(self.max_epochs), self.accelerator, callbacks, validate=can_validate,
                           trainer_kwargs=self.trainer_kwargs)
        _fit(trainer, module, train, val)
        module.n_iter = int(trainer.current_epoch)
        if module.best_state is not None:
            module.net.load_state_dict(module.best_state)
        module.best_state = None
        if not all(bool(torch.isfinite(p).all()) for p in module.net.parameters()):
            raise ValueError(f"the mlp head's training diverged (its weights are no longer finite); use a smaller "
                             f"lr than {self.lr:g}")
        return module.cpu().eval()

    def _logits(self, X) -> torch.Tensor:
        if not hasattr(self, "module_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this HeadClassifier is not fitted yet; call fit(features, y) first")
        fitted, names = getattr(self, "feature_names_in_", None), _column_names(X)
        if fitted is not None and names is not None and not np.array_equal(fitted, names):
            raise ValueError(f"the feature names differ from those seen in fit (in order): got {names.tolist()[:5]}..., "
                             f"fitted on {fitted.tolist()[:5]}...")
        X = _check_features(X, 3 if self.kind == "layer_mix" else 2)
        if X.shape[1:] != tuple(self.input_shape_):
            raise ValueError(f"features have shape {X.shape[1:]} per sample; the head was fitted on {self.input_shape_}")
        with torch.no_grad():
            x = torch.from_numpy(X)
            return self.module_(x[None])[0, 0] if self.kind == "linear" else self.module_(x)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities ``(n, n_classes)``, columns in the order of ``classes_``."""
        return _softmax_np(self._logits(X))

    def decision_function(self, X) -> np.ndarray:
        """Logits ``(n, n_classes)``; for two classes sklearn's ``(n,)`` score, > 0 meaning ``classes_[1]``."""
        logits = self._logits(X).double().cpu().numpy()
        return logits[:, 1] - logits[:, 0] if len(self.classes_) == 2 else logits

    def predict(self, X) -> np.ndarray:
        """Predicted labels ``(n,)``."""
        logits = self._logits(X)
        return self.classes_[logits.argmax(dim=-1).cpu().numpy()]

    def score(self, X, y, sample_weight=None) -> float:
        """Accuracy; labels never seen in training are an error, not a silent miss."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "module_")
        check_known_labels(self.classes_, y)
        return super().score(X, y, sample_weight=sample_weight)


def _fit_linear(X: np.ndarray, y_idx: np.ndarray, n_classes: int, C: float, max_iter: int, tol: float,
                standardize: bool, accelerator: str, groups: np.ndarray | None = None,
                trainer_kwargs: dict | None = None) -> LinearHead:
    """Fit linear heads on ``X`` ``(L, n, d)`` sharing the labels; ``groups`` ``(G, n)`` 0/1 fit masks."""
    n_groups = 1 if groups is None else groups.shape[0]
    module = LinearHead(X.shape[2], n_classes, X.shape[0], n_groups, C, max_iter, tol, standardize)
    x, y = torch.from_numpy(X), torch.from_numpy(np.asarray(y_idx, dtype=np.int64))
    g = torch.zeros(0) if groups is None else torch.from_numpy(np.asarray(groups, dtype=np.float32))
    module.fit_scaler(x, g if groups is not None else None)
    _fit(_trainer(1, accelerator, trainer_kwargs=trainer_kwargs), module, _full_batch_loader(x, y, g))
    if module.at_limit:  # as scikit-learn's lbfgs says it
        total = module.iterations.size
        what = "the linear head" if total == 1 else f"{module.at_limit} of {total} linear heads"
        warnings.warn(f"L-BFGS stopped {what} at max_iter={max_iter} before the gradient met tol={tol:g}; "
                      "increase max_iter (or make C smaller) for a converged fit", ConvergenceWarning, stacklevel=3)
    return module.cpu().eval()


def _fit_layer_mix(X: np.ndarray, y_idx: np.ndarray, n_classes: int, C: float, max_iter: int, tol: float,
                   accelerator: str, trainer_kwargs: dict | None = None) -> LayerMixHead:
    module = LayerMixHead(X.shape[1], X.shape[2], n_classes, C, max_iter, tol)
    x, y = torch.from_numpy(X), torch.from_numpy(np.asarray(y_idx, dtype=np.int64))
    module.fit_scaler(x)
    _fit(_trainer(1, accelerator, trainer_kwargs=trainer_kwargs), module, _full_batch_loader(x, y))
    if module.n_iter >= max_iter:  # torch's L-BFGS stopped by its iteration budget, not its tolerance
        warnings.warn(f"L-BFGS stopped the layer_mix head at max_iter={max_iter} before the gradient met "
                      f"tol={tol:g}; increase max_iter for a converged fit", ConvergenceWarning, stacklevel=3)
    return module.cpu().eval()


# ---------------------------------------------------------------------------------------------
# one linear head per layer, and the layer choice


class LayerwiseLinear:
    """One linear head per layer, all fitted in one solver run (see :func:`fit_linear_per_layer`).

    Attributes:
        classes_: class labels, the column order of the probabilities.
        module_: the fitted :class:`LinearHead` with one problem per layer.
    """

    def __init__(self, classes: np.ndarray, module: LinearHead) -> None:
        self.classes_ = classes
        self.module_ = module

    @property
    def n_layers(self) -> int:
        """Layers the head was fitted on (one independent problem each)."""
        return int(self.module_.weight.shape[1])

    def _logits(self, features) -> torch.Tensor:
        X = _check_features(features, 3)
        if X.shape[1] != self.n_layers:
            raise ValueError(f"features have {X.shape[1]} layers; the heads were fitted on {self.n_layers}")
        if X.shape[2] != self.module_.weight.shape[2]:
            raise ValueError(f"features have {X.shape[2]} values per layer; the heads were fitted on "
                             f"{self.module_.weight.shape[2]}")
        with torch.no_grad():
            return self.module_(torch.from_numpy(X).transpose(0, 1).contiguous())[0]

    def predict_proba(self, features) -> np.ndarray:
        """Probabilities ``(layers, n, n_classes)``."""
        return _softmax_np(self._logits(features))

    def predict(self, features) -> np.ndarray:
        """Labels ``(layers, n)``."""
        return self.classes_[self._logits(features).argmax(-1).cpu().numpy()]

    def score(self, features, y) -> np.ndarray:
        """Accuracy of each layer's head, ``(layers,)``."""
        check_known_labels(self.classes_, y)
        return (self.predict(features) == np.asarray(y)[None, :]).mean(axis=1)


def fit_linear_per_layer(
    features,
    y,
    *,
    C: float = 1.0,
    max_iter: int = 500,
    tol: float = 1e-4,
    classes: np.ndarray | None = None,
    accelerator: str = "cpu",
    random_state: int = 0,
) -> LayerwiseLinear:
    """Fit the ``linear`` head on every layer at once.

    The per-layer problems are independent: one solver run fits all of them, each with its own
    L-BFGS as scikit-learn would run it, their products batched over the layers
    (:mod:`tivit._multinomial`). ``.module_.iterations`` holds each layer's iteration count.

    Args:
        features: ``(n, layers, d)`` embeddings (raw: each head standardises its own layer).
        y: ``(n,)`` labels.
        C: inverse L2 strength (sklearn's meaning).
        max_iter: L-BFGS iterations.
        tol: L-BFGS gradient tolerance.
        classes: the full label set, when ``y`` may lack some (cross-validation folds).
        accelerator: Lightning accelerator.
        random_state: seed (the fit is deterministic anyway; kept for symmetry).
    """
    _check_solver(C, max_iter, tol)
    random_state = check_seed(random_state)
    X = _check_features(features, 3)
    classes, y_idx = _encode_labels(y, X.shape[0], None if classes is None else np.asarray(classes))
    if len(classes) < 2:
        raise ValueError(f"classes {classes.tolist()} hold a single class; a classifier needs at least 2")
    with _isolated_seed(random_state), _quiet():
        module = _fit_linear(np.ascontiguousarray(X.transpose(1, 0, 2)), y_idx, len(classes), C, max_iter, tol,
                             True, accelerator)
    return LayerwiseLinear(classes, module)


@dataclass(frozen=True)
class LayerChoice:
    """The outcome of :func:`choose_layer`: the layer, and every layer's mean CV accuracy."""

    layer: int
    scores: dict[int, float]
    n_splits: int


def choose_layer(
    features,
    y,
    layers: Sequence[int] | None = None,
    *,
    cv: int = 5,
    C: float = 1.0,
    max_iter: int = 500,
    random_state: int = 0,
) -> LayerChoice:
    """Pick the layer whose linear head has the best stratified cross-validated accuracy.

    Only the data given is used (pass training data only). Ties go to the lower mean
    cross-validated log-loss, then to the shallower layer. :mod:`tivit.search` can replace this
    with an Optuna study over more choices; the estimators call it through this one function.

    Args:
        features: ``(n, layers, d)`` embeddings, or an object with ``.values`` and ``.layers``
            (:class:`tivit.embed.Embeddings`).
        y: ``(n,)`` labels.
        layers: the layer number of each slice of ``features`` (default: ``.layers`` or 1..L).
        cv: folds per repeat; the folds follow :func:`tivit.cv.cv_folds` (stratified, capped by
            the smallest class, repeated on small sets), the rule the search uses too.
        C: inverse L2 strength of the linear head.
        max_iter: L-BFGS iterations.
        random_state: seed of the fold split.
    """
    from tivit.cv import cv_folds

    _check_solver(C, max_iter, 1e-4)
    random_state = check_seed(random_state)
    if hasattr(features, "values") and hasattr(features, "layers"):
        layers = tuple(features.layers) if layers is None else layers
        features = features.values
    X = _check_features(features, 3)
    layers = tuple(range(1, X.shape[1] + 1)) if layers is None else tuple(int(k) for k in layers)
    if len(layers) != X.shape[1]:
        raise ValueError(f"{len(layers)} layer numbers given for {X.shape[1]} layers of features")
    if len(set(layers)) != len(layers):
        raise ValueError(f"layers {list(layers)} repeat a layer number")
    classes, y_idx = _encode_labels(y, X.shape[0])
    if len(layers) == 1:
        return LayerChoice(layers[0], {layers[0]: float("nan")}, 0)
    folds = cv_folds(y_idx, cv, seed=random_state)
    groups = np.zeros((len(folds), X.shape[0]), dtype=np.float32)
    for g, (fit_idx, _) in enumerate(folds):
        groups[g, fit_idx] = 1.0
    # every fold x layer head in one solver run: the features are shared, only the masks differ
    with _isolated_seed(random_state), _quiet():
        module = _fit_linear(np.ascontiguousarray(X.transpose(1, 0, 2)), y_idx, len(classes), C, max_iter, 1e-4,
                             True, "cpu", groups)
        with torch.no_grad():
            logits = module(torch.from_numpy(np.ascontiguousarray(X.transpose(1, 0, 2))))  # (G, L, n, K)
    log_proba = torch.log_softmax(logits.double(), dim=-1).numpy()
    accuracy, log_loss = np.zeros(len(layers)), np.zeros(len(layers))
    for g, (_, val_idx) in enumerate(folds):
        truth = y_idx[val_idx]
        lp = log_proba[g][:, val_idx]  # (L, n_val, K)
        accuracy += (lp.argmax(-1) == truth[None]).mean(1) / len(folds)
        log_loss += -lp[:, np.arange(len(truth)), truth].mean(1) / len(folds)
    order = np.lexsort((np.asarray(layers), log_loss, -np.round(accuracy, 12)))  # then the shallower layer
    return LayerChoice(layers[int(order[0])], {k: float(a) for k, a in zip(layers, accuracy)}, len(folds))
