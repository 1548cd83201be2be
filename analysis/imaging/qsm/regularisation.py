"""Rules for MEDI's regularisation weight λ read off a sweep of solves, for comparison and teaching.

The solvers' own automatic choice (``lambda_="auto"``, the default of
:func:`~analysis.imaging.qsm.dipole.medi`) is the closed-form rule of
:mod:`analysis.imaging.qsm._lambda`: no extra solve, validated within 10 % of the best swept λ on
the realistic phantom. This module keeps the rules that need a sweep — :func:`choose_lambda`
(locality, L-curve, discrepancy) and :func:`plot_lambda_choice` — and :func:`lambda_sweep`, which
solves at multiples of the automatic λ to show what too little and too much regularisation do
(notebook 01). :func:`choose_lambda` runs the Gauss–Newton solver by default, on which its rules
were written; on the realistic phantom with the ADMM solver the locality rule chose λ up to 10×
too small (NRMSE up to 1.4× the best; ``benchmarks/bench_lambda.py --method locality``), which is
one reason it is not the default.

**Locality of the fit** (``method="locality"``). MEDI solves for χ on the whole FFT
grid; outside the brain mask the data weight is 0, so χ there is free up to the gradient
penalty. A local field that is what the model says — the field of sources *inside* the mask — is
explained by χ inside the mask. What the model cannot explain that way — residual background
fields (harmonic inside the mask: only sources outside it produce them), noise next to the mask
boundary — the solver can only fit with susceptibility outside the mask, and with the streaks and
boundary artefacts that come with it. For each solution the rule compares two residuals, in rad²
with the solver's data weights w::

    ρ      = ‖w (e^{i d⊛χ} − e^{iφ})‖²            χ as solved (outside the mask included)
    ρ_in   = ‖w (e^{i d⊛(M χ)} − e^{iφ})‖²        χ restricted to the mask M (the map returned)
    ρ₀     = ‖w (1 − e^{iφ})‖²                    χ = 0: the data's energy

and the **external fraction** ``q(λ) = (ρ_in − ρ) / (ρ₀ − ρ)``: the share of the explained field
that needs sources outside the mask (read only once the fit explains half of the field's
energy, ρ ≤ ρ₀/2). On consistent data (exact local field plus noise) q is small (10⁻⁴–10⁻³ on the
head phantom): it falls as λ grows (χ spills less across the mask boundary as the fit sharpens),
then rises again once noise at the boundary is fitted — the onset of noise fitting, where the
NRMSE is best. On data with non-local errors (PDF's residual background on the phantom:
0.0066 ppm rms, two thirds of the local field) q rises through 1–2 % while the fit is still
coarse, and keeps rising with λ. The rule (:func:`_locality_choice`), over increasing λ:

* if q has a minimum before it rises through ``threshold`` ε = 0.02: the minimum (vertex of the
  parabola through the three solves around it, in log λ and log q) — regime ``'minimum'``; where
  q ≤ 0 (the fit is local to the precision of the measure), the λ where it turns positive;
* if q rises from nearly zero through ε: that crossing — regime ``'non-local'``: fit no further,
  the rest is model error;
* if q rises but levels off below ε (a slab, whose true sources continue outside the field of
  view): the flattest point of q — regime ``'flattest'``.

q is a ratio of residuals of the same data, so the rule does not depend on the field's unit, on
ΔTE or B0, on a noise level or on a magnitude image; it needs no noise map; and it reacts to model
errors, which a discrepancy principle with the noise level does not. The search solves on a
half-decade grid of normalised λ from λ_norm = 3, up or down as the rule asks, until it is
bracketed, then solves once more at the chosen λ (``n_solves`` in the result).

**Not with the SMV option.** MEDI's ``smv_radius_mm`` high-passes field and kernel, which removes
exactly the non-local components that q measures: q is then ~10⁻⁵ at every λ and carries no
information (on the phantom's whole-brain recipe, SMV 5 mm + MERIT + MEDI+0, the rule picked
λ ≈ 7·10⁵ for an NRMSE of 51 % where λ = 2000 gives 19 %). ``method="locality"`` refuses it.

Measured with :func:`~analysis.imaging.qsm.dipole.medi` (Gauss–Newton) on the 2 mm simple head
phantom (``benchmarks/bench_lambda.py --solver medi --method locality --realism simple``): exact
local fields with noise for SNR 50–200, ΔTE 2.4 ms, 7 T and without magnitude, the chosen λ
gives an NRMSE within 10 % of the best λ of a sweep; on PDF local fields, with and without
magnitude and noise map, it picks λ ≈ 40–100 (the best of the sweep) where the toolbox's
λ = 1000 is 30–40 % worse.

**Other rules.** ``method="lcurve"``: the classical L-curve corner, the point of maximum curvature
of (log ρ, log ‖M_G∇χ‖₁) over a log-spaced grid (Hansen 1992); kept for comparison — on MEDI
solutions the curve has two bends and the sharper one is usually the onset of solver
non-convergence at large λ, so it is not the default. ``method="discrepancy"``: Morozov's
discrepancy principle, ρ(λ) = Σ w² σ² with the noise standard deviation σ from ``noise_std`` (in
the unit of the field, ppm) or, without it, a robust estimate from the field itself (MAD of a
Laplacian high-pass, :func:`estimate_noise_std`); it ignores model errors, so on real data it
under-regularises, and the field-based noise estimate is inflated by fine field structure.

**Units of λ.** ``lambda_`` is in the solver's convention (data term in radians of phase over
``delta_te_s`` at ``b0_tesla``, as in :func:`~analysis.imaging.qsm.dipole.medi`). The sweep runs
on the *normalised* weight ``λ_norm = λ · σ_φ``, where σ_φ is the standard deviation of the local
field over the mask in those radians: since the L1 term is 1-homogeneous and the data term
quadratic, scaling the field by c (another unit, ΔTE or B0) scales the solution by c at
``λ / c``, i.e. at the same λ_norm. The same data in ppm with another ΔTE/B0, or in radians, thus
give the same λ_norm and the same χ (up to the solver's ε and the nonlinearity of e^{iφ}).
"""

