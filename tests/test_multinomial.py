"""tivit._multinomial: the per-problem L-BFGS behind the linear head.

The compact-form direction equals the textbook two-loop recursion (pair order, ring wrap-around,
dropped pairs), and a whole solve lands where scikit-learn's L-BFGS lands, in as many iterations.
"""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from tivit._multinomial import _HISTORY, Problems, _History, solve


def _two_loop(g, pairs):
    """-H g by Nocedal & Wright's Algorithm 7.4 in float64 over the last ``_HISTORY`` pairs pushed,
    without those that have no curvature (s.y <= 0; they keep their slot in the ring)."""
    pairs = [(s, y) for s, y in pairs[-_HISTORY:] if s @ y > 1e-10 * (y @ y)]
    q, alpha = g.copy(), []
    for s, y in reversed(pairs):
        a = (s @ q) / (s @ y)
        q -= a * y
        alpha.append(a)
    s, y = pairs[-1]
    r = q * (s @ y) / (y @ y)
    for (s, y), a in zip(pairs, reversed(alpha)):
        r += s * (a - (y @ r) / (s @ y))
    return -r


@pytest.mark.parametrize("n_pairs", [1, 4, _HISTORY + 3])
def test_compact_direction_equals_the_two_loop_recursion(n_pairs):
    rng = np.random.default_rng(n_pairs)
    A, size = 3, 12
    B = [m @ m.T + np.eye(size) for m in rng.normal(size=(A, size, size))]  # one SPD curvature per problem
    history = _History(A, size, torch.device("cpu"))
    pairs = [[] for _ in range(A)]
    for i in range(n_pairs):
        s = rng.normal(size=(A, size))
        y = np.stack([B[a] @ s[a] for a in range(A)])
        if i == n_pairs - 2 or n_pairs == 1:
            y[1] = -s[1]  # no curvature for problem 1: this pair must be dropped for it alone
        history.push(torch.tensor(s, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))
        for a in range(A):
            pairs[a].append((s[a], y[a]))
        g = rng.normal(size=(A, size))
        got = history.direction(torch.tensor(g, dtype=torch.float32)).double().numpy()
        for a in range(A):
            if not any(s @ y > 0 for s, y in pairs[a]):
                np.testing.assert_allclose(got[a], -g[a], rtol=1e-5)  # no usable pair: steepest descent
                continue
            want = _two_loop(g[a], pairs[a])
            np.testing.assert_allclose(got[a], want, rtol=2e-3, atol=2e-3 * np.abs(want).max(),
                                       err_msg=f"problem {a}, after pair {i}")


@pytest.mark.parametrize("k", [2, 3])
def test_one_solve_matches_sklearn_problem_by_problem(k):
    """Three layers solved together: each lands on sklearn's solution in about its iterations."""
    rng = np.random.default_rng(k)
    n, d = 150, 20
    y = np.arange(n) % k
    X = rng.normal(size=(3, n, d)) + 0.7 * rng.normal(size=(3, k, d))[:, y]
    X = ((X - X.mean(1, keepdims=True)) / X.std(1, keepdims=True)).astype(np.float32)
    problems = Problems(torch.from_numpy(X), torch.from_numpy(y), k, np.arange(3), None, np.full(3, 1.0 / n))
    theta, n_iter, converged = solve(problems, 500, 1e-6)
    assert converged.all()
    outputs = 1 if k == 2 else k
    for layer in range(3):
        ref = LogisticRegression(max_iter=1000, tol=1e-6).fit(X[layer].astype(np.float64), y)
        W = theta[layer, : d * outputs].reshape(d, outputs).numpy()
        np.testing.assert_allclose(W.T, ref.coef_, atol=2e-3 * np.abs(ref.coef_).max())
        assert abs(int(n_iter[layer]) - int(ref.n_iter_[0])) <= max(3, ref.n_iter_[0] // 5)
    early = solve(problems, 3, 1e-6)
    assert early[1].tolist() == [3, 3, 3] and not early[2].any()
