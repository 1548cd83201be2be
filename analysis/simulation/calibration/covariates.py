"""The calibrated cohort's covariates: age, disease duration, EDSS, sex, DMT use, enhancing lesions.

Value multisets with the published mean, SD, minimum and maximum (:func:`covariate_multisets`)
are assigned to the 95 patients through a Gaussian copula with exact binary cross-counts
(:func:`assign_covariates`); value swaps between patients then bring the correlations of Table 2's
predictors to the target of :func:`analysis.simulation.calibration.table2.table2_covariance_target`,
and :func:`refine_covariates` moves single ages and durations while Table 2's worst normalised
distance falls. :func:`calibrated_covariates` runs the whole sequence.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from analysis.simulation.calibration.printed import MIN_ONSET_AGE, N_DMT, N_ENHANCING, N_FEMALE, N
from analysis.simulation.calibration.stable import improves
from analysis.simulation.calibration.table2 import (
    CROSS_COUNTS,
    fit_theta_minimax,
    table2_covariance_target,
    table2_residuals,
)
from analysis.stats.published import interval, published

__all__ = ["COPULA_CORRELATION", "covariate_multisets", "binary_profiles", "assign_covariates", "t2_design",
           "refine_covariates", "calibrated_covariates"]


def _fix_moments(x, *, lo, hi, mean, sd, step, rng, mean_tol, sd_tol, max_iter=20000):
    """Nudge interior values of ``x`` by +-step until mean and SD are within tolerance of targets.

    Single moves go in the direction that brings the mean closer (and, among those, the SD);
    pair moves (one value up, another down) leave the mean and move only the spread. The minimum
    and maximum (``lo``, ``hi``) are kept. Returns a sorted array on the ``step`` grid.
    """
    x = np.sort(np.clip(np.round(np.asarray(x, float) / step) * step, lo, hi))
    x[0], x[-1] = lo, hi
    n = len(x)

    def bad(v):
        return max(abs(v.mean() - mean) / mean_tol, abs(v.std(ddof=1) - sd) / sd_tol)

    for _ in range(max_iter):
        dm, ds = x.mean() - mean, x.std(ddof=1) - sd
        if abs(dm) < mean_tol and abs(ds) < sd_tol:
            return np.round(np.sort(x) / step) * step
        cand = x.copy()
        i, j = rng.integers(1, n - 1, size=2)
        if abs(dm) / mean_tol >= abs(ds) / sd_tol:
            cand[i] -= step * np.sign(dm)
        else:  # widen: move the larger of the two away from the smaller (narrow: towards)
            a, b = (i, j) if x[i] >= x[j] else (j, i)
            if a == b:
                continue
            cand[a] -= step * np.sign(ds)
            cand[b] += step * np.sign(ds)
        if cand.min() >= lo and cand.max() <= hi and not improves(bad(x), bad(cand)):  # no worse (ties kept)
            x = cand
    raise RuntimeError(f"could not reach mean {mean} and SD {sd}")


def covariate_multisets(rng, *, sd_age, sd_duration):
    """Value multisets (sorted arrays of 95) meeting the published marginals of each covariate.

    Ages and durations to 0.1 year (age mildly right-skewed, 25-71, mean 42; duration gamma-like,
    0.3-33.7, mean 8.9) with the given SDs, which must lie in the printed windows (10 and 7.8);
    EDSS on its 0, 1.0, 1.5, ... scale with mean 2.2, SD 2.2, 0-8.5.
    """
    q = (np.arange(N) + 0.5) / N
    age0 = 42 + sd_age * (stats.skewnorm.ppf(q, 2.0) - stats.skewnorm.mean(2.0)) / stats.skewnorm.std(2.0)
    age = _fix_moments(age0, lo=25, hi=71, mean=42.0, sd=sd_age, step=0.1, rng=rng, mean_tol=0.05, sd_tol=0.001)
    g = stats.gamma.ppf(q, 1.35)
    dur0 = 8.9 + sd_duration * (g - g.mean()) / g.std(ddof=1)
    dur = _fix_moments(dur0, lo=0.3, hi=33.7, mean=8.9, sd=sd_duration, step=0.1, rng=rng,
                       mean_tol=0.02, sd_tol=0.001)
    e = stats.gamma.ppf(q, 1.0) * 2.2
    e = np.where(e < 0.75, 0.0, np.maximum(1.0, np.round(e * 2) / 2))
    return {"age_years": age, "disease_duration_years": dur, "edss": _fix_edss(e, rng)}


def _fix_edss(e, rng, max_iter=20000):
    levels = np.array([0.0] + list(np.arange(1.0, 10.01, 0.5)))
    e = np.sort(np.minimum(e, 8.5))
    e[-1] = 8.5

    def bad(v):
        return abs(v.mean() - 2.2) / 0.03 + abs(v.std(ddof=1) - 2.2) / 0.03

    for _ in range(max_iter):
        if abs(e.mean() - 2.2) < 0.03 and abs(e.std(ddof=1) - 2.2) < 0.03 and e.min() == 0:
            return np.sort(e)
        i = rng.integers(0, N - 1)
        k = np.searchsorted(levels, e[i])
        k2 = int(np.clip(k + rng.choice((-1, 1)), 0, np.searchsorted(levels, 8.5)))
        cand = e.copy()
        cand[i] = levels[k2]
        if improves(bad(cand), bad(e)) and cand.max() == 8.5:
            e = cand
    raise RuntimeError("could not calibrate EDSS")


#: Latent (Gaussian copula) correlation of age, duration, EDSS, male, DMT, enhancing lesions:
#: older patients have longer disease and more disability, enhancing lesions are commoner early.
COPULA_CORRELATION = np.array([
    # age   dur   edss  male  dmt   enh
    [1.00, 0.50, 0.40, 0.00, 0.05, -0.20],
    [0.50, 1.00, 0.45, 0.00, 0.10, -0.15],
    [0.40, 0.45, 1.00, 0.05, 0.10, 0.00],
    [0.00, 0.00, 0.05, 1.00, 0.00, 0.05],
    [0.05, 0.10, 0.10, 0.00, 1.00, -0.05],
    [-0.20, -0.15, 0.00, 0.05, -0.05, 1.00],
])


def binary_profiles(cross_counts, *, n_all_three=None):
    """Counts of the 8 (enhancing, male, DMT) profiles with the given pairwise cross-counts.

    Returns an (8, 4) integer array: columns enhancing, male, dmt, number of patients.
    """
    n_em, n_ed, n_md = cross_counts
    n_e, n_m, n_d = N_ENHANCING, N - N_FEMALE, N_DMT
    options = range(0, min(cross_counts) + 1) if n_all_three is None else (n_all_three,)
    for t in options:
        cells = {(1, 1, 1): t, (1, 1, 0): n_em - t, (1, 0, 1): n_ed - t, (0, 1, 1): n_md - t,
                 (1, 0, 0): n_e - n_em - n_ed + t, (0, 1, 0): n_m - n_em - n_md + t,
                 (0, 0, 1): n_d - n_ed - n_md + t}
        cells[(0, 0, 0)] = N - sum(cells.values())
        if min(cells.values()) >= 0:
            return np.array([[*k, v] for k, v in sorted(cells.items())])
    raise ValueError(f"cross-counts {cross_counts} are impossible with {n_e}, {n_m}, {n_d} patients")


def assign_covariates(multisets, cross_counts, rng):
    """Assign the multisets to 95 patients by the ranks of a Gaussian copula draw.

    Age, duration and EDSS follow :data:`COPULA_CORRELATION`; the binary profiles (enhancing,
    male, DMT) are dealt out with exactly ``cross_counts`` and placed by the copula's enhancing
    score, so enhancing lesions start out commoner in younger patients.
    """
    z = rng.multivariate_normal(np.zeros(6), COPULA_CORRELATION, size=N)
    rank = np.argsort(np.argsort(z, axis=0), axis=0)
    profiles = np.repeat(binary_profiles(cross_counts)[:, :3], binary_profiles(cross_counts)[:, 3], axis=0)
    profiles = profiles[rng.permutation(N)]
    profiles = profiles[np.argsort(-profiles[:, 0], kind="stable")]  # enhancing first
    order = np.argsort(-z[:, 5])                                      # highest enhancing score first
    binary = np.empty((N, 3))
    binary[order] = profiles
    cov = {
        "age_years": multisets["age_years"][rank[:, 0]],
        "disease_duration_years": multisets["disease_duration_years"][rank[:, 1]],
        "edss": multisets["edss"][rank[:, 2]],
        "enhancing_lesions_present": binary[:, 0],
        "male": binary[:, 1],
        "dmt_use": binary[:, 2],
    }
    _repair_onset(cov, rng)
    return cov


def _repair_onset(cov, rng):
    """Swap durations until every patient had their first symptom at age >= 16."""
    age, dur = cov["age_years"], cov["disease_duration_years"]
    for _ in range(10000):
        bad = np.flatnonzero(age - dur < MIN_ONSET_AGE)
        if bad.size == 0:
            return
        i = bad[0]
        j = rng.integers(N)
        if age[i] - dur[j] >= MIN_ONSET_AGE and age[j] - dur[i] >= MIN_ONSET_AGE:
            dur[i], dur[j] = dur[j], dur[i]
    raise RuntimeError("could not satisfy age - duration >= 16")


def t2_design(cov):
    """Table 2's five predictors as an (N, 5) array in :data:`T2_ORDER`."""
    return np.column_stack([cov["enhancing_lesions_present"], cov["age_years"], cov["male"],
                            cov["dmt_use"], cov["disease_duration_years"]])


