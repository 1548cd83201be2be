"""Relative susceptibility and Table 1's outcomes: exact regression fits with shaped residuals.

Each variable is ``y = X theta + c u`` with ``u`` orthogonal to the model's design, so the OLS fit
of the adjusted model is exactly ``theta`` with residual scale ``c`` (:func:`shape_residuals`);
the free directions of ``u`` are shaped so that the variable's mean, SD, minimum and maximum print
as published. After rounding, :func:`polish` nudges single values where rounding moved a statistic
towards the edge of its interval. :func:`build_susceptibility` prints Table 2,
:func:`build_outcome` the two rows of one Table 1 outcome (:data:`OUTCOMES`).
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import optimize, stats

from analysis.simulation.calibration.covariates import t2_design
from analysis.simulation.calibration.printed import P_INTERVALS, T2_ORDER, N, print_margin
from analysis.simulation.calibration.stable import improves, snap
from analysis.stats.published import interval, published, table_rows

__all__ = ["OUTCOMES", "LESION_COVARIATE_P", "shape_residuals", "polish", "table2_margins", "table1_margins",
           "lesion_text_margins", "build_susceptibility", "build_outcome"]


def _ols(y, D):
    """OLS of y on design D (intercept included): coefficients, SEs, residual df."""
    coef, *_ = np.linalg.lstsq(D, y, rcond=None)
    resid = y - D @ coef
    df = D.shape[0] - D.shape[1]
    s2 = resid @ resid / df
    cov = s2 * np.linalg.inv(D.T @ D)
    return coef, np.sqrt(np.diag(cov)), df


def _row_margins(b, se, df, row, *, p_interval=None):
    """Printing margins of a (b, SE) pair against a published row (coef, CI bounds, P)."""
    t = stats.t.ppf(0.975, df)
    p = 2 * stats.t.sf(abs(b) / se, df)
    return [print_margin(b, *interval(row["coef"])), print_margin(b - t * se, *interval(row["ci_low"])),
            print_margin(b + t * se, *interval(row["ci_high"])),
            print_margin(p, *(p_interval or interval(row["p"])))]


def _marginal_margins(x, summary):
    """Printing margins of mean, SD, min and max of ``x`` against a published summary."""
    return [print_margin(x.mean(), *interval(summary["mean"])),
            print_margin(x.std(ddof=1), *interval(summary["sd"])),
            print_margin(x.min(), *interval(summary["min"])),
            print_margin(x.max(), *interval(summary["max"]))]


def _complement_basis(D):
    """Orthonormal basis (n, n - p) of the complement of the column space of D."""
    q, _ = np.linalg.qr(D, mode="complete")
    return q[:, D.shape[1]:]


def shape_residuals(fitted, D, resid_norm, summary, rng, *, log_scale=False, scale=1.0,
                    extra_eq=(), w0=None, skew=0.0):
    """Residuals orthogonal to ``D`` with a fixed norm, shaped so the outcome prints as published.

    The outcome is ``y = c0 + fitted + Q w`` with ``Q`` a basis of the complement of ``D``'s columns
    (so the OLS fit of y on D is exactly that of ``c0 + fitted``) and ``|w| = resid_norm``.
    On the natural scale (``exp(y)`` when ``log_scale``), times ``scale`` (unit conversion to
    the summary's units), the mean, SD, minimum and maximum are constrained to the published
    values. ``extra_eq`` are functions of y returning ``(value, gradient with respect to y)`` whose
    value must be 0. ``w`` starts from a random draw (or ``w0``) and ends at the nearest point, to
    first order, that meets every constraint (:func:`_project`). Returns y.
    """
    n = len(fitted)
    Q = _complement_basis(D)
    k = Q.shape[1]
    if w0 is None:
        e = rng.standard_normal(n)
        if skew:
            e = e + skew * (e**2 - 1)
        w0 = Q.T @ e
    w0 = w0 / np.linalg.norm(w0) * resid_norm
    mean_t, sd_t = float(summary["mean"]), float(summary["sd"])
    lo_t, hi_t = float(summary["min"]), float(summary["max"])
    inv = (lambda v: np.log(v / scale)) if log_scale else (lambda v: v / scale)

    if log_scale:
        c0 = float(np.log(mean_t / scale / np.mean(np.exp(fitted + Q @ w0))))
    else:
        c0 = float(inv(mean_t) - fitted.mean())
    y0 = c0 + fitted + Q @ w0
    i_min, i_max = int(np.argmin(y0)), int(np.argmax(y0))
    z0 = np.r_[w0, c0]

    def y_of(z):
        return z[-1] + fitted + Q @ z[:k]

    lo_y, hi_y = inv(lo_t), inv(hi_t)
    pins = {i_min: lo_y, i_max: hi_y}
    for _ in range(n):  # active set: a value that leaves [min, max] is pinned to the bound it crossed
        z = _project(_constraints(fitted, Q, resid_norm, pins, c0=None if log_scale else c0,
                                  moments=(mean_t, sd_t, scale) if log_scale else None, extra_eq=extra_eq), z0)
        y = y_of(z)
        out = {i: (lo_y if y[i] < lo_y else hi_y) for i in np.flatnonzero((y < lo_y) | (y > hi_y)) if i not in pins}
        if not out:
            return y
        pins.update(out)
    raise RuntimeError("the residuals cannot be kept inside the published minimum and maximum")


def _constraints(fitted, Q, resid_norm, pins, *, c0, moments, extra_eq):
    """Equality constraints ``g(z) = 0`` of :func:`shape_residuals` and their Jacobian, ``z = (w, c)``.

    ``|w| = resid_norm``; pinned values ``y[i] = v``; the intercept ``c = c0`` (natural scale) or
    the mean and SD of ``exp(y) * scale`` (log scale, ``moments = (mean, sd, scale)``); and each
    of ``extra_eq``, a function of y returning ``(value, gradient)``.
    """
    k = Q.shape[1]
    idx = np.array(sorted(pins), dtype=int)
    val = np.array([pins[i] for i in idx])
    dy = np.column_stack([Q, np.ones(Q.shape[0])])          # dy/dz, constant

    def fun(z):
        w, c = z[:k], z[-1]
        y = c + fitted + Q @ w
        rows, jac = [(w @ w - resid_norm**2) / resid_norm**2], [np.r_[2 * w / resid_norm**2, 0.0]]
        rows += list(y[idx] - val)
        jac += list(dy[idx])
        if moments is None:
            rows.append(c - c0)
            jac.append(np.r_[np.zeros(k), 1.0])
        else:
            mean_t, sd_t, scale = moments
            v = np.exp(y) * scale
            sd = v.std(ddof=1)
            rows += [v.mean() / mean_t - 1, sd / sd_t - 1]
            jac += [(v / (len(v) * mean_t)) @ dy, ((v - v.mean()) * v / ((len(v) - 1) * sd * sd_t)) @ dy]
        for f in extra_eq:
            value, grad = f(y)
            rows.append(value)
            jac.append(np.asarray(grad) @ dy)
        return np.array(rows), np.array(jac)

    return fun


def _project(fun, z0, *, tol=1e-13, max_iter=100):
    """The point of ``{z : g(z) = 0}`` reached from ``z0`` by minimum-norm Gauss-Newton steps.

    Each step is the smallest change that zeroes the linearised constraints (``z -= pinv(J) g``),
    so the result is the feasible point nearest to ``z0`` to first order. Newton converges
    quadratically to the constraints' own precision, so the result is the same, to rounding, on
    every BLAS kernel and thread count (an SLSQP run, used before, stopped on a small change of its
    objective far from convergence: 4 iterations on one kernel, 56 on another, 2.3 ppb apart).
    """
    z = np.asarray(z0, float).copy()
    for _ in range(max_iter):
        g, J = fun(z)
        if np.max(np.abs(g)) < tol:
            return z
        z = z - np.linalg.lstsq(J, g, rcond=None)[0]
    raise RuntimeError(f"the outcome's constraints cannot be met (largest residual {np.max(np.abs(g)):.2e})")


def polish(y, step, margins_fn, *, keep=(), target=0.3, max_steps=400):
    """Nudge single values of ``y`` by one grid ``step`` while the smallest printing margin grows.

    ``margins_fn(y)`` returns the printing margins of everything that must print as published;
    indices in ``keep`` (the patients holding the published minimum and maximum) are not moved.
    Returns ``(y, min_margin)``.
    """
    y = y.copy()
    best = min(margins_fn(y))
    movable = [i for i in range(len(y)) if i not in set(keep)]
    for _ in range(max_steps):
        if best >= target:
            break
        improved = False
        for i in movable:
            for d in (step, -step):
                y[i] += d
                m = min(margins_fn(y))
                if improves(-m, -best):  # larger by more than rounding: the same step everywhere
                    best, improved = m, True
                    break
                y[i] -= d
            if best >= target:
                break
        if not improved:
            break
    return y, best


def _summary(name):
    return published()["cohort"][name]


def table2_margins(s, X):
    """Printing margins of every Table 2 cell for susceptibility ``s`` and predictors ``X`` (T2 order)."""
    rows = {(r["predictor"], r["model"]): r for r in table_rows("table2")}
    ones = np.ones((len(s), 1))
    out = []
    coef, se, df = _ols(s, np.hstack([ones, X]))
    for j, k in enumerate(T2_ORDER):
        out += _row_margins(coef[j + 1], se[j + 1], df, rows[(k, "adjusted")],
                            p_interval=P_INTERVALS.get((k, "adjusted")))
        c1, s1, d1 = _ols(s, np.hstack([ones, X[:, [j]]]))
        out += _row_margins(c1[1], s1[1], d1, rows[(k, "unadjusted")])
    return out


def build_susceptibility(cov, theta, sigma, rng):
    """Thalamic relative susceptibility (ppb, 2 decimals) that prints Table 2 and its summary."""
    X = t2_design(cov)
    D = np.column_stack([np.ones(N), X])
    summary = _summary("thalamic_relative_susceptibility_ppb")
    y = shape_residuals(X @ theta, D, sigma * np.sqrt(N - 6), summary, rng)
    y = np.round(y, 2)
    keep = (int(np.argmin(y)), int(np.argmax(y)))

    def margins(v):
        return table2_margins(v, X) + _marginal_margins(v, summary)

    return polish(y, 0.01, margins, keep=keep)


#: Table 1 outcomes: cohort column, published summary, conversion to the summary's units, storage
#: decimals, and plausible covariate effects (age per year, male, duration per year, DMT) with
#: their scales, towards which the free coefficients are pulled.
OUTCOMES = {
    "thalamic_volume": dict(column="thalamic_volume_mm3", summary="thalamic_volume_ml", scale=1e-3,
                            decimals=1, prior=(-40.0, 700.0, -25.0, 0.0), prior_scale=(40, 700, 40, 400)),
    "total_gray_matter_volume": dict(column="total_gray_matter_volume_mm3",
                                     summary="total_gray_matter_volume_ml", scale=1e-3, decimals=1,
                                     prior=(-2500.0, 45000.0, -800.0, 0.0),
                                     prior_scale=(2500, 40000, 1500, 20000)),
    "cortical_thickness": dict(column="mean_cortical_thickness_mm", summary="cortical_thickness_mm",
                               scale=1.0, decimals=5, prior=(-0.004, -0.01, -0.003, 0.0),
                               prior_scale=(0.004, 0.05, 0.004, 0.05)),
    "t2_lesion_volume_log": dict(column="t2_lesion_volume_ml", summary="t2_lesion_volume_ml", scale=1.0,
                                 decimals=3, prior=(0.0, 0.0, 0.05, 0.0), prior_scale=(0.03, 0.3, 0.03, 0.3)),
}

#: Results text: "Longer disease duration was also associated with greater T2 lesion burden
#: (P < .001), whereas age (P = .25), sex (P = .90), and use of disease-modifying agents (P = .81) were
#: not", read as the covariates of the adjusted lesion model (Z order: age, male, duration, DMT).
#: Age is left free (None): with the covariance of age and susceptibility that Table 2 fixes, an
#: adjusted age P of .25 is only compatible with Table 1's lesion rows at the very edge of every
#: printed interval (see :mod:`analysis.simulation.calibration`); its calibrated value is reported,
#: not aimed at.
LESION_COVARIATE_P = (None, (0.895, 0.905), (0.0, 0.001), (0.805, 0.815))


def _z_design(cov):
    return np.column_stack([cov["age_years"], cov["male"], cov["disease_duration_years"], cov["dmt_use"]])


def table1_margins(y, s, Z, outcome):
    """Printing margins of the two Table 1 rows of ``outcome`` (``y`` on the model's scale)."""
    rows = {(r["outcome"], r["model"]): r for r in table_rows("table1")}
    ones = np.ones((len(s), 1))
    c, se, df = _ols(y, np.column_stack([ones, s]))
    out = _row_margins(c[1], se[1], df, rows[(outcome, "unadjusted")])
    c, se, df = _ols(y, np.column_stack([ones, s, Z]))
    out += _row_margins(c[1], se[1], df, rows[(outcome, "adjusted")],
                        p_interval=P_INTERVALS.get((outcome, "adjusted")))
    return out


def lesion_text_margins(y, s, Z, age):
    """Margins of the lesion model's text P values: covariates (adjusted model) and the age < 50 P."""
    ones = np.ones((len(s), 1))
    D = np.column_stack([ones, s, Z])
    c, se, df = _ols(y, D)
    out = []
    for j, window in enumerate(LESION_COVARIATE_P):
        if window is None:
            continue
        lo, hi = window
        p = 2 * stats.t.sf(abs(c[j + 2] / se[j + 2]), df)
        out.append(print_margin(p, lo, hi) if lo > 0 else (hi - p) / hi)
    young = age < 50
    c, se, df = _ols(y[young], D[young])
    p = 2 * stats.t.sf(abs(c[1] / se[1]), df)
    out.append(print_margin(p, *interval(published()["text"]["lesion_association_under_50_p"])))
    return out


def _solve_gamma(outcome, s, Z, beta, resid_norm, tg, spec):
    """Covariate coefficients of a Table 1 outcome that make its unadjusted row print."""
    n = len(s)
    sc, Zc = s - s.mean(), Z - Z.mean(0)
    u = tg[(outcome, "unadjusted")]
    var_y_target = sc @ sc / (n - 1) * ((n - 2) * u["se"] ** 2 + u["b"] ** 2)
    prior, pscale = np.array(spec["prior"]), np.array(spec["prior_scale"])

    def b_u(g):
        return beta + sc @ (Zc @ g) / (sc @ sc)

    def var_y(g):
        f = beta * sc + Zc @ g
        return f @ f / (n - 1) + resid_norm**2 / (n - 1)

    cons = [{"type": "eq", "fun": lambda g: (b_u(g) - u["b"]) / u["b_halfwidth"]},
            {"type": "eq", "fun": lambda g: var_y(g) / var_y_target - 1}]
    starts = [prior]
    if outcome == "t2_lesion_volume_log":  # covariate P values of the Results text (adjusted model)
        D = np.column_stack([np.ones(n), s, Z])
        sigma = resid_norm / np.sqrt(n - 6)
        a = np.sqrt(np.diag(np.linalg.inv(D.T @ D)))[2:]
        aimed = [j for j, w in enumerate(LESION_COVARIATE_P) if w is not None]
        t_lo = np.array([stats.t.isf(LESION_COVARIATE_P[j][1] / 2, n - 6) for j in aimed])
        t_hi = np.array([stats.t.isf(LESION_COVARIATE_P[j][0] / 2, n - 6) if LESION_COVARIATE_P[j][0] > 0
                         else 50.0 for j in aimed])
        pad = np.where(t_hi < 50, 0.15 * (t_hi - t_lo), 0.2)   # P < .001: t at least 0.2 above its bound
        starts = []
        for signs in itertools.product((1, -1), repeat=len(aimed)):
            sg = np.array(signs, float)
            if np.any(sg[[k for k, j in enumerate(aimed) if j == 2]] < 0):  # longer disease, more lesions
                continue
            g0 = prior.copy()
            g0[aimed] = sg * (t_lo + pad) * sigma * a[aimed]
            cons_t = {"type": "ineq",
                      "fun": lambda g, sg=sg: np.r_[sg * g[aimed] / (sigma * a[aimed]) - t_lo - pad,
                                                    t_hi - pad - sg * g[aimed] / (sigma * a[aimed])]}
            starts.append((g0, cons_t))
    best = None
    for st in starts:
        g0, extra = (st, []) if not isinstance(st, tuple) else (st[0], [st[1]])
        sol = optimize.minimize(lambda g: float(np.sum(((g - prior) / pscale) ** 2)), g0,
                                constraints=cons + extra, method="SLSQP",
                                options={"maxiter": 500, "ftol": 1e-14})
        viol = max(abs(c["fun"](sol.x)).max() if c["type"] == "eq" else max(0, -np.min(c["fun"](sol.x)))
                   for c in cons + extra)
        if viol < 1e-6 and (best is None or improves(sol.fun, best[0])):  # ties: the first start
            best = (sol.fun, sol.x, extra)
    if best is None:
        raise RuntimeError(f"no covariate effects make the unadjusted {outcome} row print")
    g = best[1]
    # SLSQP stops short of its optimum, by a different amount on each BLAS kernel: Newton on
    # the optimality conditions of the two equalities takes it to full precision (if a window
    # constraint of the lesion model is active there, SLSQP's own result is kept)
    a1 = Zc.T @ sc / (sc @ sc) / u["b_halfwidth"]
    hess_var = 2 * Zc.T @ Zc / ((n - 1) * var_y_target)

    def h(g):
        return np.array([(b_u(g) - u["b"]) / u["b_halfwidth"], var_y(g) / var_y_target - 1])

    def h_jac(g):
        return np.vstack([a1, 2 * Zc.T @ (beta * sc + Zc @ g) / ((n - 1) * var_y_target)])

    polished = _kkt_newton(g, grad=lambda g: 2 * (g - prior) / pscale**2, hess=np.diag(2 / pscale**2),
                           h=h, h_jac=h_jac, h_hess=(np.zeros_like(hess_var), hess_var), x_scale=pscale)
    if polished is not None and all(np.min(c["fun"](polished)) >= 0 for c in best[2]):
        g = polished
    return snap(g)


def _kkt_newton(x, *, grad, hess, h, h_jac, h_hess, x_scale, xtol=1e-13, max_iter=30):
    """Newton's method on the optimality conditions of ``min f(x) s.t. h(x) = 0`` from ``x``.

    ``grad``, ``hess``: gradient function and (constant) Hessian of f; ``h``, ``h_jac``: the
    equalities and their Jacobian; ``h_hess``: their (constant) Hessians. Converged when no step
    exceeds ``xtol`` of ``x_scale``. Returns the stationary point, or None if Newton does not
    converge or ends off the constraints.
    """
    J = h_jac(x)
    lam = -np.linalg.lstsq(J.T, grad(x), rcond=None)[0]
    m = len(lam)
    for _ in range(max_iter):
        J = h_jac(x)
        r = np.r_[grad(x) + J.T @ lam, h(x)]
        H = hess + sum(lam_i * Hh for lam_i, Hh in zip(lam, h_hess))
        K = np.block([[H, J.T], [J, np.zeros((m, m))]])
        step = np.linalg.solve(K, -r)
        x, lam = x + step[:len(x)], lam + step[len(x):]
        if np.max(np.abs(step[:len(x)]) / x_scale) < xtol:
            return x if np.max(np.abs(h(x))) < 1e-9 else None
    return None


def build_outcome(outcome, s, cov, tg, rng):
    """One Table 1 outcome (stored units and decimals) printing both rows and its summary."""
    spec = OUTCOMES[outcome]
    Z = _z_design(cov)
    D = np.column_stack([np.ones(N), s, Z])
    a_s = np.sqrt(np.linalg.inv(D.T @ D)[1, 1])
    adj = tg[(outcome, "adjusted")]
    beta = adj["b"]
    resid_norm = adj["se"] / a_s * np.sqrt(N - 6)
    gamma = _solve_gamma(outcome, s, Z, beta, resid_norm, tg, spec)
    summary = _summary(spec["summary"])
    log_scale = outcome == "t2_lesion_volume_log"
    extra = ()
    if log_scale:
        young = cov["age_years"] < 50
        Dy = D[young]
        p_target = float(published()["text"]["lesion_association_under_50_p"])
        t_target = stats.t.isf(p_target / 2, int(young.sum()) - 6)

        def t_young(y):
            """t of susceptibility in the adjusted model of patients < 50, minus its target, and its
            gradient: d t / d y = h / se - t r / (s^2 df), h the coefficient's row of (D'D)^-1 D'."""
            c, se, df = _ols(y[young], Dy)
            t = c[1] / se[1]
            h = np.linalg.solve(Dy.T @ Dy, Dy.T)[1]
            r = y[young] - Dy @ c
            grad = np.zeros(len(y))
            grad[young] = h / se[1] - t * r / (r @ r)
            return t - t_target, grad

        extra = (t_young,)
    y = shape_residuals(beta * s + Z @ gamma, D, resid_norm, summary, rng, log_scale=log_scale,
                        scale=spec["scale"], extra_eq=extra)
    stored = np.round(np.exp(y) if log_scale else y, spec["decimals"])
    to_model = np.log if log_scale else (lambda v: v)
    scale = spec["scale"]

    def margins(v):
        m = table1_margins(to_model(v), s, Z, outcome) + _marginal_margins(v * scale, summary)
        if log_scale:
            m += lesion_text_margins(to_model(v), s, Z, cov["age_years"])
        return m

    keep = (int(np.argmin(stored)), int(np.argmax(stored)))
    return polish(stored, 10.0 ** -spec["decimals"], margins, keep=keep)
