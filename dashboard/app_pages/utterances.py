"""Utterances: find misranked utterances, inspect one n-best list, and re-rank it with edited weights."""

from __future__ import annotations

import math

import streamlit as st

from dashboard import data_cache as cache
from dashboard import large_data, ui
from dashboard.names import safe_file_name
from reranker.contributions import hypothesis_contributions
from reranker.errors import RerankerError
from reranker.utterances import alignment_frame, utterance_detail
from reranker.weights_edits import what_if

LIMIT = 500
SEMER_MAX = 2.0
SORTS = {
    "top_semer": "top-1 SemER",
    "top_score": "top-1 score",
    "correct_rank": "rank of the best correct hypothesis",
    "n_hypotheses": "n-best size",
    "utterance_id": "utterance id",
}

ctx = ui.current()
st.title("Utterances")
st.write(
    "Find utterances the re-ranker gets wrong. *Misranked* means the n-best list holds a fully "
    "correct hypothesis but another one is ranked first. Select a row (or pick its id below) to see "
    "why."
)
if not ui.need_table(ctx) or not ui.has_references(ctx):
    st.stop()
loss = ctx.effective_loss
label = ui.LOSS_LABELS[loss]
args = ctx.args(loss)
try:
    if not ctx.large:
        prep = cache.prepared(ctx.token)
        scored, source = cache.scored(*args)
        r0, _ = cache.scored(*ctx.args("r0"))
except RerankerError as e:
    ui.show_error(e)
    st.stop()
summary = cache.summary(ctx.token)

ui.drop_stale_choice("utt_domains", summary["domains"])
ui.drop_stale_choice("utt_devices", summary["devices"])
with st.container(border=True, key="utt_filters"):
    c1, c2, c3, c4 = st.columns([3, 2, 2, 2])
    search = ui.bound(
        c1.text_input,
        "Search text or id",
        key="utt_search",
        placeholder="e.g. mary poppins",
    )
    domains = ui.bound(
        c2.multiselect,
        "Reference domain",
        summary["domains"],
        key="utt_domains",
    )
    devices = ui.bound(
        c3.multiselect,
        "Device",
        summary["devices"],
        key="utt_devices",
    )
    semer_lo, semer_hi = ui.bound(
        c4.slider,
        "Top-1 SemER",
        0.0,
        SEMER_MAX,
        (0.0, SEMER_MAX),
        step=0.05,
        key="utt_semer",
        help=f"The right end ({SEMER_MAX:g}) includes everything above it (SemER can exceed 1).",
    )
    c5, c6, c7 = st.columns([2, 3, 2])
    misranked = c5.toggle(
        "Misranked only", key="utt_misranked", bind="query-params", persist_state="session"
    )
    sort_by = ui.bound(
        c6.selectbox,
        "Sort by",
        list(SORTS),
        format_func=SORTS.get,
        key="utt_sort",
    )
    descending = c7.toggle(
        "Descending", value=True, key="utt_desc", bind="query-params", persist_state="session"
    )

semer_range = (semer_lo, math.inf if semer_hi >= SEMER_MAX else semer_hi)
query = cache.UtteranceQuery(
    search, misranked, tuple(domains), tuple(devices), semer_range, sort_by, descending, LIMIT
)
rows, count = cache.filtered_utterances(*args, query)
n_misranked = cache.misranked_count(*args)
st.caption(
    f"{count:,} of {summary['n_utterances']:,} utterances match"
    + (f" (showing the first {LIMIT})" if count > LIMIT else "")
    + f". Ranked with {label}; {n_misranked:,} utterances are misranked under {label}."
)


def _pick_from_table() -> None:
    selection = st.session_state["utt_table"].selection.rows
    if selection:
        st.session_state["utt_id"] = st.session_state["_utt_ids"][selection[0]]


def fit(header: str, minimum: int = 0) -> int:
    """A column width (pixels) that shows its whole header (sort and help icons included)."""
    return max(minimum, 7 * len(header) + 26)


