"""Many L2 multinomial logistic regressions on shared features, each solved by its own L-BFGS.

The linear head is fitted on every layer at once, and the layer choice fits it on every fold x
layer: many independent problems that read the same features and labels. torch's L-BFGS on their
summed objective would model all of them with one curvature history (so every problem takes as
many iterations as the hardest mix of them needs) and would multiply by the features again at
every trial step of its line search. Here every problem keeps its own history and step length,
as scipy's L-BFGS-B (what scikit-learn's ``lbfgs`` calls) does for one problem, and:

- the line search moves along the logits: with ``U = X D`` for the direction ``D``, the logits at
  step ``t`` are ``Z + t U``, so a trial step costs elementwise work only; an iteration costs two
  products with the features, one for ``U`` and one for the gradient;
- a problem stops at its own tolerance and costs nothing from then on;
- the products of all problems that read one layer run as one matrix product.

A problem's objective is scikit-learn's ``C sum_i s_i CE_i + ||W||^2 / 2`` (``s_i`` the 0/1
sample weights, the intercept not penalised) divided by ``C sum_i s_i``; its features may be
standardised on top (``(x - mean) / scale``), which is folded into the products.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

_C1, _C2 = 1e-3, 0.9  # sufficient decrease and curvature constants, as scipy's line search
_MAX_TRIALS = 30  # trial steps per line search
_HISTORY = 10  # correction pairs kept per problem, as scikit-learn's L-BFGS-B


def _host(t: torch.Tensor) -> np.ndarray:
    """A small tensor as float64 NumPy: the per-problem bookkeeping runs on the host."""
    return t.detach().cpu().numpy().astype(np.float64)


def _dev(a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """A NumPy array as a tensor on the device of ``like``."""
    return torch.from_numpy(np.ascontiguousarray(a)).to(like.device)


@dataclass
class Problems:
    """``P`` problems that share features and labels.

    Attributes:
        x: ``(L, n, d)`` float32 features, contiguous.
        labels: ``(n,)`` int64 class indices.
        n_classes: ``K``; two classes use one weight vector (the logit of class 1 against 0).
        layer: ``(P,)`` which slice of ``x`` each problem reads.
        weight: ``(P, n)`` float64 sample weights of each problem, rows summing to 1; None for
            ``1 / n`` everywhere.
        lam: ``(P,)`` penalty ``1 / (C sum_i s_i)`` (NumPy float64).
        mean, scale: ``(P, d)`` float32 standardisation applied to the features on top, or None.
    """

    x: torch.Tensor
    labels: torch.Tensor
    n_classes: int
    layer: np.ndarray
    weight: torch.Tensor | None
    lam: np.ndarray
    mean: torch.Tensor | None = None
    scale: torch.Tensor | None = None

    @property
    def outputs(self) -> int:
        return 1 if self.n_classes == 2 else self.n_classes

    @property
    def size(self) -> int:
        """Parameters per problem: ``d * outputs`` weights, then ``outputs`` intercepts."""
        return (self.x.shape[2] + 1) * self.outputs


class _Active:
    """The problems still being solved, as positions into the full set; products grouped by layer."""

    def __init__(self, problems: Problems, ids: np.ndarray) -> None:
        self.ids = ids
        index = _dev(ids, problems.x)
        layers = problems.layer[ids]
        # one problem per layer, every layer, in order: one batched product
        self.dense = len(ids) == problems.x.shape[0] and bool((layers == np.arange(len(ids))).all())
        self.by_layer = [(int(l), np.flatnonzero(layers == l)) for l in np.unique(layers)]
        self.weight = None if problems.weight is None else problems.weight[index]
        self.lam = problems.lam[ids]
        self.mean = None if problems.mean is None else problems.mean[index]
        self.scale = None if problems.scale is None else problems.scale[index]


def _split(theta: torch.Tensor, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    A, size = theta.shape
    k = size // (d + 1)
    return theta[:, : d * k].view(A, d, k), theta[:, d * k :]


def _times_w(x: torch.Tensor, act: _Active, W: torch.Tensor) -> torch.Tensor:
    """``(x[layer(p)] @ W[p])^T`` for every active problem: ``(A, k, n)``.

    Computed as ``W^T x^T``, which writes the class-major result directly; MKL runs this
    orientation 2.8x faster than ``x W`` for 10 columns on an AMD EPYC (and no slower on the
    machine of earlier records, where every layout ran alike). The problems that read one layer
    share one product (their weights stacked as rows).
    """
    Wt = W.transpose(1, 2)  # (A, k, d)
    if act.dense:
        return torch.bmm(Wt, x.transpose(1, 2))
    A, k, d = Wt.shape
    out = torch.empty(A, k, x.shape[1], dtype=x.dtype, device=x.device)
    for layer, rows in act.by_layer:
        if len(rows) == 1:
            torch.mm(Wt[rows[0]], x[layer].T, out=out[rows[0]])
        else:
            rows_t = _dev(rows, x)
            out[rows_t] = (Wt[rows_t].reshape(-1, d) @ x[layer].T).view(len(rows), k, -1)
    return out


def _r_times(x: torch.Tensor, act: _Active, R: torch.Tensor) -> torch.Tensor:
    """``R[p] @ x[layer(p)]`` for every active problem: ``(A, k, d)`` from ``R`` ``(A, k, n)``."""
    if act.dense:
        return torch.bmm(R, x)
    A, k, n = R.shape
    out = torch.empty(A, k, x.shape[2], dtype=x.dtype, device=x.device)
    for layer, rows in act.by_layer:
        if len(rows) == 1:
            torch.mm(R[rows[0]], x[layer], out=out[rows[0]])
        else:
            rows_t = _dev(rows, x)
            out[rows_t] = (R[rows_t].reshape(-1, n) @ x[layer]).view(len(rows), k, -1)
    return out


def _logits_of(problems: Problems, act: _Active, theta: torch.Tensor) -> torch.Tensor:
    """``(X W + b)^T`` of every active problem for parameters (or a direction) ``theta``: ``(A, k, n)`` float64."""
    W, b = _split(theta, problems.x.shape[2])
    if act.scale is not None:
        W = W / act.scale[..., None]
        b = b - torch.einsum("ad,adk->ak", act.mean, W)
    product = _times_w(problems.x, act, W)
    out = torch.empty(product.shape, dtype=torch.float64, device=product.device)
    return torch.add(product, b.double()[:, :, None], out=out)


def _gradient_of(problems: Problems, act: _Active, residual: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Gradient ``(A, size)`` float32 from the weighted residual ``d loss / d logits`` ``(A, k, n)``."""
    gW = _r_times(problems.x, act, residual.float()).transpose(1, 2)  # (A, d, k)
    gb = residual.sum(2).float()
    if act.scale is not None:
        gW = (gW - act.mean[..., None] * gb[:, None, :]) / act.scale[..., None]
    W, _ = _split(theta, problems.x.shape[2])
    gW = gW + _dev(act.lam.astype(np.float32), W)[:, None, None] * W
    return torch.cat([gW.reshape(len(gW), -1), gb], dim=1)


