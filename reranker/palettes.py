"""Colour-blind-safe colours for the charts: one distinct colour per named series.

The categorical palette is Okabe and Ito's (*Color Universal Design*, 2008): eight colours that
stay distinguishable under the common colour-vision deficiencies. A chart that would need more
than eight categorical colours is drawn so that colour is not needed (labels on an axis, small
multiples, a heatmap of a quantity); :func:`series_colors` returns ``None`` to say so.

Losses keep the same colour on every chart (R2 is always blue), and a post-hoc calibrator's
curve (``"R2 + isotonic"``) has the colour of its calibrator.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = [
    "CALIBRATOR_COLORS",
    "LOSS_COLORS",
    "NEGATIVE",
    "OKABE_ITO",
    "POSITIVE",
    "REFERENCE",
    "SEQUENTIAL",
    "series_colors",
]

OKABE_ITO: dict[str, str] = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "bluish green": "#009E73",
    "vermillion": "#D55E00",
    "sky blue": "#56B4E9",
    "reddish purple": "#CC79A7",
    "black": "#000000",
    "yellow": "#F0E442",
}
"""Okabe-Ito colours, in the order new categories receive them (yellow, faint on white, last)."""

LOSS_COLORS: dict[str, str] = {
    "R0": OKABE_ITO["black"],
    "R1": OKABE_ITO["vermillion"],
    "R2": OKABE_ITO["blue"],
    "R3": OKABE_ITO["bluish green"],
}
CALIBRATOR_COLORS: dict[str, str] = {
    "temperature": OKABE_ITO["orange"],
    "isotonic": OKABE_ITO["reddish purple"],
}
REFERENCE = "#999999"
"""Grey of reference lines (the diagonal of perfect calibration), never a series colour."""
POSITIVE = OKABE_ITO["blue"]
NEGATIVE = OKABE_ITO["vermillion"]
SEQUENTIAL = "cividis"
"""Plotly's colour scale for a quantity (a share, a count): designed for colour-vision deficiency."""


def _fixed_color(name: str) -> str | None:
    if name in LOSS_COLORS:
        return LOSS_COLORS[name]
    base, sep, method = name.rpartition(" + ")
    if sep and base in LOSS_COLORS and method in CALIBRATOR_COLORS:
        return CALIBRATOR_COLORS[method]
    return None


def series_colors(
    names: Iterable[str], *, fixed: Mapping[str, str] | None = None
) -> dict[str, str] | None:
    """A distinct Okabe-Ito colour for each name, or ``None`` when eight are not enough.

    Loss names (``R0`` .. ``R3``) and calibrated curves (``"R2 + isotonic"``) get their fixed
    colours; other names get the unused colours in palette order. Colours never repeat within
    one call; a repeated name gets its first colour.

    Parameters
    ----------
    names : iterable of str
    fixed : mapping, optional
        Extra name -> colour assignments taking precedence (must be distinct).

    Returns
    -------
    dict or None
        ``{name: "#RRGGBB"}``, or ``None`` when the names need more than eight colours.
    """
    unique = list(dict.fromkeys(str(n) for n in names))
    chosen: dict[str, str] = {}
    for name in unique:
        color = (fixed or {}).get(name) or _fixed_color(name)
        if color is not None and color not in chosen.values():
            chosen[name] = color
    free = [c for c in OKABE_ITO.values() if c not in chosen.values()]
    rest = [n for n in unique if n not in chosen]
    if len(rest) > len(free):
        return None
    chosen.update(zip(rest, free, strict=False))
    return {n: chosen[n] for n in unique}