ids = rows["utterance_id"].tolist()
st.session_state["_utt_ids"] = ids
# The columns the hunt for misranked utterances needs come first, so they fit at 1440 px.
shown = rows[
    [
        "utterance_id",
        "text",
        "top_correct",
        "misranked",
        "correct_rank",
        "top_semer",
        "reference_domain",
        "top_domain",
        "top_score",
        "device",
        "top_intent",
        "n_hypotheses",
        "r0_top_domain",
    ]
]
st.dataframe(
    shown,
    key="utt_table",
    hide_index=True,
    on_select=_pick_from_table,
    selection_mode="single-row",
    height=300,
    column_config={
        "utterance_id": st.column_config.TextColumn("id", width=130),
        "text": st.column_config.TextColumn("text", width=220),
        "top_correct": st.column_config.CheckboxColumn("top-1 correct", width=fit("top-1 correct")),
        "misranked": st.column_config.CheckboxColumn("misranked", width=fit("misranked")),
        "correct_rank": st.column_config.NumberColumn(
            "best correct rank",
            width=fit("best correct rank"),
            help="Best rank of a correct hypothesis (0: none in the n-best)",
        ),
        "top_semer": st.column_config.NumberColumn(
            "top-1 SemER", format="%.2f", width=fit("top-1 SemER")
        ),
        "reference_domain": st.column_config.TextColumn(
            "reference domain", width=fit("reference domain")
        ),
        "top_domain": st.column_config.TextColumn(
            f"{label} top-1 domain", width=fit(f"{label} top-1 domain")
        ),
        "top_score": st.column_config.NumberColumn(
            f"{label} top-1 score", format="%.3f", width=fit(f"{label} top-1 score")
        ),
        "device": st.column_config.TextColumn("device", width=fit("device", 90)),
        "top_intent": st.column_config.TextColumn(
            f"{label} top-1 intent", width=fit(f"{label} top-1 intent", 140)
        ),
        "n_hypotheses": st.column_config.NumberColumn("n-best", width=fit("n-best")),
        "r0_top_domain": st.column_config.TextColumn(
            "R0 top-1 domain", width=fit("R0 top-1 domain")
        ),
    },
)
st.download_button(
    "Download these utterances (CSV)",
    rows.to_csv(index=False).encode(),
    file_name=f"{safe_file_name(ctx.dataset_key)}_{loss}_utterances.csv",
    mime="text/csv",
    key="utt_csv",
)

texts = dict(zip(rows["utterance_id"], rows["text"], strict=True))


def _exists(uid: str) -> bool:
    if ctx.large:
        return large_data.has_utterance(ctx.token, uid)
    return uid in prep.utterance_ids


def _text_of(uid: str) -> str:
    if ctx.large:
        return str(large_data.one_utterance(ctx.token, uid)["text"].iloc[0])
    return str(prep.frame["text"].iloc[int(prep.rows_of(uid)[0])])


linked = st.query_params.get("utt")
if "utt_id" not in st.session_state and linked and _exists(linked):
    # A shared link (?utt=<id>) opens that utterance, even outside the current filters.
    if linked not in texts:
        ids = [linked, *ids]
        texts[linked] = _text_of(linked)
    st.session_state["utt_id"] = linked
if not ids:
    st.query_params.pop("utt", None)
    st.info("No utterance matches these filters.")
    st.stop()
if st.session_state.get("utt_id") not in ids:
    # The selection no longer matches the filters: the picker moves to the first match.
    st.session_state["utt_id"] = ids[0]
uid = st.selectbox(
    "Utterance",
    ids,
    format_func=lambda i: f"{i} · {texts[i]}",
    key="utt_id",
    help="Or select a row in the table above. The link of this page opens this utterance.",
)
st.query_params["utt"] = uid
st.divider()
if ctx.large:
    prep, scored, r0 = large_data.utterance_tables(ctx.token, uid, args[2], args[3])

detail = utterance_detail(prep, scored, uid, r0=r0)
first = prep.frame.iloc[int(detail["row"].iloc[0])]
st.subheader("One utterance")
c1, c2 = st.columns([3, 2])
with c1:
    st.text(f"Text:      {first['text']}")
    st.text(f"Device:    {first['device']}")
    st.text(
        f"Reference: {first['ref_domain']} · {first['ref_intent']} · {first['ref_slots'] or '(no slots)'}"
    )
with c2:
    top = detail.iloc[0]
    st.metric(f"Top-1 under {label}", ui.md(top["domain"]))
    if bool(top["correct"]):
        st.badge("correct", color="green", icon=":material/check:")
    elif detail["correct"].any():
        st.badge(
            "misranked: a correct hypothesis is lower", color="orange", icon=":material/swap_vert:"
        )
    else:
        st.badge("no correct hypothesis in the n-best", color="gray")
    ui.simulated_note(ctx)

