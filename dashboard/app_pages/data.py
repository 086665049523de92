"""Data: pick a shipped dataset or upload a hypothesis table; its summary and calibration at a glance."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import data_cache as cache
from dashboard import ui
from dashboard.names import safe_file_name, table_token
from reranker import charts
from reranker.errors import RerankerError


def _on_upload() -> None:
    uploaded = st.session_state.get("upload")
    st.session_state.pop("upload_error", None)
    if uploaded is None:
        return
    try:
        path = ui.save_upload(uploaded.name, uploaded.getvalue())
        cache.prepared(table_token(path))
    except RerankerError as e:
        message = " ".join(str(e).split())
        if "path" in locals():
            message = message.replace(str(path), uploaded.name)
        st.session_state["upload_error"] = message
        return
    st.session_state["uploads"][uploaded.name] = str(path)
    st.session_state["dataset"] = ui.UPLOAD_PREFIX + uploaded.name


ctx = ui.current()
st.title("Data")
st.write(
    "Pick a shipped dataset in the sidebar, or upload your own hypothesis table "
    "(one row per NLU hypothesis, columns as in docs/formats.md#hypothesis-table)."
)
with st.expander("Upload a hypothesis table", expanded=ctx.table_path is None):
    st.file_uploader(
        "Parquet, CSV or JSONL",
        type=["parquet", "csv", "jsonl"],
        key="upload",
        on_change=_on_upload,
        help="Required columns: utterance_id, domain, intent, slots, domain_score, intent_score, "
        "slot_score; optional text, device and the references ref_domain, ref_intent, ref_slots.",
    )
    if "upload_error" in st.session_state:
        st.error(
            f"This file was not loaded: {ui.md(st.session_state['upload_error'])}",
            icon=":material/error:",
        )

if not ui.need_table(ctx):
    st.stop()

st.subheader(
    ui.md(ctx.label) + (f" · {ctx.split} split" if ctx.split and ctx.split != "all" else "")
)
if ctx.info is not None and ctx.info.description:
    st.write(ui.md(ctx.info.description))
if not (ctx.info and "simulated" in ctx.info.description.lower()):
    ui.simulated_note(ctx)
try:
    prep = None if ctx.large else cache.prepared(ctx.token)
    summary = cache.summary(ctx.token)
except RerankerError as e:
    ui.show_error(e)
    st.stop()
cols = st.columns(5)
cols[0].metric("Utterances", f"{summary['n_utterances']:,}")
cols[1].metric(
    "Hypotheses", f"{summary['n_hypotheses']:,}", help=f"{summary['mean_nbest']:.1f} per utterance"
)
cols[2].metric("Domains", summary["n_domains"])
cols[3].metric("Devices", summary["n_devices"])
cols[4].metric(
    "Oracle accuracy",
    "–" if summary["oracle_accuracy"] is None else f"{summary['oracle_accuracy']:.1%}",
    help="Share of utterances whose n-best holds a fully correct hypothesis: the best any re-ranker can do.",
)
st.caption(
    "Domains: "
    + ui.md(", ".join(summary["domains"]))
    + " · Devices: "
    + ui.md(", ".join(summary["devices"]))
)

if prep is not None and not prep.has_references:
    ui.has_references(ctx)
    st.dataframe(prep.frame.head(200), key="data_preview", hide_index=True)
    st.stop()

loss = ctx.effective_loss
st.subheader(f"Calibration at a glance: {ui.LOSS_LABELS[loss]}")
st.caption(
    "Each point is a score bin: its mean score (x) against the fraction of its hypotheses that are "
    "fully correct (y). Points on the dashed diagonal are perfectly calibrated. "
    "Change the loss in the sidebar; the Calibration page has every control."
)
try:
    frame = cache.curve(*ctx.args(loss), cache.Slice())
    result = cache.metrics(*ctx.args(loss), cache.Slice())
except RerankerError as e:
    ui.show_error(e)
    st.stop()
left, right = st.columns([3, 2])
with left:
    fig = charts.reliability_figure({ui.LOSS_LABELS[loss]: frame})
    ui.chart(fig, frame, key="data_curve", file_name=f"{ctx.dataset_key}_{loss}_reliability")
with right:
    table = pd.DataFrame(
        [
            ("Top-1 SemER", result["top1_semer"]["value"]),
            ("Top-1 interpretation error", result["top1_ie"]["value"]),
            ("ECE (all hypotheses)", result["ece"]["value"]),
            ("MCE", result["mce"]["value"]),
            ("Brier", result["brier"]["value"]),
            ("Smooth ECE", result["smooth_ece"]["value"]),
            ("ECE (top-1 only)", result["ece_top1"]["value"]),
        ],
        columns=["metric", "value"],
    )
    table = table[table["value"].notna()]  # smooth ECE is not computed from statistics
    st.dataframe(
        table,
        key="data_metrics",
        hide_index=True,
        column_config={"value": st.column_config.NumberColumn(format="%.4f")},
    )
    st.download_button(
        "Download metrics (CSV)",
        table.to_csv(index=False).encode(),
        file_name=f"{safe_file_name(ctx.dataset_key)}_{loss}_metrics.csv",
        mime="text/csv",
        key="data_metrics_csv",
    )
with st.expander("First rows of the table"):
    first = cache.preview(ctx.token) if prep is None else prep.frame.head(200)
    st.dataframe(first, key="data_preview", hide_index=True)
if ctx.large:
    st.caption(
        "A partitioned dataset too large to load: its pages read statistics computed once by "
        "the engine and cached beside it (smooth ECE needs every score and is not shown)."
    )