#: Move groups of the swap search (columns of the T2-ordered design): age, duration, and the
#: binary profile (enhancing, male, DMT) moved as a whole so that its cross-counts never change.
_GROUPS = ((1,), (4,), (0, 2, 3))


def _swap_ok(X, i, j, cols):
    """Would swapping ``cols`` between patients i and j keep age - duration >= 16?"""
    if cols == (1,):
        return X[j, 1] - X[i, 4] >= MIN_ONSET_AGE and X[i, 1] - X[j, 4] >= MIN_ONSET_AGE
    if cols == (4,):
        return X[i, 1] - X[j, 4] >= MIN_ONSET_AGE and X[j, 1] - X[i, 4] >= MIN_ONSET_AGE
    return True


def _propose(X, rng, fine):
    """A swap ``(i, j, cols)``: any two patients, or (``fine``) two with nearly the same age or
    duration, or two with different binary profiles who are alike in age and duration."""
    n = X.shape[0]
    cols = _GROUPS[int(rng.integers(len(_GROUPS)))]
    if not fine:
        i, j = rng.integers(n, size=2)
        return int(i), int(j), cols
    if len(cols) == 1:  # neighbours in sorted order
        order = np.argsort(X[:, cols[0]], kind="stable")
        k = int(rng.integers(n - 1))
        return int(order[k]), int(order[min(k + int(rng.integers(1, 4)), n - 1)]), cols
    i = int(rng.integers(n))
    z = (X[:, [1, 4]] - X[:, [1, 4]].mean(0)) / X[:, [1, 4]].std(0)
    d = np.sum((z - z[i]) ** 2, axis=1)
    d[np.all(X[:, cols] == X[i, cols], axis=1)] = np.inf
    j = int(np.argsort(d)[int(rng.integers(6))])
    return i, j, cols


