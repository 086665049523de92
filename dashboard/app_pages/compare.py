"""Compare: is loss B really better than loss A on this table? Paired intervals and the flips."""

from __future__ import annotations

import urllib.parse

import streamlit as st

from dashboard import data_cache as cache
from dashboard import ui
from reranker.errors import RerankerError

ctx = ui.current()
st.title("Compare")
st.write(
    "Two scorings of the same utterances: the difference B − A in every metric with a **paired** "
    "utterance-bootstrap interval (each resample weights an utterance the same under both "
    "scorings), and the utterances whose top hypothesis went from right to wrong or back."
)
if not ui.need_table(ctx) or not ui.has_references(ctx):
    st.stop()
if ctx.large:
    st.info(
        "Comparing needs both scorings of every utterance in memory: on a partitioned dataset "
        "this large, compare the Calibration page's per-loss metrics and intervals instead."
    )
    st.stop()
losses = ctx.available_losses
c1, c2, c3 = st.columns(3)
a = c1.selectbox(
    "A", losses, index=0, format_func=ui.LOSS_LABELS.get, key="compare_a", bind="query-params"
)
b = c2.selectbox(
    "B",
    losses,
    index=len(losses) - 1,
    format_func=ui.LOSS_LABELS.get,
    key="compare_b",
    bind="query-params",
)
n_boot = int(c3.number_input("Bootstrap resamples", 50, 5000, 500, 50, key="compare_boot"))
if a == b:
    st.info(
        "Pick two different scorings to compare"
        + (
            "."
            if len(losses) > 1
            else ": this dataset has only R0; train a loss on the Weights page."
        )
    )
    st.stop()
try:
    metrics, changed, n_utt = cache.comparison(ctx.args(a), ctx.args(b), n_boot)
except RerankerError as e:
    ui.show_error(e)
    st.stop()
label_a, label_b = ui.LOSS_LABELS[a], ui.LOSS_LABELS[b]
st.subheader(f"{label_b} − {label_a} on {n_utt:,} utterances (90% paired intervals)")
shown = metrics.rename(columns={"a": label_a, "b": label_b, "difference": f"{label_b} − {label_a}"})
st.dataframe(shown, key="compare_metrics")
st.caption(
    "An interval entirely below 0 means B is lower than A on that metric for this population of "
    "utterances (all these metrics are errors: lower is better)."
)
st.subheader("Utterances whose top hypothesis changed")
counts = changed["change"].value_counts()
st.write(
    f"Wrong to right: **{int(counts.get('wrong to right', 0))}**, right to wrong: "
    f"**{int(counts.get('right to wrong', 0))}**."
)
query = {k: st.query_params.get(k) for k in ("dataset", "split", "loss") if k in st.query_params}
links = changed.assign(
    open="utterances?"
    + changed["utterance_id"].map(lambda u: urllib.parse.urlencode({**query, "utt": u}))
)
st.dataframe(
    links,
    key="compare_changed",
    column_config={"open": st.column_config.LinkColumn("Utterances page", display_text="open")},
    hide_index=True,
)
