"""Checks of the notebooks' parameters: one call per parameter, and an error that names it.

A notebook's ``parameters`` cell is filled from ``params.yml`` or by papermill (``-p name
value``), so its values arrive unchecked: a string where a number is meant, a negative SNR, a
cutoff range the wrong way round. The notebooks check them in their first code cell with these
functions, which return the value in the type the notebook uses and raise ``ValueError`` with
the parameter's name, the rule and the value given::

    resolution_mm = check_number(resolution_mm, name="resolution_mm", low=0.5, high=4.0)
    snr = check_number(snr, name="snr", low=0, low_inclusive=False, none_means="noise-free")
    # ValueError: snr must be a number > 0, or None (noise-free), got -1

Library functions check their own arguments as well; these checks are for what the notebook
does with a parameter itself (ranges, formatting, look-ups) and for an error message in the
notebook's own words. Nothing here reads files or depends on another stage.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["check_number", "check_integer", "check_choice", "check_choices", "check_given_together"]


def _range_text(low, high, low_inclusive, high_inclusive):
    if low is not None and high is not None:
        return f"in {'[' if low_inclusive else '('}{low:g}, {high:g}{']' if high_inclusive else ')'}"
    if low is not None:
        return f"{'>=' if low_inclusive else '>'} {low:g}"
    if high is not None:
        return f"{'<=' if high_inclusive else '<'} {high:g}"
    return ""


def _fail(name, kind, low, high, low_inclusive, high_inclusive, none_means, value):
    rule = " ".join(p for p in (kind, _range_text(low, high, low_inclusive, high_inclusive)) if p)
    if none_means is not None:
        rule += f", or None ({none_means})"
    raise ValueError(f"{name} must be {rule}, got {value!r}")


def _within(x, low, high, low_inclusive, high_inclusive):
    if low is not None and not (x >= low if low_inclusive else x > low):
        return False
    if high is not None and not (x <= high if high_inclusive else x < high):
        return False
    return True


def check_number(value, *, name, low=None, high=None, low_inclusive=True, high_inclusive=True,
                 none_means=None):
    """A finite real number within optional bounds, returned as ``float``.

    Parameters
    ----------
    value : object
        The parameter's value. ``bool`` and strings are not numbers here.
    name : str, keyword-only
        The parameter's name, used in the error message.
    low, high : float, optional, keyword-only
        Bounds; ``None`` leaves that side open.
    low_inclusive, high_inclusive : bool, keyword-only
        Whether the bound itself is allowed (default True).
    none_means : str, optional, keyword-only
        When given, ``None`` is allowed (and returned); the text says what it means, e.g.
        ``"noise-free"``.

    Returns
    -------
    float or None

    Raises
    ------
    ValueError
        ``"<name> must be a number in [0.5, 4], got '2 mm'"``.
    """
    if value is None and none_means is not None:
        return None
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not _within(float(value), low, high, low_inclusive, high_inclusive):
        _fail(name, "a number", low, high, low_inclusive, high_inclusive, none_means, value)
    return float(value)


def check_integer(value, *, name, low=None, high=None, none_means=None):
    """An integer within optional (inclusive) bounds, returned as ``int``.

    Parameters
    ----------
    value : object
        The parameter's value: an ``int`` or NumPy integer (``2.0``, ``True`` and ``"2"`` are
        refused, so that a value meant as a count is not silently truncated).
    name : str, keyword-only
        The parameter's name, used in the error message.
    low, high : int, optional, keyword-only
        Inclusive bounds; ``None`` leaves that side open.
    none_means : str, optional, keyword-only
        When given, ``None`` is allowed (and returned); the text says what it means.

    Returns
    -------
    int or None

    Raises
    ------
    ValueError
        ``"<name> must be an integer >= 4, got 2.5"``.
    """
    if value is None and none_means is not None:
        return None
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok or not _within(int(value), low, high, True, True):
        _fail(name, "an integer", low, high, True, True, none_means, value)
    return int(value)


def check_choice(value, *, name, choices):
    """One of ``choices``, returned unchanged.

    Raises
    ------
    ValueError
        ``"<name> must be one of ['pdf', 'vsharp'], got 'sharp'"``.
    """
    choices = list(choices)
    try:
        ok = value in choices
    except TypeError:            # an unhashable value against a set-like choices
        ok = False
    if not ok:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_choices(values, *, name, choices):
    """A non-empty list of distinct values, each one of ``choices``; returned as a ``list``.

    Raises
    ------
    ValueError
        Not a list or tuple, empty, repeated entries, or entries that are not choices (named in
        the message).
    """
    choices = list(choices)
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)):
        raise ValueError(f"{name} must be a list of values from {choices}, got {values!r}")
    values = list(values)
    if not values:
        raise ValueError(f"{name} must not be empty (values from {choices})")
    bad = [v for v in values if v not in choices]
    if bad:
        raise ValueError(f"{name}: {bad} not among the allowed values {choices}")
    repeated = sorted({v for v in values if values.count(v) > 1}, key=values.index)
    if repeated:
        raise ValueError(f"{name}: {repeated} listed more than once")
    return values


def check_given_together(values, *, hint=None):
    """Raise unless the named parameters are all given (not ``None``) or all left ``None``.

    Parameters
    ----------
    values : dict of str -> object
        Parameter name -> value, e.g. ``{"chimap": chimap, "aseg": aseg}``.
    hint : str, optional, keyword-only
        Appended to the message in parentheses: what "all" and "none" mean.

    Returns
    -------
    bool
        ``True`` when all are given, ``False`` when none is.

    Raises
    ------
    ValueError
        ``"chimap is given without aseg: give both or neither (...)"``.
    """
    if len(values) < 2:
        raise ValueError("check_given_together needs at least two parameters")
    given = [k for k, v in values.items() if v is not None]
    if not given:
        return False
    missing = [k for k in values if k not in given]
    if not missing:
        return True
    both = "both or neither" if len(values) == 2 else f"all or none of {', '.join(values)}"
    verb = "is" if len(given) == 1 else "are"
    message = f"{', '.join(given)} {verb} given without {', '.join(missing)}: give {both}"
    raise ValueError(message + (f" ({hint})" if hint else ""))