def _swap_search(X, loss_fn, rng, *, tol, max_iter, temp0, fine_fraction=0.0):
    """Anneal over value swaps between patients until ``loss_fn``'s worst term is below ``tol``.

    ``loss_fn(X)`` returns ``(loss, worst)``. Returns the best ``(X, worst, iterations)`` seen.
    """
    loss, worst = loss_fn(X)
    best = (loss, worst, X.copy())
    temp = temp0
    for it in range(max_iter):  # noqa: B007 -- it (the iteration count) is returned
        if worst < tol:
            break
        i, j, cols = _propose(X, rng, rng.random() < fine_fraction)
        cols = list(cols)
        if np.array_equal(X[i, cols], X[j, cols]) or not _swap_ok(X, i, j, tuple(cols)):
            continue
        X[np.ix_([i, j], cols)] = X[np.ix_([j, i], cols)]
        new_loss, new_worst = loss_fn(X)
        u = rng.random()  # drawn every time: the random stream must not depend on a comparison
        if improves(new_loss, loss) or u < np.exp(min(0.0, loss - new_loss) / temp):
            loss, worst = new_loss, new_worst
            if improves(loss, best[0]):
                best = (loss, worst, X.copy())
        else:
            X[np.ix_([i, j], cols)] = X[np.ix_([j, i], cols)]
        temp = max(temp0 * 1e-4, temp * 0.9997)
    return best[2], best[1], it


