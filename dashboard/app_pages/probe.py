"""Probe: run the NLU models live on a sentence and compare its ranked hypotheses across devices."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import data_cache as cache
from dashboard import ui
from reranker import charts
from reranker.errors import RerankerError

DEFAULT_DEVICES = ["echo_dot", "echo_show", "fire_tv"]

ctx = ui.current()
st.title("Probe")
st.write(
    "Type what a user might say and pick devices: the dataset's NLU models propose hypotheses, "
    "and the re-ranker scores them for each device, side by side."
)
if ctx.info is None or ctx.info.models is None:
    st.info(
        "The probe needs NLU models, which only the shipped demo datasets have "
        "(the media demo and the real-corpus demo). Pick one in the sidebar."
    )
    st.stop()
try:
    from reranker.probe import probe_text  # noqa: F401  (checks the probe is installed)
except ImportError:
    st.info("The probe is not available in this installation.")
    st.stop()

available = ctx.available_losses
loss = st.segmented_control(
    "Rank with",
    available,
    default=ui.best_trained_loss(ctx),
    format_func=ui.LOSS_LABELS.get,
    key="probe_loss",
    bind="query-params",
    required=True,
    help="Opens on the best trained loss of this dataset; the sidebar's loss applies to the "
    "other pages.",
) or ui.best_trained_loss(ctx)
label = ui.LOSS_LABELS[loss]
if loss == "r1":
    st.warning(ui.R1_CAUTION, icon=":material/warning:")
try:
    known = cache.summary(ctx.token)["devices"]
except RerankerError:
    known = DEFAULT_DEVICES
with st.form("probe_form"):
    c1, c2 = st.columns([3, 2])
    text = c1.text_input("Utterance", value="play mary poppins", key="probe_text", max_chars=300)
    devices = c2.multiselect(
        "Devices",
        known,
        default=[d for d in ("echo_dot", "fire_tv") if d in known] or known[:2],
        key="probe_devices",
    )
    st.form_submit_button("Probe", key="probe_submit", type="primary")

if not text.strip():
    st.info("Type an utterance.")
    st.stop()
if not devices:
    st.info("Pick at least one device.")
    st.stop()
weights = ctx.weights.get(loss, "r0") if loss != "r0" else "r0"
try:
    results = cache.probe(
        str(ctx.info.models),
        text.strip(),
        tuple(devices),
        str(weights),
        ctx.fingerprints.get(loss, "r0"),
    )
except RerankerError as e:
    ui.show_error(e)
    st.stop()
fig = charts.probe_figure(
    results, title=f"“{text.strip()}” ranked with {label}", x_title=ui.score_label(loss)
)
data = pd.concat([f.assign(device=d) for d, f in results.items()], ignore_index=True)
ui.chart(fig, data, key="probe", file_name=f"probe_{text.strip()}")
ui.simulated_note(ctx)
st.markdown("**Every hypothesis, per device**")
for device, frame in results.items():
    st.caption(ui.md(device))
    st.dataframe(
        frame[["rank", "domain", "intent", "slots", "score"]],
        key=f"probe_table_{device}",
        hide_index=True,
        column_config={
            "rank": st.column_config.NumberColumn(width="small"),
            "slots": st.column_config.TextColumn(width="large"),
            "score": st.column_config.NumberColumn(f"{label} score", format="%.3f"),
        },
    )