from __future__ import annotations

import functools
import inspect
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from analysis.imaging.metrics import nrmse

from ._lambda import estimate_noise_std
from .dipole import DEFAULT_B0_TESLA, DEFAULT_DELTA_TE_S, _validate, _zero_reference, medi
from .fit import rad_per_ppm
from .kernels import as_voxel_size, forward_field

__all__ = [
    "LambdaChoice",
    "choose_lambda",
    "estimate_noise_std",
    "plot_lambda_choice",
    "METHODS",
    "LOCALITY_THRESHOLD",
    "SWEEP_FACTORS",
    "lambda_sweep",
]

#: Rules of :func:`choose_lambda`.
METHODS = ("locality", "lcurve", "discrepancy")
#: Default ε of the locality rule: the largest fraction of the explained field energy that the
#: fit may attribute to susceptibility outside the mask (see the module docstring).
LOCALITY_THRESHOLD = 0.02
#: External fractions at or below this are not resolved: χ restricted to the mask fits the data as
#: well as the solver's χ (the solver's residual is evaluated with χ cropped to the mask's bounding
#: box, so q can be slightly negative).
EXTERNAL_FLOOR = 0.0
#: q is read only where the fit explains at least this fraction of the field's energy (ρ ≤ ρ₀/2).
MIN_EXPLAINED = 0.5
#: Normalised λ (λ · σ_φ) where the search starts, its step (decades) and its bounds.
START_NORMALISED = 3.0
STEP_DECADES = 0.5
BOUNDS_NORMALISED = (1e-2, 1e5)
#: Default grid of the L-curve (normalised λ): 10^-1 … 10^4 in half decades.
LCURVE_GRID_NORMALISED = tuple(10.0 ** np.arange(-1.0, 4.01, 0.5))

_TABLE_COLUMNS = ["lambda", "lambda_normalised", "residual", "residual_local", "external_fraction", "regularisation",
                  "curvature", "seconds"]


# --------------------------------------------------------------------------------------------
# result


@dataclass
class LambdaChoice:
    """The λ chosen by :func:`choose_lambda`, with the sweep it was read from.

    Attributes
    ----------
    lambda_ : float
        Chosen data weight in the solver's convention (field in radians per ``delta_te_s`` at
        ``b0_tesla``): pass it as ``lambda_`` to :func:`~analysis.imaging.qsm.dipole.medi`.
    lambda_normalised : float
        ``lambda_ · field_scale_rad``: the same choice, independent of the field's unit, ΔTE and B0.
    method : str
        Rule used (one of :data:`METHODS`).
    table : pandas.DataFrame
        One row per solve, sorted by λ: ``lambda`` (solver convention), ``lambda_normalised``,
        ``residual`` ρ and ``residual_local`` ρ_in (rad², weighted), ``external_fraction``
        q = (ρ_in − ρ)/(ρ₀ − ρ), ``regularisation`` (‖M_G ∇χ‖₁, χ in rad, ∇ per mm),
        ``curvature`` of the L-curve (log ρ, log ‖M_G∇χ‖₁) over log λ (NaN where undefined),
        ``seconds`` of the solve.
    seconds : float
        Wall time of the whole choice (all solves).
    n_solves : int
        Number of inversions run (the final one at the chosen λ included).
    field_scale_rad : float
        σ_φ: standard deviation of the local field over the mask (rad per ΔTE).
    rad_per_ppm : float
        Conversion of the field to the solver's radians.
    target : float
        The criterion's target: the locality threshold, the discrepancy ρ (rad²) or NaN (L-curve).
    bracketed : bool
        False when the criterion was not reached inside :data:`BOUNDS_NORMALISED` (or inside
        ``lambdas``): the chosen λ is then the bound nearest to it.
    solver : str
        Name of the solver function.
    noise_std_ppm : float or None
        Noise level used by the discrepancy rule (ppm): given or estimated.
    regime : str or None
        Locality rule: ``'minimum'`` (λ where the fit is most local) or ``'non-local'`` (λ where
        the external fraction reaches ε: the field holds non-local components).
    chi : ndarray or None
        Susceptibility (ppm) of the solve at the chosen λ (None with ``solve_final=False``).
    info : dict or None
        The solver's ``info`` of that solve, with ``lambda``, ``lambda_method`` and
        ``lambda_normalised`` added.
    """

    lambda_: float
    lambda_normalised: float
    method: str
    table: pd.DataFrame
    seconds: float
    n_solves: int
    field_scale_rad: float
    rad_per_ppm: float
    target: float
    bracketed: bool
    solver: str
    noise_std_ppm: float | None = None
    regime: str | None = None
    chi: np.ndarray | None = field(default=None, repr=False)
    info: dict | None = field(default=None, repr=False)

    def record(self):
        """Plain dict for a JSON sidecar / ``return_info``: λ, rule, normalised λ, cost."""
        return {
            "lambda": float(self.lambda_),
            "lambda_method": self.method,
            "lambda_normalised": float(self.lambda_normalised),
            "lambda_field_scale_rad": float(self.field_scale_rad),
            "lambda_target": None if not np.isfinite(self.target) else float(self.target),
            "lambda_bracketed": bool(self.bracketed),
            "lambda_solves": int(self.n_solves),
            "lambda_seconds": float(self.seconds),
            "lambda_solver": self.solver,
            "lambda_regime": self.regime,
        }