st.markdown(f"**Every hypothesis, ranked by {label}** (R0 rank for comparison)")
st.dataframe(
    detail.drop(columns=["row"]),
    key="utt_detail",
    hide_index=True,
    column_order=[
        "rank",
        "domain",
        "intent",
        "semer",
        "correct",
        "score",
        "r0_rank",
        "r0_score",
        "domain_score",
        "intent_score",
        "slot_score",
        "slots",
    ],
    column_config={
        c: st.column_config.NumberColumn(format="%.3f")
        for c in ("domain_score", "intent_score", "slot_score", "semer", "r0_score", "score")
    }
    | {
        "score": st.column_config.NumberColumn(f"{label} score", format="%.3f"),
        "rank": st.column_config.NumberColumn(f"{label} rank"),
        "r0_score": st.column_config.NumberColumn("R0 score", format="%.3f"),
        "r0_rank": "R0 rank",
        "semer": st.column_config.NumberColumn("SemER", format="%.3f"),
        "domain_score": st.column_config.NumberColumn("NLU domain", format="%.3f"),
        "intent_score": st.column_config.NumberColumn("NLU intent", format="%.3f"),
        "slot_score": st.column_config.NumberColumn("NLU slot", format="%.3f"),
    },
)
labels = {i: f"#{int(r['rank'])} {r['domain']} · {r['intent']}" for i, r in detail.iterrows()}
pick = st.selectbox(
    "Edit alignment of hypothesis",
    list(labels),
    format_func=labels.get,
    key="utt_hyp",
)
hyp = detail.iloc[pick]
align = alignment_frame(
    str(first["ref_domain"]),
    str(first["ref_intent"]),
    str(first["ref_slots"]),
    str(hyp["domain"]),
    str(hyp["intent"]),
    str(hyp["slots"]),
)
st.caption(
    f"SemER {hyp['semer']:.3f}: substitutions, deletions (reference labels missed) and insertions "
    "(labels the reference lacks) over the reference's labels (intent + slots)."
)
st.dataframe(align, key="utt_alignment", hide_index=True)

docs: dict[str, dict] = {}
if loss != "r0":
    try:
        docs = cache.documents(ctx.weights[loss], ctx.fingerprints[loss])
    except (RerankerError, ImportError) as e:
        if isinstance(e, RerankerError):
            ui.show_error(e)
utt_row_ids = prep.rows_of(uid)
utt_rows = prep.frame.iloc[utt_row_ids].reset_index(drop=True)
order = {int(r): i for i, r in enumerate(utt_row_ids)}
st.subheader("Why this ranking")
if not docs:
    st.info(
        "R0 multiplies the three NLU confidences; there are no weights, so no feature contributions. "
        "Choose R1, R2 or R3 in the sidebar (train them on the Weights page if they are missing)."
    )
    st.stop()
contrib = hypothesis_contributions(utt_rows, docs)
pos_label = {order[int(r["row"])]: labels[i] for i, r in detail.iterrows()}
if contrib.empty:
    st.info("None of these hypotheses' domains has weights: all are scored with R0.")
else:
    chart_key = (ctx.token, loss, ctx.fingerprints[loss], uid)
    fig = cache.contributions_chart(chart_key, contrib, pos_label)
    ui.chart(
        fig,
        contrib.assign(label=contrib["hypothesis"].map(pos_label)),
        key="utt_contrib",
        file_name=f"{uid}_contributions",
    )
    no_weights = sorted(set(utt_rows["domain"]) - set(docs))
    if no_weights:
        st.caption(f"Scored with R0 (no weights): {ui.md(', '.join(no_weights))}.")

st.subheader("What if: edit a domain's weights")
edit_domains = sorted(set(utt_rows["domain"]) & set(docs))
if not edit_domains:
    st.stop()
wdomain = st.selectbox("Domain", edit_domains, key="whatif_domain")
doc = docs[wdomain]
with st.form("whatif_form", border=True):
    st.caption(
        f"{ui.md(wdomain)}: {ui.LOSS_LABELS[loss]} weights v{doc['version']}. Edit and re-rank this utterance."
    )
    cols = st.columns(4)
    edited = []
    for k, (name, w) in enumerate(zip(doc["features"], doc["weights"], strict=True)):
        edited.append(
            cols[k % 4].number_input(
                ui.md(name), value=float(w), step=0.1, format="%.4f", key=f"whatif_{wdomain}_{k}"
            )
        )
    bias = cols[len(edited) % 4].number_input(
        "bias", value=float(doc["bias"]), step=0.1, format="%.4f", key=f"whatif_{wdomain}_bias"
    )
    submitted = st.form_submit_button(
        "Re-rank with these weights", key="whatif_submit", type="primary"
    )
semer_of = None
if "semer" in detail.columns:
    semer_of = {(r["domain"], r["intent"], r["slots"]): r["semer"] for _, r in detail.iterrows()}
merged, changed = what_if(utt_rows, docs, wdomain, edited, bias, semer_of)
st.dataframe(
    merged,
    key="whatif_result",
    hide_index=True,
    column_config={"what-if score": st.column_config.NumberColumn(format="%.3f")},
)
if changed:
    st.success(
        "The ranking changes: now first is "
        + ui.md(f"{merged.iloc[0]['domain']} · {merged.iloc[0]['intent']}.")
    )
else:
    st.caption("The ranking is unchanged with these weights.")
