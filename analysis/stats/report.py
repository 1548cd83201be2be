"""Our numbers beside the paper's: comparison tables and forest plots for the statistics notebooks.

Everything here takes the tidy outputs of :mod:`analysis.stats.models` / :mod:`analysis.cohort.dictionary` and the
paper's printed numbers (:mod:`analysis.stats.published`) and returns DataFrames or matplotlib figures;
the notebooks write them with :func:`analysis.io.write_table` and :func:`analysis.io.savefig`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from analysis.stats.published import format_like, interval, prints_as, published, table_rows

__all__ = ["LABELS", "SIMULATED_NOTE", "description_vs_published", "printed_side_by_side", "forest_plot",
           "p_value_curve", "coefficient_ci_check"]

#: Readable labels and units (of the coefficient) of Table 1's outcomes and Table 2's predictors.
LABELS = {
    "thalamic_volume": ("Thalamic volume", "mm³ per ppb"),
    "total_gray_matter_volume": ("Total grey-matter volume", "mm³ per ppb"),
    "cortical_thickness": ("Mean cortical thickness", "mm per ppb"),
    "t2_lesion_volume_log": ("ln(T2 lesion volume, mL)", "log-units per ppb"),
    "enhancing_lesions_present": ("Enhancing lesions (present vs absent)", "ppb"),
    "age": ("Age (per year)", "ppb per year"),
    "sex": ("Sex (male vs female)", "ppb"),
    "dmt_use": ("DMT use (on vs off)", "ppb"),
    "disease_duration": ("Disease duration (per year)", "ppb per year"),
}

SIMULATED_NOTE = ("SIMULATED DATA: the cohort is synthetic (data/cohort.csv), calibrated so that the "
                  "paper's summaries and models print as published; no row is a real patient.")


def description_vs_published(description):
    """The Results paragraph beside the cohort's own summaries.

    Parameters
    ----------
    description : pandas.DataFrame
        Output of :func:`analysis.cohort.dictionary.describe_cohort` (``variable, statistic, value``).

    Returns
    -------
    pandas.DataFrame
        ``variable, statistic, ours, ours_printed, published, match`` (``ours_printed`` is ours at the
        paper's precision; ``published`` is empty where the paper prints nothing, e.g. sex counts).
    """
    cohort = published()["cohort"]
    counts = {"n": cohort["n"], "on_dmt": cohort["on_dmt"],
              "enhancing_lesions_present": cohort["enhancing_lesions_present"]}
    rows = []
    for _, r in description.iterrows():
        var, stat, value = r["variable"], r["statistic"], float(r["value"])
        if stat == "count":
            printed = counts.get(var)
            if var == "female":
                rows.append({"variable": var, "statistic": stat, "ours": value,
                             "ours_printed": f"{value:.0f} ({value / float(cohort['n']):.0%})",
                             "published": cohort["female_fraction"],
                             "match": bool(round(value / float(cohort["n"]) * 3) == 2)})
                continue
        else:
            printed = cohort.get(var, {}).get(stat)
        rows.append({"variable": var, "statistic": stat, "ours": value,
                     "ours_printed": format_like(value, printed) if printed else f"{value:g}",
                     "published": printed or "", "match": bool(printed) and prints_as(value, printed)})
    return pd.DataFrame(rows)


def _ci(lo, hi):
    return f"{lo} to {hi}"


def printed_side_by_side(comparison, table):
    """One line per row of a paper's table: ours as printed beside the paper's, and whether all match.

    Parameters
    ----------
    comparison : pandas.DataFrame
        Output of :func:`analysis.stats.models.compare_with_published` (long format).
    table : {"table1", "table2"}

    Returns
    -------
    pandas.DataFrame
        ``<key>, model, coef (ours), coef (paper), 95% CI (ours), 95% CI (paper), P (ours),
        P (paper), all match, note``.
    """
    if table not in ("table1", "table2"):
        raise ValueError(f"table must be 'table1' or 'table2', got {table!r}")
    key = "outcome" if table == "table1" else "predictor"
    rows = []
    for (name, model), g in comparison.groupby([key, "model"], sort=False):
        g = g.set_index("statistic")
        rows.append({
            key: name, "model": model,
            "coef (ours)": g.loc["coef", "ours_printed"], "coef (paper)": g.loc["coef", "published"],
            "95% CI (ours)": _ci(g.loc["ci_low", "ours_printed"], g.loc["ci_high", "ours_printed"]),
            "95% CI (paper)": _ci(g.loc["ci_low", "published"], g.loc["ci_high", "published"]),
            "P (ours)": g.loc["p", "ours_printed"], "P (paper)": g.loc["p", "published"],
            "all match": bool(g["match"].all()),
            "note": "; ".join(n for n in g.get("note", pd.Series(dtype=str)) if n),
        })
    return pd.DataFrame(rows)


def forest_plot(ours, table, *, show_published=True, title=None):
    """Coefficients with 95 % CIs, ours (filled) and the paper's printed ones (open), per row.

    Parameters
    ----------
    ours : pandas.DataFrame
        :func:`analysis.stats.models.table1` or :func:`analysis.stats.models.table2` output.
    table : {"table1", "table2"}
        Table 1 gets one panel per outcome (units differ); Table 2 one panel (all in ppb).
    show_published : bool
        Draw the paper's printed coefficient and CI beside ours.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if table not in ("table1", "table2"):
        raise ValueError(f"table must be 'table1' or 'table2', got {table!r}")
    key = "outcome" if table == "table1" else "predictor"
    pub = {(r[key], r["model"]): r for r in table_rows(table)}
    groups = list(dict.fromkeys(ours[key])) if table == "table1" else [None]
    fig, axes = plt.subplots(len(groups), 1, figsize=(7.5, 1.6 * len(groups) + 0.8 if table == "table1" else 4.8),
                             squeeze=False)
    colors = {"unadjusted": "#1f77b4", "adjusted": "#d62728"}
    for ax, group in zip(axes[:, 0], groups):
        sub = ours if group is None else ours[ours[key] == group]
        labels = []
        for y, (_, r) in enumerate(sub.iloc[::-1].iterrows()):
            c = colors[r["model"]]
            ax.errorbar(r["coef"], y + 0.12, xerr=[[r["coef"] - r["ci_low"]], [r["ci_high"] - r["coef"]]],
                        fmt="o", color=c, capsize=3, label=f"{r['model']} (ours)")
            if show_published:
                p = pub[(r[key], r["model"])]
                b, lo, hi = float(p["coef"]), float(p["ci_low"]), float(p["ci_high"])
                ax.errorbar(b, y - 0.12, xerr=[[b - lo], [hi - b]], fmt="o", mfc="white", color=c,
                            capsize=3, alpha=0.8, label=f"{r['model']} (paper)")
            name = LABELS.get(r[key], (r[key], ""))[0]
            labels.append(f"{r['model']}" if group is not None else f"{name}, {r['model']}")
        ax.axvline(0, color="0.5", lw=0.8, ls="--")
        ax.set_yticks(range(len(labels)), labels)
        ax.set_ylim(-0.6, len(labels) - 0.4)
        if group is not None:
            name, unit = LABELS.get(group, (group, ""))
            ax.set_title(name, fontsize=10, loc="left")
            ax.set_xlabel(f"coefficient ({unit})", fontsize=9)
        else:
            ax.set_xlabel("coefficient (ppb per unit of the predictor)", fontsize=9)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    fig.legend(uniq.values(), uniq.keys(), loc="lower center", ncol=4, fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(title or ("Table 1: outcome on thalamic relative susceptibility" if table == "table1"
                           else "Table 2: thalamic relative susceptibility on patient characteristics"),
                 fontsize=11)
    fig.text(0.5, 1.0, "simulated cohort (filled) vs the paper's printed values (open)", ha="center",
             fontsize=8, color="0.3")
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    return fig


def p_value_curve(sweep, *, published_cutoff=50, published_p=None, ax=None):
    """Adjusted lesion-model P against the age cutoff (:func:`analysis.stats.models.sensitivity_age_sweep`).

    Marks the paper's cutoff (50 years) and its printed P (.036) as a shaded rounding interval.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 3.8))
    ax.plot(sweep["max_age_years"], sweep["p"], "o-", ms=3, label="adjusted lesion model, P (ours)")
    ax.axhline(0.05, color="0.5", ls="--", lw=0.8, label="P = .05")
    if published_p is not None:
        lo, hi = interval(published_p)
        ax.axhspan(lo, hi, color="tab:red", alpha=0.25, label=f"paper: P = {published_p} (age < {published_cutoff})")
    ax.axvline(published_cutoff, color="tab:red", lw=0.8)
    ax2 = ax.twinx()
    ax2.plot(sweep["max_age_years"], sweep["n"], color="0.6", lw=1)
    ax2.set_ylabel("patients younger than the cutoff", color="0.4")
    ax.set_xlabel("age cutoff (years): patients younger than this")
    ax.set_ylabel("P (susceptibility, ln lesion volume)")
    ax.set_yscale("log")
    ax.legend(fontsize=8, loc="upper left")
    return ax.figure


def coefficient_ci_check(ours, table):
    """Numbers behind :func:`forest_plot`: ours and the paper's coefficient and CI with differences."""
    key = "outcome" if table == "table1" else "predictor"
    pub = {(r[key], r["model"]): r for r in table_rows(table)}
    rows = []
    for _, r in ours.iterrows():
        p = pub[(r[key], r["model"])]
        rows.append({key: r[key], "model": r["model"],
                     **{f"{s}_ours": float(r[s]) for s in ("coef", "ci_low", "ci_high", "p")},
                     **{f"{s}_paper": p[s] for s in ("coef", "ci_low", "ci_high", "p")},
                     "coef_difference": float(r["coef"]) - float(p["coef"])})
    return pd.DataFrame(rows)