# --------------------------------------------------------------------------------------------
# noise level from the field


# --------------------------------------------------------------------------------------------
# helpers


def _default_solver():
    """Gauss–Newton/CG MEDI (``medi(solver="gncg")``), on which the rules here were measured."""

    @functools.wraps(medi)
    def medi_gncg(*args, **kwargs):
        kwargs.setdefault("solver", "gncg")
        return medi(*args, **kwargs)

    return medi_gncg


def _accepted(fun, options):
    """The keys of ``options`` that ``fun`` accepts (all of them with **kwargs)."""
    params = inspect.signature(fun).parameters
    if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(options)
    return {k: v for k, v in options.items() if k in params}


def _curvature(lam, rho, eta):
    """Signed curvature of (log ρ, log η) as a function of log λ (finite differences)."""
    out = np.full(len(lam), np.nan)
    ok = (rho > 0) & (eta > 0)
    if ok.sum() < 3:
        return out
    t, x, y = np.log(lam[ok]), np.log(rho[ok]), np.log(eta[ok])
    dx, dy = np.gradient(x, t), np.gradient(y, t)
    ddx, ddy = np.gradient(dx, t), np.gradient(dy, t)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = (dx * ddy - dy * ddx) / (dx * dx + dy * dy) ** 1.5
    out[np.flatnonzero(ok)] = k
    return out


def _crossing(l0, g0, l1, g1, target, log_g):
    """λ where g reaches ``target`` between (l0, g0) and (l1, g1), linear in log λ (and log g)."""
    if log_g:
        g0, g1, target = np.log(max(g0, 1e-12)), np.log(max(g1, 1e-12)), np.log(max(target, 1e-12))
    t0, t1 = np.log(l0), np.log(l1)
    if g1 == g0:
        return float(np.sqrt(l0 * l1))
    t = t0 + (target - g0) * (t1 - t0) / (g1 - g0)
    return float(np.exp(np.clip(t, min(t0, t1), max(t0, t1))))


# --------------------------------------------------------------------------------------------
# the sweep


class _Sweep:
    """Solves at given λ and keeps, per λ, the residuals and the regularisation term."""

    def __init__(self, solve, objective, scale_rad, rho0, mask, progress, callback=None):
        self.solve = solve
        self.mask = mask
        self.rho0 = rho0
        self.callback = callback
        self.objective = objective
        self.scale = scale_rad
        self.rows = {}
        self.solutions = {}
        self.progress = progress

    def __call__(self, lam):
        lam = float(lam)
        for k in self.rows:  # same λ to 1e-9: reuse
            if abs(k - lam) <= 1e-9 * lam:
                return self.rows[k]
        t0 = time.perf_counter()
        chi, info = self.solve(lam)
        sec = time.perf_counter() - t0
        full = info.get("chi_unmasked")
        # χ restricted to the brain mask as given (not to the solver's output mask, which the SMV
        # option erodes: χ in the eroded rim is brain, not an external source)
        obj_in = self.objective(chi if full is None else np.where(self.mask, full, np.float32(0.0)))
        if "objective" in info:  # medi_admm: the objective of its own solution on its grid
            rho = float(info["objective"]["data"]) / lam
            eta = float(info["objective"]["tv"])
        elif full is not None:
            obj = self.objective(full)
            rho, eta = obj["data"], obj["tv"]
        else:
            raise ValueError("solver must return info['chi_unmasked'] (as medi does) or info['objective'] (as "
                             "medi_admm does): the residual of the solver's own χ is needed")
        rho_in = obj_in["data"]
        row = {"lambda": lam, "lambda_normalised": lam * self.scale, "residual": rho, "residual_local": rho_in,
               "external_fraction": (rho_in - rho) / (self.rho0 - rho) if self.rho0 > rho else np.nan,
               "regularisation": eta,
               "curvature": np.nan, "seconds": sec}
        self.rows[lam] = row
        info = {k: v for k, v in info.items() if k != "chi_unmasked"}  # memory: keep one map per solve
        self.solutions[lam] = (chi, info)
        if self.callback is not None:
            self.callback(lam, chi, info)
        if self.progress:
            print(f"lambda {lam:10.4g} (normalised {lam * self.scale:8.3g}): residual {rho:.4g}, local {rho_in:.4g}, "
                  f"external {row['external_fraction']:.2e}, TV {eta:.4g}, {sec:.1f} s", flush=True)
        return row

    def table(self):
        if not self.rows:
            return pd.DataFrame(columns=_TABLE_COLUMNS)
        t = pd.DataFrame([self.rows[k] for k in sorted(self.rows)], columns=_TABLE_COLUMNS)
        t["curvature"] = _curvature(t["lambda"].to_numpy(), t["residual"].to_numpy(dtype=float),
                                    t["regularisation"].to_numpy(dtype=float))
        return t