def _data_term(problems: Problems, weight: torch.Tensor | None,
               logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted mean cross-entropy ``(B,)`` and its gradient in the logits ``(B, k, n)`` (float64).

    Logits are class-major (``(B, k, n)``): the softmax reduces across ``k`` rows of ``n``
    contiguous values, which vectorises, where a reduction over a last axis of 10 would not.
    """
    full = torch.nn.functional.pad(logits, (0, 0, 1, 0)) if problems.n_classes == 2 else logits
    top = full.amax(1, keepdim=True)
    e = torch.exp(full - top)
    total = e.sum(1, keepdim=True)
    labels = problems.labels.expand(full.shape[0], 1, -1)
    ce = (total.log().add_(top).sub_(full.gather(1, labels)))[:, 0]  # (B, n)
    residual = e.div_(total)
    residual.scatter_add_(1, labels, torch.full_like(residual[:, :1], -1.0))
    if weight is None:
        w = 1.0 / full.shape[2]
        loss = ce.sum(-1) * w
        residual.mul_(w)
    else:
        loss = (ce * weight).sum(-1)
        residual.mul_(weight[:, None, :])
    if problems.n_classes == 2:
        residual = residual[:, 1:]
    return loss, residual


def _dot(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Row-wise dot products ``(A,)`` of ``(A, m)`` rows, as float64."""
    return _host(torch.linalg.vecdot(a, b))


@dataclass
class _Step:
    """What the line search hands back for each active problem."""

    t: np.ndarray  # accepted step, 0 where the search failed
    logits: torch.Tensor  # at the accepted step
    data: np.ndarray  # mean cross-entropy there
    residual: torch.Tensor  # its gradient in the logits
    ok: np.ndarray  # a step that decreases the objective was found


def _trial(problems: Problems, act: _Active, sel: np.ndarray | None, logits: torch.Tensor, u: torch.Tensor,
           t: np.ndarray, ww: np.ndarray, wd: np.ndarray, dd: np.ndarray):
    """``phi(t)``, ``phi'(t)`` and the logits, data term and residual at ``t`` for the problems ``sel``."""
    lam, weight = act.lam, act.weight
    if sel is not None:
        index = _dev(sel, logits)
        logits, u, lam = logits[index], u[index], lam[sel]
        ww, wd, dd = ww[sel], wd[sel], dd[sel]
        weight = None if weight is None else weight[index]
    z = torch.addcmul(logits, _dev(t, logits)[:, None, None], u)
    data, residual = _data_term(problems, weight, z)
    data = _host(data)
    f = data + 0.5 * lam * (ww + 2 * t * wd + t * t * dd)
    df = _host(torch.linalg.vecdot(residual.reshape(len(t), -1), u.reshape(len(t), -1))) + lam * (wd + t * dd)
    return f, df, z, data, residual


def _line_search(problems: Problems, act: _Active, logits: torch.Tensor, u: torch.Tensor, f0: np.ndarray,
                 df0: np.ndarray, ww: np.ndarray, wd: np.ndarray, dd: np.ndarray, t0: np.ndarray) -> _Step:
    """Strong-Wolfe step along ``theta + t D`` for every problem, evaluated on the logits ``Z + t U``.

    ``phi(t) = data(Z + t U) + lam / 2 ||W + t D_W||^2``, so no trial costs a product with the
    features. Bracketing with safeguarded cubic interpolation (Nocedal & Wright, Alg. 3.5/3.6).
    """
    f, df, z, data, residual = _trial(problems, act, None, logits, u, t0, ww, wd, dd)
    accept = (f <= f0 + _C1 * t0 * df0) & (np.abs(df) <= -_C2 * df0)
    # the rows of a problem no trial accepts keep the first trial's values; t = 0 marks them
    step = _Step(np.where(accept, t0, 0.0), z, data, residual, accept.copy())
    if accept.all():
        return step
    t = t0.copy()
    lo, f_lo, df_lo = np.zeros_like(t0), f0.copy(), df0.copy()
    hi, f_hi, df_hi = np.full_like(t0, np.inf), np.zeros_like(t0), np.zeros_like(t0)
    sel = np.arange(len(t0))
    for trial in range(_MAX_TRIALS):
        if trial:
            f, df, z, data, residual = _trial(problems, act, sel, logits, u, t[sel], ww, wd, dd)
            accept = (f <= f0[sel] + _C1 * t[sel] * df0[sel]) & (np.abs(df) <= -_C2 * df0[sel])
            if accept.any():
                hit = sel[accept]
                step.t[hit], step.ok[hit], step.data[hit] = t[hit], True, data[accept]
                rows, index = _dev(hit, z), _dev(np.flatnonzero(accept), z)
                step.logits[rows], step.residual[rows] = z[index], residual[index]
        rest = ~accept
        if not rest.any():
            break
        sel, f, df = sel[rest], f[rest], df[rest]
        ts = t[sel]
        # the minimiser lies below t when t overshoots (no sufficient decrease, or slope >= 0)
        upper = (f > f0[sel] + _C1 * ts * df0[sel]) | (df >= 0)
        up, down = sel[upper], sel[~upper]
        hi[up], f_hi[up], df_hi[up] = ts[upper], f[upper], df[upper]
        lo[down], f_lo[down], df_lo[down] = ts[~upper], f[~upper], df[~upper]
        a, b = lo[sel], hi[sel]
        bracketed = np.isfinite(b)
        width = np.where(bracketed, b - a, 0.0)
        with np.errstate(all="ignore"):
            cubic = _cubic_minimiser(a, f_lo[sel], df_lo[sel], np.where(bracketed, b, a + 1), f_hi[sel], df_hi[sel])
            safe = np.clip(cubic, a + 0.1 * width, np.where(bracketed, b - 0.1 * width, np.inf))
        safe = np.where(np.isfinite(safe), safe, a + 0.5 * width)
        t[sel] = np.where(bracketed, safe, 4.0 * ts)
        if (bracketed & (width <= 1e-12 * b)).all():
            break  # every interval collapsed: no better step in float64
    # a search that ran out of trials takes its best decreasing point (lo > 0 decreased phi), if any
    fallback = np.flatnonzero(~step.ok & (lo > 0))
    if len(fallback):
        _, _, z, data, residual = _trial(problems, act, fallback, logits, u, lo[fallback], ww, wd, dd)
        step.t[fallback], step.ok[fallback], step.data[fallback] = lo[fallback], True, data
        rows = _dev(fallback, z)
        step.logits[rows], step.residual[rows] = z, residual
    return step


def _cubic_minimiser(a, fa, dfa, b, fb, dfb):
    """Minimiser of the cubic through ``(a, fa, dfa)`` and ``(b, fb, dfb)`` (NaN where it has none)."""
    d1 = dfa + dfb - 3 * (fa - fb) / (a - b)
    d2 = np.sign(b - a) * np.sqrt(d1 * d1 - dfa * dfb)
    return b - (b - a) * (dfb + d2 - d1) / (dfb - dfa + 2 * d2)


class _History:
    """The last correction pairs ``(s, y)`` of every problem, and ``-H g`` in compact form.

    Byrd, Nocedal & Schnabel (1994): ``H = gamma I + [S gamma Y] M [S gamma Y]^T`` with a small
    middle matrix ``M`` built from ``S^T Y`` and ``Y^T Y`` (kept up to date one pair at a time),
    so an iteration reads the stored pairs twice (``S^T g``, ``Y^T g`` and the new pair's
    products in one pass, then ``H g``) instead of a two-loop recursion's ``4m`` vector
    operations. A pair that carries no curvature for a problem (``s . y <= 0``; convexity and the
    Wolfe steps make that rare) is stored as zeros with a unit diagonal, which leaves that
    problem's ``H`` exactly as without the pair; unlike scipy, which then keeps an older pair, it
    still takes its slot, as the problems share one ring of slots.
    """

    def __init__(self, A: int, size: int, device: torch.device) -> None:
        # s of each slot, then y of each
        self.pairs = torch.zeros(A, 2 * _HISTORY, size, dtype=torch.float32, device=device)
        self.sy = np.zeros((A, _HISTORY, _HISTORY))  # [i, j] = s_i . y_j
        self.yy = np.zeros((A, _HISTORY, _HISTORY))
        self.valid = np.zeros((A, _HISTORY), dtype=bool)
        self.gamma = np.ones(A)
        self.order: list[int] = []  # slots in use, oldest first
        self.count = 0
        self.pending: int | None = None  # the slot whose products with the others are not taken yet

    def keep(self, rows: np.ndarray) -> None:
        """Keep the problems ``rows`` only (the others have finished)."""
        self.pairs = self.pairs[_dev(rows, self.pairs)]
        self.sy, self.yy, self.valid, self.gamma = self.sy[rows], self.yy[rows], self.valid[rows], self.gamma[rows]

    def forget(self, rows: np.ndarray) -> None:
        """Drop every pair of the problems ``rows`` (their next direction is steepest descent)."""
        self.pairs[_dev(rows, self.pairs)] = 0.0
        self.valid[rows], self.sy[rows], self.yy[rows], self.gamma[rows] = False, 0.0, 0.0, 1.0

    def push(self, s: torch.Tensor, y: torch.Tensor) -> None:
        """Store a new pair (over the oldest once ``_HISTORY`` are kept). Its products with the
        other pairs, and whether it carries curvature, are taken with the next direction's
        products, in the same pass over the pairs."""
        if self.pending is not None:
            self._products(s)  # two pushes in a row: take the first one's products now
        slot = self.count % _HISTORY
        self.count += 1
        if slot in self.order:
            self.order.remove(slot)
        self.order.append(slot)
        self.pairs[:, slot] = s
        self.pairs[:, _HISTORY + slot] = y
        self.pending = slot

    def _products(self, g: torch.Tensor) -> np.ndarray:
        """``[S^T g, Y^T g]`` ``(A, 2H)``, and the pending pair's products with every pair."""
        H = _HISTORY
        slot, self.pending = self.pending, None
        # (rows of the right side) x pairs^T: MKL reads the pairs at memory speed this way round
        rhs = g[:, None, :] if slot is None else torch.stack([g, self.pairs[:, slot], self.pairs[:, H + slot]], 1)
        products = _host(torch.bmm(rhs, self.pairs.transpose(1, 2)))  # (A, 1 or 3, 2H)
        if slot is not None:
            sy, yy = products[:, 1, H + slot], products[:, 2, H + slot]
            good = sy > 1e-10 * yy  # a pair without positive curvature is dropped: stored as zeros
            bad = np.flatnonzero(~good)
            if len(bad):
                rows = _dev(bad, g)
                self.pairs[rows, slot] = 0.0
                self.pairs[rows, H + slot] = 0.0
                products[bad, 1:] = 0.0  # the rows of the new pair, as taken before it was zeroed
                products[bad, 0, slot] = products[bad, 0, H + slot] = 0.0
            self.valid[:, slot] = good
            self.gamma = np.where(good, sy / np.maximum(yy, 1e-300), self.gamma)
            self.sy[:, slot, :] = products[:, 1, H:]  # s_new . y_i
            self.sy[:, :, slot] = products[:, 2, :H]  # s_i . y_new
            self.yy[:, slot, :] = self.yy[:, :, slot] = products[:, 2, H:]
        return products[:, 0]

    def direction(self, g: torch.Tensor) -> torch.Tensor:
        """``-H g`` for every problem (``-g`` before the first pair)."""
        if not self.order:
            return -g
        H = _HISTORY
        products = self._products(g)
        o = np.array(self.order)  # the small algebra runs in time order, oldest pair first
        sy, yy = self.sy[:, o][:, :, o], self.yy[:, o][:, :, o]
        invalid = ~self.valid[:, o]
        R = np.triu(sy)
        R[:, np.arange(len(o)), np.arange(len(o))] += invalid
        D = np.diagonal(sy, axis1=1, axis2=2) + invalid
        gamma = self.gamma[:, None]
        a, c = products[:, o], gamma * products[:, H + o]  # S^T g, gamma Y^T g
        q = np.linalg.solve(R, a[..., None])[..., 0]  # R^-1 S^T g
        p = np.linalg.solve(R.transpose(0, 2, 1), (D * q + gamma * np.einsum("aij,aj->ai", yy, q) - c)[..., None])
        coef = np.zeros((len(g), 1, 2 * H), dtype=np.float32)
        coef[:, 0, o] = p[..., 0]
        coef[:, 0, H + o] = -gamma * q
        Hg = torch.bmm(_dev(coef, g), self.pairs)[:, 0]
        return Hg.add_(_dev(self.gamma.astype(np.float32), g)[:, None] * g).neg_()


def solve(problems: Problems, max_iter: int, tol: float) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Minimise every problem from zero.

    Returns:
        ``theta`` ``(P, size)`` float32 (weights ``(d, outputs)`` flattened, then intercepts),
        the iterations each problem took ``(P,)``, and whether it met ``tol`` ``(P,)``.
    """
    P, size, d = len(problems.layer), problems.size, problems.x.shape[2]
    device = problems.x.device
    theta_out = torch.zeros(P, size, dtype=torch.float32, device=device)
    n_iter = np.zeros(P, dtype=np.int64)
    converged = np.zeros(P, dtype=bool)

    act = _Active(problems, np.arange(P))
    theta = torch.zeros(P, size, dtype=torch.float32, device=device)
    logits = torch.zeros(P, problems.outputs, problems.x.shape[1], dtype=torch.float64, device=device)
    f, residual = _data_term(problems, act.weight, logits)
    f = _host(f)
    g = _gradient_of(problems, act, residual, theta)
    history = _History(P, size, device)
    stuck = np.zeros(P, dtype=bool)

    for it in range(max_iter + 1):
        met = _host(g.abs().amax(1)) <= tol
        finished = met | stuck if it < max_iter else np.ones_like(met)
        if finished.any():
            ids = act.ids[finished]
            theta_out[_dev(ids, g)] = theta[_dev(finished, g)]
            converged[ids], n_iter[ids] = met[finished], it
            keep = np.flatnonzero(~finished)
            if not len(keep):
                break
            act = _Active(problems, act.ids[keep])
            rows = _dev(keep, g)
            theta, logits, g, f, stuck = theta[rows], logits[rows], g[rows], f[keep], stuck[keep]
            history.keep(keep)

        D = history.direction(g)
        df0 = _dot(g, D)
        uphill = np.flatnonzero(df0 >= 0)  # pairs that lost positive curvature in float32: start afresh
        if len(uphill):
            history.forget(uphill)
            rows = _dev(uphill, g)
            D[rows] = -g[rows]
            df0 = _dot(g, D)
        fresh = ~history.valid.any(1)  # steepest descent: a first step of unit length, as scipy
        t0 = np.where(fresh, 1.0 / np.sqrt(_dot(g, g)), 1.0) if fresh.any() else np.ones(len(df0))

        W, DW = (_split(v, d)[0].reshape(len(v), -1) for v in (theta, D))
        ww, wd, dd = _dot(W, W), _dot(W, DW), _dot(DW, DW)
        u = _logits_of(problems, act, D)
        step = _line_search(problems, act, logits, u, f + 0.5 * act.lam * ww, df0, ww, wd, dd, t0)

        stuck = ~step.ok  # no decrease along a descent direction in float64: as good as it gets
        s = D * _dev(step.t.astype(np.float32), D)[:, None]
        theta = theta + s
        logits, f = step.logits, step.data
        g_new = _gradient_of(problems, act, step.residual, theta)
        if stuck.any():
            rows = _dev(np.flatnonzero(stuck), g)
            g_new[rows] = g[rows]
        history.push(s, g_new - g)
        g = g_new
    return theta_out, n_iter, converged