def _moment_windows():
    """Printed windows of mean and SD and the published minimum/maximum of age and duration."""
    c = published()["cohort"]
    out = {}
    for col, key in ((1, "age_years"), (4, "disease_duration_years")):
        out[col] = (interval(c[key]["mean"]), interval(c[key]["sd"]), float(c[key]["min"]), float(c[key]["max"]))
    return out


def refine_covariates(X, z, rng, *, rounds=8, iters=15000, log=None):
    """Move single ages or durations by 0.1 year, or swap them between patients, while Table 2's
    worst normalised distance falls (criterion: sum of distances**8 at fixed coefficients, which
    are refitted between rounds). Means and SDs stay inside their printed windows, the minimum
    and maximum stay, and nobody's disease starts before 16. Returns ``(X, z, worst)``."""
    windows = _moment_windows()

    def ok(Y, c):
        (mlo, mhi), (slo, shi), lo, hi = windows[c]
        v = Y[:, c]
        m, sd = v.mean(), v.std(ddof=1)
        return (mlo + 0.02 <= m < mhi - 0.02 and slo + 0.005 <= sd < shi - 0.005
                and abs(v.min() - lo) < 1e-9 and abs(v.max() - hi) < 1e-9
                and np.all(Y[:, 1] - Y[:, 4] >= MIN_ONSET_AGE - 1e-9))

    def loss(Y):
        r = table2_residuals(np.cov(Y, rowvar=False), z[:5], z[5])
        return float(np.sum(r**8))

    z, worst = fit_theta_minimax(X, z)
    cur = loss(X)
    for rnd in range(rounds):
        accepted = 0
        for _ in range(iters):
            c = (1, 4)[int(rng.integers(2))]
            Y = X.copy()
            if rng.random() < 0.5:
                i = int(rng.integers(N))
                Y[i, c] = round(Y[i, c] + 0.1 * rng.choice((-1, 1)), 1)
            else:
                i, j = rng.integers(N, size=2)
                if Y[i, c] == Y[j, c]:
                    continue
                Y[[i, j], c] = Y[[j, i], c]
            if not ok(Y, c):
                continue
            new = loss(Y)
            if improves(new, cur):  # a null move (a tie within rounding) is refused everywhere
                X, cur, accepted = Y, new, accepted + 1
        z, new_worst = fit_theta_minimax(X, z)
        cur = loss(X)
        if log:
            log(f"  refine round {rnd}: {accepted} moves, worst normalised distance {new_worst:.3f}")
        if accepted == 0 or abs(new_worst - worst) < 1e-4:
            worst = new_worst
            break
        worst = new_worst
    return X, z, worst


def calibrated_covariates(rng, tg, *, log=None):
    """Covariates (dict of arrays) and Table 2's adjusted fit ``(theta, sigma)``.

    Multisets at the target SDs -> copula assignment with :data:`CROSS_COUNTS` -> swaps towards the
    target correlations -> :func:`refine_covariates` on the exact criterion.
    """
    target = table2_covariance_target(tg)
    if log:
        log(f"Table 2 continuous optimum: worst normalised distance {target['worst']:.3f}")
    multisets = covariate_multisets(rng, sd_age=target["sds"][1], sd_duration=target["sds"][4])
    cov = assign_covariates(multisets, CROSS_COUNTS, rng)
    X = t2_design(cov)
    iu = np.triu_indices(5, 1)

    def corr_loss(Y):
        d = (np.corrcoef(Y, rowvar=False) - target["R"])[iu] / 0.002
        return float(d @ d), float(np.abs(d).max())

    X, _, _ = _swap_search(X, corr_loss, rng, tol=0.3, max_iter=200000, temp0=1.0, fine_fraction=0.5)
    z = np.r_[target["theta"], target["sigma"]]
    X, z, worst = refine_covariates(X, z, rng, log=log)
    if worst >= 1:
        raise RuntimeError(f"Table 2 cannot be met with these covariates (worst normalised distance {worst:.2f}); "
                           "try another seed")
    out = dict(cov)
    for c, k in enumerate(("enhancing_lesions_present", "age_years", "male", "dmt_use", "disease_duration_years")):
        out[k] = X[:, c].copy()
    return out, z[:5], float(z[5]), worst