def _bracket(sweep, g, target, lam0, step, lo, hi, lambdas, *, log_g):
    """Find λ with g(λ) = target, g increasing in λ; return (λ, bracketed).

    Steps by factors 10^step from ``lam0`` until the target is bracketed or a bound is passed
    (or solves at the given ``lambdas``), then interpolates linearly in log λ and, with
    ``log_g``, in log g.
    """
    if lambdas is not None:
        vals = [(lam, g(sweep(lam))) for lam in lambdas]
    else:
        fac = 10.0 ** step
        lam = lam0
        vals = [(lam, g(sweep(lam)))]
        direction = 1 if vals[-1][1] < target else -1
        while True:
            lam = lam * fac ** direction
            if lam > hi * (1 + 1e-9) or lam < lo * (1 - 1e-9):
                break
            vals.append((lam, g(sweep(lam))))
            if (vals[-1][1] >= target) == (direction > 0):
                break
    return _interpolate(vals, target, log_g)


def _interpolate(vals, target, log_g):
    """Crossing of ``target`` by the (λ, g) pairs (g increasing): (λ, bracketed)."""
    vals = sorted(vals)
    lams = np.array([v[0] for v in vals])
    gs = np.array([v[1] for v in vals])
    above = np.flatnonzero(gs >= target)
    if above.size == 0:
        return float(lams[-1]), False
    i = above[0]
    if i == 0:
        return float(lams[0]), False
    lg = bool(log_g and gs[i - 1] > 0 and gs[i] > 0)
    return _crossing(lams[i - 1], gs[i - 1], lams[i], gs[i], target, lg), True


def _vertex(lams, ys):
    """λ at the vertex of the parabola through three (log λ, log y) points, within their range.

    y is used linearly when one of the values is not positive (a fit that is local to round-off).
    """
    t = np.log(np.asarray(lams, dtype=float))
    y = np.asarray(ys, dtype=float)
    if np.all(y > 0):
        y = np.log(y)
    a = np.polyfit(t, y, 2)
    if not a[0] > 0:
        return float(lams[int(np.argmin(ys))])
    return float(np.exp(np.clip(-a[1] / (2.0 * a[0]), t.min(), t.max())))


def _locality_choice(rows, eps, floor=EXTERNAL_FLOOR, valid=MIN_EXPLAINED):
    """Apply the locality rule to (λ, q, ρ/ρ₀) triples; return (λ, bracketed, regime, direction).

    q is only read where the fit explains at least ``valid`` of the field's energy
    (ρ/ρ₀ ≤ 1 − ``valid``); below that λ the fit has barely started and q is the ratio of two
    small numbers. Among those λ, ascending, up to the first upward crossing of ``eps`` after q
    has been below it (the *local range*):

    * q ≤ ``floor`` at the smallest of them (the fit is local to the precision of the measure):
      the λ where q rises above the floor — regime ``'minimum'``;
    * an interior minimum of q (the smallest q of the local range, with a larger q on each
      side): the vertex of the parabola through it and its two neighbours in (log λ, log q) —
      regime ``'minimum'`` (``'non-local'`` if that minimum is ≥ ``eps``);
    * q rising from the smallest λ, where it is below ``eps``/4 (or the solve below did not
      count), through ``eps``: the crossing, interpolated in (log λ, log q) — ``'non-local'``;
    * q rising so but staying below ``eps``: the flattest point (smallest sum of the log-log
      slopes of q on its two sides) — regime ``'flattest'``;
    * q ≥ ``eps`` and rising from the smallest λ that counts: that λ — ``'non-local'``.

    When the choice is not bracketed, ``direction`` says where to solve next: −1 (smaller λ),
    +1 (larger λ); λ is then the nearest sampled value.
    """
    rows = sorted((float(lam), float(v), float(r)) for lam, v, r in rows if np.isfinite(v) and np.isfinite(r))
    if not rows:
        raise ValueError("no solve gave a usable residual (is the field all zero?)")
    ok = np.array([r[2] <= 1.0 - valid for r in rows])
    if not ok.any():  # nothing explains enough of the field yet
        return rows[-1][0], False, "minimum", 1
    first = int(np.argmax(ok))
    covered = first > 0  # a solve below the meaningful range: its low end is known
    lams = np.array([r[0] for r in rows[first:]])
    q = np.array([r[1] for r in rows[first:]])
    n = len(q)
    j_eps = next((j for j in range(1, n) if q[j - 1] < eps <= q[j]), None)
    stop = j_eps if j_eps is not None else n
    if q[0] <= floor:  # fully local: up to where q rises above the floor
        k = next((k for k in range(1, n) if q[k] > floor), None)
        if k is None:
            return float(lams[-1]), False, "minimum", 1
        if q[k] >= eps:
            return _crossing(lams[k - 1], 0.0, lams[k], q[k], eps, False), True, "non-local", 0
        return _crossing(lams[k - 1], q[k - 1], lams[k], q[k], floor, False), True, "minimum", 0
    i = int(np.argmin(q[:stop]))
    if 0 < i and i + 1 < n and q[i + 1] > q[i]:
        regime = "minimum" if q[i] < eps else "non-local"
        return _vertex(lams[i - 1:i + 2], q[i - 1:i + 2]), True, regime, 0
    if i > 0:  # still falling at the largest λ solved
        return float(lams[i]), False, "minimum" if q[i] < eps else "non-local", 1
    # q rises from the smallest λ that counts
    if q[0] >= eps:
        return float(lams[0]), covered, "non-local", -1
    if not (covered or q[0] <= eps / 4.0):  # from a sizeable value: the minimum may lie below
        return float(lams[0]), False, "minimum", -1
    if j_eps is not None:
        a = max(q[j_eps - 1], 0.0)
        return _crossing(lams[j_eps - 1], a, lams[j_eps], q[j_eps], eps, a > 0), True, "non-local", 0
    if stop >= 3 and np.all(q[:stop] > 0):
        seg = np.diff(np.log(q[:stop])) / np.diff(np.log(lams[:stop]))
        k = int(np.argmin(seg[:-1] + seg[1:])) + 1
        if k + 1 < len(seg):  # the slope rises again after the flattest point
            return float(lams[k]), True, "flattest", 0
    return float(lams[stop - 1]), False, "flattest", 1


