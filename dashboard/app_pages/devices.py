"""Devices: calibration per device, which domains win on each device, learned device weights."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import data_cache as cache
from dashboard import ui
from dashboard.names import safe_file_name
from reranker import charts
from reranker.contributions import device_weights
from reranker.errors import RerankerError

ctx = ui.current()
st.title("Devices")
st.write(
    "The same words can mean different things on different devices: *play mary poppins* is more "
    "likely the film on a TV and the audiobook on a speaker. Each domain's re-ranker has one "
    "weight per device, so it can learn such preferences."
)
ui.simulated_note(ctx)
if not ui.need_table(ctx) or not ui.has_references(ctx):
    st.stop()
loss = ctx.effective_loss
label = ui.LOSS_LABELS[loss]
try:
    summary = cache.summary(ctx.token)
    devices = summary["devices"]
    curves = {d: cache.curve(*ctx.args(loss), cache.Slice(device=d)) for d in devices}
    per_device = {d: cache.metrics(*ctx.args(loss), cache.Slice(device=d)) for d in devices}
    distribution = cache.top_domains(*ctx.args(loss))
except RerankerError as e:
    ui.show_error(e)
    st.stop()

st.subheader(f"Calibration per device ({label})")
st.caption(
    "Whole utterances of each device, every hypothesis, 10 equal-width bins. "
    "Intervals and other binnings: Calibration page, device slice."
)
fig = charts.reliability_figure(curves, overlay=True, bands=False)
data = pd.concat([f.assign(device=d) for d, f in curves.items()], ignore_index=True)
ui.chart(fig, data, key="dev_curves", file_name=f"{ctx.dataset_key}_{loss}_reliability_by_device")
table = pd.DataFrame(
    [
        {
            "device": d,
            "utterances": int(m["n_utterances"]["value"] or 0),
            "top-1 SemER": m["top1_semer"]["value"],
            "top-1 IE": m["top1_ie"]["value"],
            "ECE": m["ece"]["value"],
            "Brier": m["brier"]["value"],
        }
        for d, m in per_device.items()
    ]
)
st.dataframe(
    table,
    key="dev_metrics",
    hide_index=True,
    column_config={
        c: st.column_config.NumberColumn(format="%.4f")
        for c in ("top-1 SemER", "top-1 IE", "ECE", "Brier")
    },
)
st.download_button(
    "Download metrics (CSV)",
    table.to_csv(index=False).encode(),
    file_name=f"{safe_file_name(ctx.dataset_key)}_{loss}_device_metrics.csv",
    mime="text/csv",
    key="dev_metrics_csv",
)

st.subheader(f"Which domain wins top-1 on each device ({label})")
fig = charts.domain_distribution_figure(distribution)
ui.chart(
    fig, distribution, key="dev_domains", file_name=f"{ctx.dataset_key}_{loss}_top_domain_by_device"
)

st.subheader("Learned device weights per domain")
if loss == "r0":
    st.info(
        "R0 has no weights. Choose R1, R2 or R3 in the sidebar to see what each domain learned per device."
    )
    st.stop()
try:
    docs = cache.documents(ctx.weights[loss], ctx.fingerprints[loss])
    weights = device_weights(docs)
except RerankerError as e:
    ui.show_error(e)
    st.stop()
if weights.empty:
    st.info("These weights have no device features.")
    st.stop()
st.caption(
    f"{label} weight of each device feature (one-hot) in each domain's re-ranker: blue pushes the "
    "domain's hypotheses up on that device, red down. Compare rows: only differences between "
    "domains change a ranking."
)
fig = charts.device_weights_figure(weights)
ui.chart(fig, weights, key="dev_weights", file_name=f"{ctx.dataset_key}_{loss}_device_weights")
