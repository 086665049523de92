"""Calibration: reliability curves of R0..R3 (and post-hoc calibrators) with metrics and intervals."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import data_cache as cache
from dashboard import ui
from dashboard.names import safe_file_name
from reranker import charts
from reranker.calibration_slices import metrics_frame
from reranker.errors import RerankerError
from reranker.scoring import SCORERS
from reranker.slice_statistics import BASE_BINS, BIN_CHOICES, BOOT_CHOICES

ALL = "(all)"
STRATEGIES = {"uniform": "equal width", "quantile": "equal mass"}
POPULATIONS = {"all": "every hypothesis", "top1": "top-1 only"}
CALIBRATORS = {"temperature": "temperature", "isotonic": "isotonic"}
INTERVAL_HELP = (
    "Resamples of whole utterances (a Poisson bootstrap: each utterance's weight comes from a "
    "hash of its id, so intervals do not depend on row order or partitioning). Intervals are "
    "Efron's bias-corrected percentile intervals: binned ECE and MCE are biased upward, so "
    "plain percentiles of the resamples can sit above the estimate; the correction moves them "
    "towards it, and every interval contains its estimate. See docs/metrics.md. 0: no intervals."
)

LARGE_HELP = (
    f"This dataset is served from statistics taken once at {BASE_BINS} equal-width bins: any "
    "number of bins dividing it is exact. Equal-mass bins, smooth ECE and post-hoc calibrators "
    "need every score and are not available here."
)

MATCHED = "DM: R0 matched across domains"
MATCHING_HELP = (
    "Cross-domain score distribution matching (docs/losses.md): each domain's R0 scores mapped "
    "onto the distribution of all domains' scores pooled, then one shared isotonic calibrator. "
    "Fitted on one half of the utterances, applied to the other (and vice versa), to compare with "
    "R2 and R3, which learn per-domain weights from the correct bit."
)

ctx = ui.current()
st.title("Calibration")
st.write(
    "A score is calibrated when, among hypotheses scored about *p*, a fraction *p* is correct "
    "(domain, intent and slots all right). Compare the losses' reliability curves against the "
    "dashed diagonal; the bars below count hypotheses per bin."
)
if not ui.need_table(ctx) or not ui.has_references(ctx):
    st.stop()
summary = cache.summary(ctx.token)
large = ctx.large
available = ctx.available_losses
missing = [ui.LOSS_LABELS[x] for x in SCORERS if x not in available]
if missing:
    st.caption(
        f"No weights for {', '.join(missing)} on this dataset: train them on the Weights page "
        "to compare them here."
    )

ui.drop_stale_choice("cal_domain", [ALL, *summary["domains"]])
ui.drop_stale_choice("cal_device", [ALL, *summary["devices"]])
with st.container(border=True, key="cal_controls"):
    c1, c2, c3, c4 = st.columns([3, 2, 2, 2])
    losses = ui.bound(
        c1.multiselect,
        "Losses",
        available,
        default=available,
        format_func=ui.LOSS_LABELS.get,
        key="cal_losses",
    )
    layout = c2.radio(
        "Layout",
        ["overlay", "side"],
        format_func={"overlay": "overlaid", "side": "side by side"}.get,
        key="cal_layout",
        horizontal=True,
        bind="query-params",
        persist_state="session",
    )
    population = c3.radio(
        "Population",
        list(POPULATIONS),
        format_func=POPULATIONS.get,
        key="cal_population",
        horizontal=True,
        bind="query-params",
        persist_state="session",
        help="Hypotheses entering ECE, MCE, Brier and the curve (default: every hypothesis; "
        "see docs/metrics.md#calibration).",
    )
    strategy = c4.radio(
        "Bins",
        ["uniform"] if large else list(STRATEGIES),
        format_func=STRATEGIES.get,
        key="cal_strategy",
        horizontal=True,
        bind="query-params",
        persist_state="session",
    )
    c5, c6, c7, c8, c9 = st.columns([2, 2, 2, 2, 3.2])
    if large:
        n_bins = c5.select_slider(
            "Number of bins",
            list(BIN_CHOICES),
            10,
            key="cal_bins",
            bind="query-params",
            persist_state="session",
            help=LARGE_HELP,
        )
    else:
        n_bins = c5.slider(
            "Number of bins",
            2,
            50,
            10,
            key="cal_bins",
            bind="query-params",
            persist_state="session",
        )
    n_boot = ui.bound(
        c6.select_slider,
        "Bootstrap resamples",
        list(BOOT_CHOICES) if large else [0, 50, 100, 200, 500],
        value=100,
        key="cal_boot",
        help=INTERVAL_HELP,
    )
    domain = ui.bound(
        c7.selectbox,
        "Domain slice",
        [ALL, *summary["domains"]],
        key="cal_domain",
        help="Calibration of the hypotheses this domain produced; top-1 metrics of the utterances "
        "whose reference is this domain.",
    )
    device = ui.bound(
        c8.selectbox,
        "Device slice",
        [ALL, *summary["devices"]],
        key="cal_device",
    )
    if large:
        st.session_state["cal_calibrators"] = []
        st.session_state["cal_matching"] = False
    calibrators = ui.bound(
        c9.multiselect,
        f"Post-hoc calibrators of {ui.LOSS_LABELS[ctx.effective_loss]}",
        list(CALIBRATORS),
        format_func=CALIBRATORS.get,
        key="cal_calibrators",
        disabled=large,
        help="Not available on a dataset served from statistics (they need every score). "
        if large
        else "Fitted on one half of the utterances, applied to the other (and vice versa): a "
        "comparison point for what the re-ranker's own training achieves.",
    )
    matching = ui.bound(
        st.checkbox,
        MATCHED,
        key="cal_matching",
        disabled=large,
        help="Not available on a dataset served from statistics (it needs every score). "
        if large
        else MATCHING_HELP,
    )

if not losses and not calibrators and not matching:
    st.info("Pick at least one loss (or calibrator) above.")
    st.stop()
dom = None if domain == ALL else domain
dev = None if device == ALL else device
series: list[tuple[str, str, str | None]] = [(ui.LOSS_LABELS[x], x, None) for x in losses]
base = ctx.effective_loss
series += [(f"{ui.LOSS_LABELS[base]} + {m}", base, m) for m in calibrators]
if matching:
    series.append((MATCHED, "r0", cache.MATCHING))

curves: dict[str, pd.DataFrame] = {}
metric_rows: dict[str, dict[str, dict[str, float | None]]] = {}
try:
    for name, loss, calibrator in series:
        sl = cache.Slice(n_bins, strategy, population, dom, dev, n_boot, calibrator)
        curves[name] = cache.curve(*ctx.args(loss), sl)
        metric_rows[name] = cache.metrics(*ctx.args(loss), sl)
except RerankerError as e:
    ui.show_error(e)
    st.stop()

if all(int(f["count"].sum()) == 0 for f in curves.values()):
    st.info("This slice holds no hypotheses: choose another domain or device.")
    st.stop()
slice_name = (
    " · ".join(x for x in (dom and f"domain {dom}", dev and f"device {dev}") if x) or "all data"
)
fig = charts.reliability_figure(curves, overlay=layout == "overlay", bands=n_boot > 0)
curve_data = pd.concat([f.assign(curve=name) for name, f in curves.items()], ignore_index=True)
ui.chart(
    fig,
    curve_data,
    key="cal_curves",
    file_name=f"{ctx.dataset_key}_reliability_{slice_name}",
)
if ctx.devices_simulated and dev is not None:
    ui.simulated_note(ctx)
if "r1" in losses:
    st.info(ui.R1_CAUTION, icon=":material/warning:")

st.subheader("Metrics")
conf = "90% bootstrap intervals over utterances" if n_boot else "no intervals (bootstrap off)"
st.caption(
    f"{ui.md(slice_name)}; {POPULATIONS[population]}; {n_bins} {STRATEGIES[strategy]} bins; {conf}. "
    "Lower is better.",
    help=INTERVAL_HELP,
)
names = {
    "top1_semer": "top-1 SemER",
    "top1_ie": "top-1 IE",
    "ece": "ECE",
    "mce": "MCE",
    "brier": "Brier",
    "smooth_ece": "smooth ECE",
    "ece_top1": "top-1 ECE",
}


def cell(v: dict[str, float | None]) -> str:
    text = ui.fmt(v["value"])
    if v["low"] is not None:
        text += f"  [{v['low']:.4f}, {v['high']:.4f}]"
    return text


display = pd.DataFrame(
    {"metric": [*names.values(), "hypotheses", "utterances"]}
    | {
        curve: [
            *(cell(m[k]) for k in names),
            f"{int(m['n_hypotheses']['value'] or 0):,}",
            f"{int(m['n_utterances']['value'] or 0):,}",
        ]
        for curve, m in metric_rows.items()
    }
)
if large:
    st.caption(
        "Smooth ECE needs every score: it is not computed on a dataset served from statistics."
    )
st.table(display.set_index("metric"))  # plain HTML: every column visible, whatever the width
st.download_button(
    "Download metrics (CSV)",
    metrics_frame(metric_rows).to_csv(index=False).encode(),
    file_name=f"{safe_file_name(ctx.dataset_key + '_metrics_' + slice_name)}.csv",
    mime="text/csv",
    key="cal_metrics_csv",
)