def _search_locality(sweep, lam0, step, lo, hi, eps):
    """Solve on a 10^step grid from ``lam0`` until the locality rule is bracketed (or a bound)."""
    fac = 10.0 ** step
    pts = {}

    def q(lam):
        row = sweep(lam)
        pts[lam] = (row["external_fraction"], row["residual"] / sweep.rho0)

    q(lam0)
    if lam0 * fac <= hi * (1 + 1e-9):
        q(lam0 * fac)
    while True:
        lam, ok, regime, direction = _locality_choice([(k, v[0], v[1]) for k, v in pts.items()], eps)
        if ok:
            return lam, ok, regime
        nxt = min(pts) / fac if direction < 0 else max(pts) * fac
        if nxt < lo * (1 - 1e-9) or nxt > hi * (1 + 1e-9):
            return lam, False, regime
        q(nxt)


# --------------------------------------------------------------------------------------------
# public API


def choose_lambda(local_field, mask, magnitude=None, *, voxel_size, noise_std=None, b0_direction=(0.0, 0.0, 1.0),
                  delta_te_s=DEFAULT_DELTA_TE_S, b0_tesla=DEFAULT_B0_TESLA, method="locality", lambdas=None,
                  solver=None, threshold=LOCALITY_THRESHOLD, discrepancy_factor=1.0, refine=True, solve_final=True,
                  progress=False, callback=None, **solver_options):
    """Choose MEDI's data weight λ from the data (see the module docstring for the rules).

    Parameters
    ----------
    local_field : ndarray, shape (X, Y, Z)
        Local (background-removed) field (ppm, or any unit consistent with ``delta_te_s`` and
        ``b0_tesla``: the solver converts it to radians by ``rad_per_ppm``).
    mask : ndarray of bool, shape (X, Y, Z)
        Brain mask.
    magnitude : ndarray, shape (X, Y, Z), optional
        Magnitude for MEDI's edge mask. None: a uniform image (the edge mask is then all voxels
        inside the mask: plain total variation).
    voxel_size : tuple of 3 float
        Voxel size (mm).
    noise_std : ndarray, shape (X, Y, Z), optional
        Noise standard deviation of the field. Passed to the solver (data weights: only relative
        values matter) and, for ``method="discrepancy"``, used as the absolute noise level in the
        unit of ``local_field`` (ppm). Default: uniform weights (and, for the discrepancy rule,
        :func:`estimate_noise_std`).
    b0_direction : tuple of 3 float
        B0 direction in voxel axes.
    delta_te_s : float
        Echo spacing ΔTE (s) defining the solver's radians (as in :func:`medi`).
    b0_tesla : float
        Field strength (T).
    method : {'locality', 'lcurve', 'discrepancy'}
        Rule (default ``'locality'``).
    lambdas : sequence of float, optional
        λ values (solver convention) to solve at, instead of the adaptive search (locality,
        discrepancy) or of :data:`LCURVE_GRID_NORMALISED` (L-curve). The chosen λ is interpolated
        between them.
    solver : callable, optional
        Inversion with :func:`medi`'s signature that accepts ``lambda_`` and ``return_info`` and
        returns ``(chi, info)``: :func:`medi` (default) or
        :func:`~analysis.imaging.qsm.admm.medi_admm`. The rule is evaluated on this solver's
        solutions, and the chosen λ is for this solver.
    threshold : float
        ε of the locality rule (:data:`LOCALITY_THRESHOLD`, 0.02): the largest external fraction
        (ρ_in − ρ)/(ρ₀ − ρ) accepted.
    discrepancy_factor : float
        τ of the discrepancy target ρ = τ Σ w²σ² (1).
    refine : bool
        Discrepancy rule: solve at the interpolated λ and, if ρ there is off the target by more
        than 25 %, interpolate once more with the nearer bracket.
    solve_final : bool
        Solve at the chosen λ when it is not one of the solved λ, so that ``chi`` is the
        reconstruction at that λ.
    progress : bool
        Print one line per solve.
    callback : callable, optional
        Called as ``callback(lambda_, chi, info)`` after each solve of the sweep (e.g. to score
        each solution against a phantom's truth without keeping the maps).
    **solver_options
        Other keywords of the solver (``percentage``, ``max_iter``, ``smv_radius_mm``, ``merit``,
        ``csf_mask``, ``lambda_csf``, ``zero_reference``, ``pad``, ``workers``, …). During the
        sweep χ is not zero-referenced (the offset would change its field); the returned ``chi`` is
        then zero-referenced to the CSF as the solver does (``zero_reference``, default True).

    Returns
    -------
    LambdaChoice

    Raises
    ------
    ValueError
        Invalid inputs (the message names the parameter).
    """
    t_start = time.perf_counter()
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    f, m, mag, noise = _validate(local_field, mask, magnitude, noise_std)
    vs = as_voxel_size(voxel_size)
    scale_ppm = rad_per_ppm(delta_te_s=delta_te_s, b0_tesla=b0_tesla)
    thr = float(threshold)
    if not np.isfinite(thr) or thr <= 0:
        raise ValueError(f"threshold must be a positive number, got {threshold!r}")
    if not (np.isfinite(float(discrepancy_factor)) and float(discrepancy_factor) > 0):
        raise ValueError(f"discrepancy_factor must be a positive number, got {discrepancy_factor!r}")
    if lambdas is not None:
        lambdas = np.asarray(lambdas, dtype=float).ravel()
        if lambdas.size == 0 or not np.all(np.isfinite(lambdas)) or np.any(lambdas <= 0):
            raise ValueError("lambdas must be a non-empty sequence of positive numbers")
        lambdas = np.unique(lambdas)
        if method == "lcurve" and lambdas.size < 3:
            raise ValueError("lambdas needs at least 3 values for the L-curve")
    if method == "locality" and solver_options.get("smv_radius_mm") is not None:
        raise ValueError("method='locality' cannot be used with smv_radius_mm: the SMV high-pass removes the "
                         "non-local field components the rule measures (on the head phantom's whole-brain recipe it "
                         "chose λ 300× too large); give lambda_ a number (the recipe's) or use method='lcurve'")
    if "lambda_" in solver_options or "return_info" in solver_options:
        raise ValueError("lambda_ and return_info are set by choose_lambda; do not pass them")
    solver = _default_solver() if solver is None else solver
    if not callable(solver):
        raise ValueError(f"solver must be callable (e.g. medi or medi_admm), got {solver!r}")
    solver_name = getattr(solver, "__name__", type(solver).__name__)
    if mag is None:
        mag = m.astype(np.float32)

    fm = f[m].astype(np.float64)
    sigma_phi = float(np.std(fm)) * scale_ppm
    if not sigma_phi > 0:
        raise ValueError("local_field is constant over the mask: nothing to invert")

    # the objective's terms, evaluated as the solvers set the problem up (same grid, weights)
    from .admm import medi_objective  # local import: admm imports dipole

    base = dict(voxel_size=vs, noise_std=noise, b0_direction=b0_direction, delta_te_s=delta_te_s, b0_tesla=b0_tesla)
    obj_opts = _accepted(medi_objective, {k: v for k, v in solver_options.items()
                                          if k in ("percentage", "smv_radius_mm", "pad", "data_term", "workers")})

    def objective(chi):
        return medi_objective(chi, f, m, mag, lambda_=1.0, **base, **obj_opts)

    sweep_opts = dict(solver_options)
    rereference = solver_options.get("csf_mask") is not None and solver_options.get("zero_reference", True)
    if rereference:
        sweep_opts["zero_reference"] = False
        csf_user = np.asarray(solver_options["csf_mask"], bool)
        if csf_user.shape != f.shape:
            raise ValueError(f"csf_mask shape {csf_user.shape} does not match local_field shape {f.shape}")

    def solve(lam, opts=sweep_opts):
        out = solver(f, m, mag, lambda_=lam, return_info=True, **base, **opts)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise ValueError("solver must return (chi, info) with return_info=True")
        return out

    rho0 = float(objective(np.zeros(f.shape, np.float32))["data"])  # residual of χ = 0: the data energy
    if not rho0 > 0:
        raise ValueError("local_field is zero over the mask: nothing to invert")
    sweep = _Sweep(solve, objective, sigma_phi, rho0, m, progress, callback)
    lo, hi = (b / sigma_phi for b in BOUNDS_NORMALISED)
    lam0 = START_NORMALISED / sigma_phi
    noise_level = None
    target = np.nan
    bracketed = True
    regime = None

    if method == "lcurve":
        grid = lambdas if lambdas is not None else np.array(LCURVE_GRID_NORMALISED) / sigma_phi
        for lam in grid:
            sweep(lam)
        tab = sweep.table()
        k = tab["curvature"].to_numpy()
        ok = np.isfinite(k)
        ok[[0, -1]] = False  # end points have one-sided differences
        if not ok.any():
            raise ValueError("the L-curve has no interior point with a defined curvature")
        i = int(np.nanargmax(np.where(ok, np.abs(k), np.nan)))
        chosen = float(tab["lambda"].iloc[i])
    elif method == "locality":
        target = thr
        if lambdas is not None:
            rows = [sweep(lam) for lam in lambdas]
            chosen, bracketed, regime, _ = _locality_choice(
                [(r["lambda"], r["external_fraction"], r["residual"] / rho0) for r in rows], thr)
        else:
            chosen, bracketed, regime = _search_locality(sweep, lam0, STEP_DECADES, lo, hi, thr)
    else:  # discrepancy: −log ρ increases with λ; target −log(τ Σ w²σ²)
        if noise is None:
            noise_level = estimate_noise_std(f, m)
            sig_rad = np.full(int(m.sum()), noise_level * scale_ppm)
        else:
            sig_rad = noise[m] * scale_ppm
            noise_level = float(np.median(noise[m]))
        w = 1.0 / sig_rad
        w /= w.mean()  # the solvers' weights: 1/σ normalised to mean 1 over the mask
        target = float(discrepancy_factor) * float(np.sum((w * sig_rad) ** 2))

        def g(row):
            return -np.log(max(row["residual"], 1e-300))

        tgt = -np.log(target)
        chosen, bracketed = _bracket(sweep, g, tgt, lam0, STEP_DECADES, lo, hi, lambdas, log_g=False)
        if refine and bracketed and lambdas is None:
            if abs(g(sweep(chosen)) - tgt) > np.log(1.25):  # off by > 25 %: once more, nearer bracket
                chosen, bracketed = _interpolate([(r["lambda"], g(r)) for r in sweep.rows.values()], tgt, False)

    chi = info = None
    if solve_final:
        sweep(chosen)  # reuses an existing solve at this λ
        key = min(sweep.rows, key=lambda k: abs(np.log(k / chosen)))
        chi, info = sweep.solutions[key]
        info = dict(info)
        if rereference:  # zero-reference to the CSF as the solver would have (dipole._zero_reference)
            out_mask = np.asarray(info.get("mask", m), bool)
            chi = _zero_reference(np.array(chi, copy=True), out_mask, csf_user & out_mask)
    table = sweep.table()
    n_solves = len(sweep.rows)
    choice = LambdaChoice(lambda_=float(chosen), lambda_normalised=float(chosen * sigma_phi), method=method,
                          table=table, seconds=time.perf_counter() - t_start, n_solves=n_solves,
                          field_scale_rad=sigma_phi, rad_per_ppm=scale_ppm, target=float(target), bracketed=bracketed,
                          solver=solver_name, noise_std_ppm=noise_level, regime=regime, chi=chi, info=info)
    if info is not None:
        info.update({k: v for k, v in choice.record().items() if k in ("lambda", "lambda_method", "lambda_normalised")})
        choice.info = info
    # sweep solutions are dropped here (memory); only the chosen one is kept
    sweep.solutions.clear()
    return choice


