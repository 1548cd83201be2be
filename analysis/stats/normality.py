"""Normality checks as run in Stata 13: ``sktest``, ``ladder``, ``qladder`` and ``gladder``.

The paper says: "Ladder-of-powers quantile-normal plots were assessed to determine the normality of
the outcome variables. White matter lesion volume was log-transformed for normalization." This
module reproduces the Stata commands behind that sentence:

* :func:`sktest` -- skewness and kurtosis test for normality (D'Agostino, Belanger & D'Agostino
  1990, with the Royston 1991 empirical adjustment of the joint statistic), identical to Stata's
  ``sktest``; with ``adjust=False`` it equals :func:`scipy.stats.normaltest` (Stata's
  ``sktest, noadjust``).
* :func:`ladder` -- Tukey's ladder of powers, ``sktest`` on each of nine transformations, as Stata's
  ``ladder``.
* :func:`qladder` and :func:`gladder` -- the 3 x 3 quantile-normal plots and histograms of the same
  nine transformations (Stata's ``qladder`` and ``gladder``).

Written out here rather than taken from a library: no Python library applies Royston's adjustment
or runs Stata's ladder; scipy's ``skewtest``, ``kurtosistest`` and ``normaltest`` give the
unadjusted statistics, which the tests compare with ``adjust=False``. matplotlib is imported by the
figure functions only.

References
----------
D'Agostino RB, Belanger A, D'Agostino RB Jr. A suggestion for using powerful and informative tests of
normality. Am Stat 1990;44:316-21.

Royston P. Comment on sg3.4 and an improved D'Agostino test. Stata Technical Bulletin 1991;3:23-24.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["sktest", "ladder", "ladder_transforms", "qladder", "gladder", "qnorm_points", "RUNGS"]

#: The nine rungs of Stata's ladder of powers: (label, power, formula template).
#: ``power`` 0 is the natural logarithm. Labels and formulas are spelled as Stata's ``ladder`` prints them.
RUNGS = (
    ("cubic", 3.0, "{x}^3"),
    ("square", 2.0, "{x}^2"),
    ("identity", 1.0, "{x}"),
    ("square root", 0.5, "sqrt({x})"),
    ("log", 0.0, "log({x})"),
    ("1/(square root)", -0.5, "1/sqrt({x})"),
    ("inverse", -1.0, "1/{x}"),
    ("1/square", -2.0, "1/({x}^2)"),
    ("1/cubic", -3.0, "1/({x}^3)"),
)

#: Smallest sample Stata's ``sktest`` accepts.
MIN_N = 8


# ----------------------------------------------------------------------------------------------
# input handling
# ----------------------------------------------------------------------------------------------
def _as_numeric_1d(x, *, name="x"):
    """Return ``(values float64 without NaN, n_missing, label)``; raise ValueError on bad input."""
    label = getattr(x, "name", None)
    label = str(label) if label is not None else name
    if isinstance(x, (pd.DataFrame,)):
        raise ValueError(f"{name} must be one-dimensional (a Series or 1-D array), got a DataFrame")
    if isinstance(x, pd.Series):
        if not (pd.api.types.is_numeric_dtype(x.dtype) and not pd.api.types.is_bool_dtype(x.dtype)):
            raise ValueError(f"{name} ({label}) must be numeric, got dtype {x.dtype}")
        arr = x.to_numpy(dtype=float, na_value=np.nan)
    else:
        arr = np.asarray(x)
        if arr.dtype.kind not in "iuf":
            raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
        arr = arr.astype(float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    missing = np.isnan(arr)
    arr = arr[~missing]
    if np.isinf(arr).any():
        raise ValueError(f"{name} ({label}) contains infinite values")
    return arr, int(missing.sum()), label


def _skewness_kurtosis(v):
    """Moment skewness sqrt(b1) and kurtosis b2 with divisor n (Stata's ``summarize, detail``)."""
    d = v - v.mean()
    m2 = np.mean(d**2)
    m3 = np.mean(d**3)
    m4 = np.mean(d**4)
    return m3 / m2**1.5, m4 / m2**2


def _z_skewness(sqrt_b1, n):
    """D'Agostino's normal approximation to the null distribution of sqrt(b1)."""
    y = sqrt_b1 * np.sqrt((n + 1.0) * (n + 3.0) / (6.0 * (n - 2.0)))
    beta2 = (3.0 * (n * n + 27.0 * n - 70.0) * (n + 1.0) * (n + 3.0)
             / ((n - 2.0) * (n + 5.0) * (n + 7.0) * (n + 9.0)))
    w2 = -1.0 + np.sqrt(2.0 * (beta2 - 1.0))
    delta = 1.0 / np.sqrt(np.log(np.sqrt(w2)))
    alpha = np.sqrt(2.0 / (w2 - 1.0))
    return delta * np.arcsinh(y / alpha)


def _z_kurtosis(b2, n):
    """Anscombe & Glynn's normal approximation to b2; NaN when the cube-root base is negative."""
    mean = 3.0 * (n - 1.0) / (n + 1.0)
    var = 24.0 * n * (n - 2.0) * (n - 3.0) / ((n + 1.0) ** 2 * (n + 3.0) * (n + 5.0))
    xs = (b2 - mean) / np.sqrt(var)
    sqrt_beta1 = (6.0 * (n * n - 5.0 * n + 2.0) / ((n + 7.0) * (n + 9.0))
                  * np.sqrt(6.0 * (n + 3.0) * (n + 5.0) / (n * (n - 2.0) * (n - 3.0))))
    a = 6.0 + 8.0 / sqrt_beta1 * (2.0 / sqrt_beta1 + np.sqrt(1.0 + 4.0 / sqrt_beta1**2))
    base = (1.0 - 2.0 / a) / (1.0 + xs * np.sqrt(2.0 / (a - 4.0)))
    if not base >= 0:  # negative (or NaN): Stata leaves the statistic missing
        return np.nan
    return ((1.0 - 2.0 / (9.0 * a)) - np.cbrt(base)) / np.sqrt(2.0 / (9.0 * a))


def _royston_adjust(k2, n):
    """Royston's (1991) adjusted P value for the omnibus K^2 = Z1^2 + Z2^2 (Stata's ``sktest``)."""
    zc2 = -stats.norm.ppf(np.exp(-0.5 * k2))
    ln_n = np.log(n)
    cut = 0.55 * n**0.2 - 0.21
    a1 = (-5.0 + 3.46 * ln_n) * np.exp(-1.37 * ln_n)
    b1 = 1.0 + (0.854 - 0.148 * ln_n) * np.exp(-0.55 * ln_n)
    delta = 2.13 / (1.0 - 2.37 * ln_n)
    if zc2 < -1.0:
        z = zc2
    elif zc2 < cut:
        z = a1 + b1 * zc2
    else:
        z = (a1 - delta * cut) + (delta + b1) * zc2
    return stats.norm.sf(z)


# ----------------------------------------------------------------------------------------------
# sktest
# ----------------------------------------------------------------------------------------------
def sktest(x, *, adjust=True):
    """Skewness and kurtosis test for normality, identical to Stata's ``sktest``.

    Parameters
    ----------
    x : array_like or pandas.Series, shape (n,)
        Numeric sample (any unit). NaNs are dropped and counted in ``n_missing``.
    adjust : bool, keyword-only
        Apply Royston's (1991) empirical adjustment to the joint test (Stata's default). With
        ``adjust=False`` the joint statistic is the unadjusted K^2 = Z1^2 + Z2^2 referred to
        chi2(2), which is Stata's ``sktest, noadjust`` and :func:`scipy.stats.normaltest`.

    Returns
    -------
    pandas.DataFrame, shape (1, 11)
        One row indexed by the variable name (the Series name, else ``"x"``) with columns

        ``n``, ``n_missing``
            observations used and NaNs dropped;
        ``skewness``, ``kurtosis``
            moment estimates sqrt(b1) = m3/m2^1.5 and b2 = m4/m2^2 with divisor n (as Stata's
            ``summarize, detail``; kurtosis is not excess kurtosis, a normal sample gives about 3);
        ``z_skew``, ``z_kurt``
            D'Agostino's Z1 and Anscombe-Glynn's Z2 (Z2 is NaN when its cube-root base is
            negative, where Stata prints a missing value);
        ``p_skew``, ``p_kurt``
            two-sided normal P values of Z1 and Z2 (Stata's ``Pr(Skewness)`` and ``Pr(Kurtosis)``);
        ``chi2``, ``p``
            joint test: with ``adjust=True`` the adjusted chi2(2) = -2 ln P that Stata prints
            (``adj chi2(2)``) and its P (``Prob>chi2``); with ``adjust=False`` K^2 and its chi2(2)
            tail probability. Both NaN when Z2 is;
        ``adjusted``
            the value of ``adjust``.

    Raises
    ------
    ValueError
        If ``x`` is not numeric or one-dimensional, contains infinite values, has fewer than 8
        non-missing observations (Stata's minimum) or has zero variance.

    Examples
    --------
    >>> import numpy as np
    >>> res = sktest(np.random.default_rng(0).normal(size=200))
    >>> list(res.columns[:4])
    ['n', 'n_missing', 'skewness', 'kurtosis']
    """
    v, n_missing, label = _as_numeric_1d(x, name="x")
    n = v.size
    if n < MIN_N:
        raise ValueError(f"x ({label}) has {n} non-missing observations; sktest needs at least {MIN_N}")
    if np.ptp(v) == 0:
        raise ValueError(f"x ({label}) has zero variance; skewness and kurtosis are undefined")
    sqrt_b1, b2 = _skewness_kurtosis(v)
    z1 = _z_skewness(sqrt_b1, float(n))
    z2 = _z_kurtosis(b2, float(n))
    p_skew = 2.0 * stats.norm.sf(abs(z1))
    p_kurt = 2.0 * stats.norm.sf(abs(z2)) if np.isfinite(z2) else np.nan
    if np.isfinite(z2):
        k2 = z1 * z1 + z2 * z2
        if adjust:
            p = _royston_adjust(k2, float(n))
            chi2 = -2.0 * np.log(p)
        else:
            chi2 = k2
            p = stats.chi2.sf(k2, 2)
    else:
        chi2 = p = np.nan
    return pd.DataFrame(
        {
            "n": [n], "n_missing": [n_missing], "skewness": [sqrt_b1], "kurtosis": [b2],
            "z_skew": [z1], "z_kurt": [z2], "p_skew": [p_skew], "p_kurt": [p_kurt],
            "chi2": [chi2], "p": [p], "adjusted": [bool(adjust)],
        },
        index=pd.Index([label], name="variable"),
    )


# ----------------------------------------------------------------------------------------------
# ladder of powers
# ----------------------------------------------------------------------------------------------
def _transform(v, power):
    """Apply one rung the way Stata's ``ladder`` does and return float32-rounded values.

    Stata copies the variable into a ``float`` (single precision) temporary, computes the rung in
    double precision from it and stores the result as ``float`` again. A value is undefined
    (Stata's missing) when the result is not finite: log of a value <= 0, square root of a
    negative value, a negative power of 0, or a result beyond the float32 range.

    Returns
    -------
    numpy.ndarray of float64, shape (n,), or None
        The float32-rounded transform, or ``None`` if it is undefined for any observation.
    """
    base = v.astype(np.float32).astype(np.float64)
    with np.errstate(all="ignore"):
        if power == 0.0:
            t = np.log(base)
        elif power == 0.5:
            t = np.sqrt(base)
        elif power == -0.5:
            t = 1.0 / np.sqrt(base)
        else:
            t = base**power
        t32 = t.astype(np.float32)
    if not np.all(np.isfinite(t32)):
        return None
    return t32.astype(np.float64)


def ladder_transforms(x, *, name=None):
    """The nine ladder-of-powers transforms of ``x`` as Stata stores them (float32).

    Parameters
    ----------
    x : array_like or pandas.Series, shape (n,)
        Numeric sample; NaNs are dropped.
    name : str, keyword-only, optional
        Variable name used in the formulas (defaults to the Series name, else ``"x"``).

    Returns
    -------
    list of (label, formula, values)
        One entry per rung in Stata's order (cubic ... 1/cubic); ``values`` is a float64 array of
        shape (n,) holding float32-rounded values, or ``None`` where the rung is undefined for any
        observation (see :func:`ladder`).
    """
    v, _, label = _as_numeric_1d(x, name="x")
    label = name if name is not None else label
    return [(lab, form.format(x=label), _transform(v, power)) for lab, power, form in RUNGS]


def ladder(x, *, name=None, adjust=True):
    """Tukey's ladder of powers with an ``sktest`` on each rung, identical to Stata's ``ladder``.

    As in Stata, the variable is copied to single precision (Stata's default ``float`` storage),
    each transform is computed from that copy and stored in single precision again, and the
    skewness-kurtosis test (:func:`sktest`, adjusted by default) is run on it. For data that are
    exact in float32 (integers, like the auto data's mpg) the identity rung therefore equals
    :func:`sktest` of the raw data; for double-precision data it agrees to about 1e-6.

    Parameters
    ----------
    x : array_like or pandas.Series, shape (n,)
        Numeric sample (any unit). NaNs are dropped.
    name : str, keyword-only, optional
        Variable name shown in ``formula`` (defaults to the Series name, else ``"x"``; Stata
        abbreviates it to 8 characters, this function does not).
    adjust : bool, keyword-only
        Royston's adjustment of the joint test (Stata's default); ``False`` is ``ladder, noadjust``.

    Returns
    -------
    pandas.DataFrame, shape (9, 4)
        Columns ``transformation`` (Stata's label: cubic, square, identity, square root, log,
        1/(square root), inverse, 1/square, 1/cubic), ``formula`` (e.g. ``log(mpg)``), ``chi2``
        (adjusted chi2(2) unless ``adjust=False``) and ``p``. ``chi2`` and ``p`` are NaN where the
        transform is undefined for any observation (log of values <= 0, square root of negative
        values, negative powers of 0) or where Stata's kurtosis statistic is missing.

    Raises
    ------
    ValueError
        As :func:`sktest` (non-numeric input, fewer than 8 observations, zero variance).
    """
    v, n_missing, label = _as_numeric_1d(x, name="x")
    if v.size < MIN_N:
        raise ValueError(f"x ({label}) has {v.size} non-missing observations; ladder needs at least {MIN_N}")
    if np.ptp(v) == 0:
        raise ValueError(f"x ({label}) has zero variance")
    rows = []
    for lab, formula, t in ladder_transforms(v, name=name if name is not None else label):
        chi2 = p = np.nan
        if t is not None and np.ptp(t) > 0:
            res = sktest(t, adjust=adjust).iloc[0]
            chi2, p = float(res["chi2"]), float(res["p"])
        rows.append({"transformation": lab, "formula": formula, "chi2": chi2, "p": p})
    return pd.DataFrame(rows, columns=["transformation", "formula", "chi2", "p"])


# ----------------------------------------------------------------------------------------------
# plots
# ----------------------------------------------------------------------------------------------
def qnorm_points(x):
    """Points of Stata's ``qnorm`` plot.

    Parameters
    ----------
    x : array_like, shape (n,)
        Numeric sample; NaNs are dropped.

    Returns
    -------
    pandas.DataFrame, shape (n, 2)
        ``expected``: mean + sd * Phi^-1(i / (n + 1)), i = 1..n (sd with divisor n - 1);
        ``observed``: the sorted sample. Both in the unit of ``x``.
    """
    v, _, _ = _as_numeric_1d(x, name="x")
    n = v.size
    if n < 2:
        raise ValueError(f"x needs at least 2 non-missing observations for a quantile plot, got {n}")
    q = stats.norm.ppf(np.arange(1, n + 1) / (n + 1.0))
    return pd.DataFrame({"expected": v.mean() + v.std(ddof=1) * q, "observed": np.sort(v)})


def _plot_values(t, power):
    """Values plotted by qladder/gladder: negative powers are negated so the order is kept."""
    return -t if power < 0 else t


def _ladder_figure(x, *, title, variable, unit, figsize, kind, bins=None):
    import matplotlib.pyplot as plt

    v, _, label = _as_numeric_1d(x, name="x")
    variable = variable if variable is not None else label
    if v.size < 2:
        raise ValueError(f"x ({variable}) needs at least 2 non-missing observations to plot")
    fig, axes = plt.subplots(3, 3, figsize=figsize, layout="constrained")
    for ax, (lab, power, _form), (_, _, t) in zip(axes.flat, RUNGS, ladder_transforms(v, name=variable)):
        ax.set_title(lab, fontsize=9)
        if t is None:
            ax.text(0.5, 0.5, "undefined", ha="center", va="center", transform=ax.transAxes, color="0.4")
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        pv = _plot_values(t, power)
        if kind == "qladder":
            pts = qnorm_points(pv)
            ax.plot(pts["expected"], pts["observed"], "o", ms=2.5, mfc="none", mew=0.7, color="C0")
            lo, hi = float(pts.min().min()), float(pts.max().max())
            ax.plot([lo, hi], [lo, hi], "-", lw=0.8, color="C3")
        else:
            ax.hist(pv, bins=bins if bins is not None else "auto", density=True, color="C0", alpha=0.6,
                    edgecolor="white", lw=0.3)
            mu, sd = pv.mean(), pv.std(ddof=1)
            grid = np.linspace(pv.min(), pv.max(), 200)
            if sd > 0:
                ax.plot(grid, stats.norm.pdf(grid, mu, sd), color="C3", lw=1)
        ax.tick_params(labelsize=7)
    what = variable + (f" ({unit})" if unit else "")
    if kind == "qladder":
        fig.supxlabel("Inverse normal", fontsize=9)
        default = f"Quantile-normal plots by transformation: {what}"
    else:
        fig.supylabel("Density", fontsize=9)
        default = f"Histograms by transformation: {what}"
    fig.suptitle(title if title is not None else default, fontsize=10)
    return fig


def qladder(x, *, title=None, variable=None, unit=None, figsize=(8.0, 8.0)):
    """Ladder-of-powers quantile-normal plots, 3 x 3, as Stata's ``qladder``.

    Each panel is Stata's ``qnorm`` of one rung: the sorted transformed values against
    mean + sd * Phi^-1(i / (n + 1)), with the line of identity. Negative powers are plotted negated
    (-1/sqrt(x), -1/x, ...) so that the order of the observations is kept, as Stata does. A rung that
    is undefined for any observation shows an empty panel marked "undefined".

    Parameters
    ----------
    x : array_like or pandas.Series, shape (n,)
        Numeric sample; NaNs are dropped.
    title : str, keyword-only, optional
        Figure title (a default naming the variable is used if omitted).
    variable : str, keyword-only, optional
        Variable name for titles and formulas (defaults to the Series name, else ``"x"``).
    unit : str, keyword-only, optional
        Unit of ``x`` shown in the default title (e.g. ``"mL"``).
    figsize : (float, float), keyword-only
        Figure size in inches.

    Returns
    -------
    matplotlib.figure.Figure
        Nine axes in Stata's rung order (cubic, square, identity, square root, log, 1/(square
        root), inverse, 1/square, 1/cubic); in each, the first line holds the points.
    """
    return _ladder_figure(x, title=title, variable=variable, unit=unit, figsize=figsize, kind="qladder")


def gladder(x, *, title=None, variable=None, unit=None, bins=None, figsize=(8.0, 8.0)):
    """Ladder-of-powers histograms with a normal density overlay, 3 x 3, as Stata's ``gladder``.

    Parameters
    ----------
    x : array_like or pandas.Series, shape (n,)
        Numeric sample; NaNs are dropped.
    title, variable, unit, figsize
        As in :func:`qladder`.
    bins : int or str, keyword-only, optional
        Histogram bins passed to :meth:`matplotlib.axes.Axes.hist` (default ``"auto"``).

    Returns
    -------
    matplotlib.figure.Figure
        Nine axes in Stata's rung order; each holds a density histogram of the transformed values
        (negated for negative powers) and the normal density with the same mean and SD.
    """
    return _ladder_figure(x, title=title, variable=variable, unit=unit, figsize=figsize,
                          kind="gladder", bins=bins)