def plot_lambda_choice(choice, *, truth_nrmse=None, axes=None):
    """Figure of a λ sweep: the L-curve, the criterion and (phantoms) the error, chosen λ marked.

    Left: the L-curve, ‖M_G∇χ‖₁ against the data residual ρ (log-log), each point labelled with
    its normalised λ: small λ (bottom right: large residual) is too much regularisation
    (over-smoothed, data not explained), large λ (top left: large gradient norm) too little (noise
    and non-local errors fitted: streaks, χ outside the brain). Middle: the external fraction q
    (and the residual ρ) against the normalised λ, with the locality threshold ε or the
    discrepancy target. Right, with ``truth_nrmse``: the NRMSE against the truth.

    Parameters
    ----------
    choice : LambdaChoice
        Result of :func:`choose_lambda`.
    truth_nrmse : sequence of float, optional
        NRMSE (%) of each row of ``choice.table`` against a known truth (phantoms).
    axes : sequence of matplotlib Axes, optional
        Where to draw: 2 axes (3 with ``truth_nrmse``); default a new figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    if not isinstance(choice, LambdaChoice):
        raise ValueError(f"choice must be a LambdaChoice, got {type(choice).__name__}")
    tab = choice.table
    lamn = tab["lambda_normalised"].to_numpy(dtype=float)
    tn = None
    if truth_nrmse is not None:
        tn = np.asarray(truth_nrmse, dtype=float).ravel()
        if tn.shape != lamn.shape:
            raise ValueError(f"truth_nrmse must have one value per table row ({lamn.size}), got {tn.size}")
    n_ax = 2 if tn is None else 3
    if axes is None:
        fig, axes = plt.subplots(1, n_ax, figsize=(4.5 * n_ax, 4), constrained_layout=True)
    else:
        if len(axes) < n_ax:
            raise ValueError(f"axes must hold {n_ax} Axes, got {len(axes)}")
        fig = axes[0].figure
    ax, bx = axes[0], axes[1]
    rho = tab["residual"].to_numpy(dtype=float)
    eta = tab["regularisation"].to_numpy(dtype=float)
    i = int(np.argmin(np.abs(np.log(tab["lambda"].to_numpy(dtype=float) / choice.lambda_))))
    ax.loglog(rho, eta, "o-", color="C0")
    for x, y, ln in zip(rho, eta, lamn):
        ax.annotate(f"{ln:.2g}", (x, y), textcoords="offset points", xytext=(5, -3), fontsize=7)
    ax.loglog([rho[i]], [eta[i]], "o", ms=12, mfc="none", mec="C3",
              label=f"chosen: λ {choice.lambda_:.3g} (normalised {choice.lambda_normalised:.3g})")
    ax.set_xlabel("data residual ρ (rad², weighted)")
    ax.set_ylabel("‖M_G ∇χ‖₁")
    ax.set_title(f"L-curve ({choice.solver}; labels: normalised λ)", fontsize=9)
    ax.text(0.97, 0.03, "too much regularisation\n(over-smoothed)", transform=ax.transAxes, ha="right",
            va="bottom", fontsize=8, color="0.35")
    ax.text(0.03, 0.97, "too little regularisation\n(noise, streaks fitted)", transform=ax.transAxes, ha="left",
            va="top", fontsize=8, color="0.35")
    ax.legend(loc="center left", fontsize=7)

    q = tab["external_fraction"].to_numpy(dtype=float)
    bx.semilogx(lamn, q, "o-", color="C1", label="external fraction q")
    if choice.method == "locality":
        bx.axhline(choice.target, color="C1", ls=":", lw=1, label=f"threshold ε = {choice.target:g}")
    bx.axvline(choice.lambda_normalised, color="C3", lw=1, label=f"chosen ({choice.method})")
    bx.set_yscale("symlog", linthresh=1e-4)
    top = np.nanmax(np.append(q, choice.target if choice.method == "locality" else np.nan))
    if np.isfinite(top) and top > 0:
        bx.set_ylim(top=3.0 * top)
    bx.set_xlabel("normalised λ (λ · σ_φ)")
    bx.set_ylabel("q = (ρ_in − ρ) / (ρ₀ − ρ)")
    b2 = bx.twinx()
    b2.loglog(lamn, rho, "s--", color="C0", ms=4, label="residual ρ")
    if choice.method == "discrepancy":
        b2.axhline(choice.target, color="C0", ls=":", lw=1, label="discrepancy target")
    b2.set_ylabel("residual ρ (rad²)", color="C0")
    h1, l1 = bx.get_legend_handles_labels()
    h2, l2 = b2.get_legend_handles_labels()
    bx.legend(h1 + h2, l1 + l2, fontsize=7, loc="lower right")
    bx.set_title("criterion", fontsize=9)
    if tn is not None:
        cx = axes[2]
        cx.semilogx(lamn, tn, "^-", color="C2")
        cx.axvline(choice.lambda_normalised, color="C3", lw=1)
        cx.set_xlabel("normalised λ (λ · σ_φ)")
        cx.set_ylabel("NRMSE vs truth (%)")
        cx.set_title("error (phantom)", fontsize=9)
    return fig


# --------------------------------------------------------------------------------------------
# sweep around the automatic choice (teaching)

#: Factors of the automatic λ solved by :func:`lambda_sweep` by default (1/30 … 30).
SWEEP_FACTORS = (1 / 30, 1 / 10, 1 / 3, 1.0, 3.0, 10.0, 30.0)


def lambda_sweep(local_field, mask, magnitude=None, *, voxel_size, factors=SWEEP_FACTORS, truth=None,
                 progress=False, **medi_options):
    """Solve MEDI at multiples of its automatic λ: what too little and too much regularisation do.

    Parameters
    ----------
    local_field : ndarray, shape (X, Y, Z)
        Local field (ppm).
    mask : ndarray of bool, shape (X, Y, Z)
        Brain mask.
    magnitude : ndarray, shape (X, Y, Z), optional
        Magnitude for the edge mask (default: uniform, i.e. no edge information).
    voxel_size : tuple of 3 float
        Voxel size (mm).
    factors : sequence of float
        Multiples of the automatic λ to solve (1 is the automatic choice itself).
    truth : ndarray, shape (X, Y, Z), optional
        True χ (ppm, phantoms): adds the NRMSE (%) of each map over its mask.
    progress : bool
        Show a tqdm bar over the solves.
    **medi_options
        Further keywords of :func:`~analysis.imaging.qsm.dipole.medi` (``delta_te_s``,
        ``b0_tesla``, ``noise_std``, ``csf_mask``, ``smv_radius_mm``, ``solver``, …); not
        ``lambda_``.

    Returns
    -------
    table : pandas.DataFrame
        One row per factor, sorted: ``factor``, ``lambda`` (solver convention),
        ``lambda_normalised``, ``residual_rad2`` (mean over the mask of (d⊛χ − φ)², radians per
        ΔTE, with the solver's kernel), ``gradient_l1`` (mean over the mask of |∇χ|, ppm/mm),
        ``auto`` (True for factor 1) and, with ``truth``, ``nrmse_pct``.
    maps : dict
        factor → χ map (ppm, float32, zero outside ``map_mask``).
    map_mask : ndarray of bool, shape (X, Y, Z)
        Where the maps are defined (``mask``, eroded with ``smv_radius_mm``).

    Notes
    -----
    The NRMSE is taken after removing each map's and the truth's mean over the mask: without a
    CSF reference the offset of χ is not determined by the data.
    """
    if "lambda_" in medi_options:
        raise ValueError("lambda_sweep solves at multiples of lambda_='auto'; do not pass lambda_")
    fac = sorted(float(f) for f in factors)
    if not fac or any(not np.isfinite(f) or f <= 0 for f in fac):
        raise ValueError(f"factors must be positive numbers, got {factors!r}")
    m = np.asarray(mask, bool)
    mag = m.astype(np.float32) if magnitude is None else magnitude
    vs = as_voxel_size(voxel_size)
    chi0, info0 = medi(local_field, m, mag, voxel_size=vs, lambda_="auto", return_info=True, **medi_options)
    lam0 = float(info0["lambda"])
    scale = float(info0["rad_per_ppm"])
    kernel_opts = {k: medi_options[k] for k in ("b0_direction",) if k in medi_options}
    rows, maps = [], {}
    for f in tqdm(fac, desc="λ sweep", disable=not progress):
        if f == 1.0:
            chi, info = chi0, info0
        else:
            chi, info = medi(local_field, m, mag, voxel_size=vs, lambda_=lam0 * f, return_info=True, **medi_options)
        cm = info["mask"]
        pred = forward_field(chi, voxel_size=vs, **kernel_opts)
        res = float(np.mean(((pred - np.asarray(local_field, np.float32)) * scale)[cm] ** 2))
        grads = np.gradient(chi, *vs)
        gl1 = float(np.mean(np.sqrt(sum(g * g for g in grads))[cm]))
        row = {"factor": f, "lambda": float(info["lambda"]), "lambda_normalised": float(info["lambda_normalised"]),
               "residual_rad2": res, "gradient_l1": gl1, "auto": f == 1.0}
        if truth is not None:
            row["nrmse_pct"] = nrmse(chi, truth, mask=cm, demean=True)
        rows.append(row)
        maps[f] = chi
    return pd.DataFrame(rows), maps, np.asarray(info0["mask"], bool)
