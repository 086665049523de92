"""Weights: train per domain and loss, load weights, list and compare versions, roll back."""

from __future__ import annotations

import os
import shlex

import pandas as pd
import streamlit as st

from dashboard import data_cache as cache
from dashboard import ui
from dashboard.names import registry_fingerprint, table_token
from reranker import charts
from reranker.errors import RerankerError, WeightsError
from reranker.registry import compare_documents, registry_table
from reranker.weights_edits import parse_documents, publish_documents

TRAINABLE = ["r1", "r2", "r3"]


def _reset_versions() -> None:
    """Compare the latest two versions again (after a domain change, training or rollback)."""
    for key in [k for k in st.session_state if str(k).startswith(("ver_a", "ver_b"))]:
        st.session_state.pop(key, None)


ctx = ui.current()
st.title("Weights")
st.write(
    "Each domain owns its re-ranker weights, trained on its own hypotheses with one loss and "
    "versioned independently: retraining Music never touches Books. Weights you train, load or "
    "roll back here live in this session's workspace; the shipped files are never modified."
)
if not ui.need_table(ctx):
    st.stop()
try:
    from reranker.registry import WeightsRegistry
    from reranker.training import train_domains
except ImportError:
    st.info("Training is not available in this installation.")
    st.stop()

default = ctx.loss if ctx.loss in TRAINABLE else "r2"
loss = st.segmented_control(
    "Weights of loss",
    TRAINABLE,
    default=default,
    format_func=ui.LOSS_LABELS.get,
    key="w_loss",
    on_change=_reset_versions,
    required=True,
)
loss = loss or default
path = ctx.weights.get(loss)
st.caption(ui.LOSS_HELP[loss] + (f" · registry: {ui.md(path)}" if path else " · no weights yet"))

tab_versions, tab_train, tab_load = st.tabs(["Versions", "Train", "Load"])

with tab_train:
    data_choices = {}
    if ctx.info is not None:
        data_choices = {f"{split} split": str(p) for split, p in ctx.info.splits.items()}
    elif ctx.table_path is not None:
        data_choices = {"the uploaded table": str(ctx.table_path)}
    data_choices = {k: v for k, v in data_choices.items() if not cache.large(table_token(v))}
    if not data_choices:
        st.info(
            "This dataset is too large to train in the dashboard: train with "
            "`reranker train --hypotheses DIR` and load the weights on the Load tab."
        )
    else:
        preferred = next((k for k in data_choices if k.startswith("dev")), next(iter(data_choices)))
        try:
            domains_all = cache.summary(ctx.token)["domains"]
        except RerankerError as e:
            ui.show_error(e)
            st.stop()
        with st.form("train_form"):
            st.markdown(f"**Train {ui.LOSS_LABELS[loss]} weights, each domain independently**")
            c1, c2 = st.columns(2)
            train_on = c1.selectbox(
                "Training data",
                list(data_choices),
                index=list(data_choices).index(preferred),
                key="train_data",
                help="The shipped weights were trained on the dev split; analyses use the test split.",
            )
            domains = c2.multiselect("Domains (empty: all)", domains_all, key="train_domains")
            c3, c4, c5, c6 = st.columns(4)
            scope = c3.selectbox(
                "R1 softmax scope",
                ["utterance", "domain"],
                disabled=loss == "r2",
                key="train_scope",
                help="utterance: over the whole n-best, other domains frozen at their current "
                "weights; domain: over the domain's own hypotheses (cannot learn the domain's level "
                "against the others).",
            )
            alpha = c4.number_input(
                "α (R3)", 0.0, 100.0, 1.0, 0.1, key="train_alpha", disabled=loss != "r3"
            )
            l2_fixed = c5.number_input("L2 λ", 0.0, 10.0, 1e-3, 1e-3, format="%.4f", key="train_l2")
            l2_auto = c5.checkbox(
                "λ per domain by cross-validation",
                key="train_l2_auto",
                help="Each domain picks its own λ from a log grid by 3-fold cross-validation grouped "
                "by utterance (the fixed λ above is then ignored); the choice and the CV scores go "
                "into the weights file.",
            )
            tau = c6.number_input(
                "Temperature τ (R1)", 0.01, 100.0, 1.0, 0.1, key="train_tau", disabled=loss == "r2"
            )
            device_auto = c6.checkbox(
                "Device penalty by cross-validation",
                value=True,
                key="train_device_auto",
                help="The device weights get their own penalty, chosen per domain by the same "
                "grouped cross-validation (default): devices that carry no information get "
                "weights near zero. Off: the device weights share λ.",
            )
            submitted = st.form_submit_button("Train", key="train_submit", type="primary")
        if submitted:
            try:
                frame = cache.prepared(table_token(data_choices[train_on])).frame
                todo = list(domains) or sorted(frame["domain"].unique())
                ui.check_quota(add_files=2 * len(todo), add_bytes=0)
                target = ui.writable_registry(ctx, loss)
                bars = {}
                box = st.container(border=True)
                for d in todo:
                    bars[d] = box.progress(0.0, text=ui.md(f"{d}: queued"))

                def progress(domain: str, message: str, fraction: float) -> None:
                    if domain in bars:
                        bars[domain].progress(float(fraction), text=ui.md(f"{domain}: {message}"))

                results = train_domains(
                    frame,
                    loss=loss,
                    out=target,
                    domains=todo,
                    scope=scope,
                    alpha=alpha,
                    l2="auto" if l2_auto else l2_fixed,
                    temperature=tau,
                    device_l2="auto" if device_auto else None,
                    jobs=min(len(todo), os.cpu_count() or 1),
                    progress=progress,
                )
            except RerankerError as e:
                ui.show_error(e)
            else:
                failed = {d: r.error for d, r in results.items() if not r.ok}
                done = [f"{d} v{r.version}" for d, r in results.items() if r.ok]
                for d, err in failed.items():
                    st.error(ui.md(f"{d} was not trained: {err}"))
                if done and not failed:
                    st.session_state["_trained"] = (
                        f"Published {ui.LOSS_LABELS[loss]} weights {', '.join(done)}; every page now uses them."
                    )
                    _reset_versions()
                    st.rerun()
                elif done:
                    st.success(ui.md(f"Published {', '.join(done)}."))
        if "_trained" in st.session_state:
            st.success(ui.md(st.session_state.pop("_trained")), icon=":material/check:")


with tab_load:
    st.markdown("**Use a weights registry directory**")
    c1, c2 = st.columns([4, 1])
    directory = c1.text_input(
        "Directory",
        key="weights_dir",
        placeholder="e.g. /path/to/weights/r2",
        label_visibility="collapsed",
    )
    if c2.button("Use", key="weights_dir_use"):
        try:
            folder = ui.server_folder(directory)
            try:
                found = folder.is_dir()
            except OSError:
                found = False
            if not found:
                raise WeightsError(f"{directory}: no such weights directory")
            if not WeightsRegistry(folder).domains():
                raise WeightsError(f"{directory}: no published weights in this directory")
        except RerankerError as e:
            ui.show_error(e)
        else:
            st.session_state["weights_paths"][(ctx.dataset_key, loss)] = str(folder)
            st.rerun()
    st.markdown(
        "**Or upload weights JSON files** (one per domain and version, "
        "docs/formats.md#weights-document; each is published as a new version under the loss "
        "it names)"
    )
    files = st.file_uploader(
        "Weights JSON", type=["json"], accept_multiple_files=True, key="weights_upload"
    )
    if files and st.button("Publish the uploaded weights", key="weights_upload_publish"):
        published: list[str] = []
        try:
            documents = parse_documents([(f.name, f.getvalue()) for f in files])
            ui.check_quota(add_files=2 * len(documents), add_bytes=sum(f.size for f in files))
            # Each document goes to the registry of its own loss.
            for x, d, v in publish_documents(documents, lambda x: ui.writable_registry(ctx, x)):
                published.append(f"{ui.LOSS_LABELS[x]} {d} v{v}")
        except RerankerError as e:
            ui.show_error(e)
            if published:
                st.success(ui.md(f"Published {', '.join(published)}."))
        else:
            st.session_state["_loaded"] = f"Published {', '.join(published)}."
            _reset_versions()
            st.rerun()
    if "_loaded" in st.session_state:
        st.success(ui.md(st.session_state.pop("_loaded")), icon=":material/check:")

with tab_versions:
    path = ui.current().weights.get(loss) or st.session_state["weights_paths"].get(
        (ctx.dataset_key, loss)
    )
    if not path:
        st.info(
            f"No {ui.LOSS_LABELS[loss]} weights for this dataset yet: train them in the Train tab or load them."
        )
        st.stop()
    try:
        overview = registry_table(path)
    except RerankerError as e:
        ui.show_error(e)
        st.stop()
    # what `reranker serve` answers in each response's "weights": the current version
    served = [
        f"{loss_name.lower()} v{v}" if pd.notna(v) else "r0"
        for loss_name, v in zip(overview["loss"], overview["current"], strict=True)
    ]
    overview.insert(2, "served", served)
    st.dataframe(overview, key="ver_table", hide_index=True)
    st.caption(
        "A running service started with the command below serves each domain's current version "
        "(column *served*, as named in its answers) and picks up a publish or a rollback here "
        "within a second, without a restart; a version that fails validation is never served."
    )
    # the directory is the user's: shown verbatim in a code block, never read as Markdown
    st.code(f"reranker serve --weights {shlex.quote(str(path))}", language="bash")
    st.download_button(
        "Download (CSV)",
        overview.to_csv(index=False).encode(),
        file_name=f"{loss}_registry.csv",
        mime="text/csv",
        key="ver_csv",
    )
    if overview.empty:
        st.stop()
    registry = WeightsRegistry(path)
    domain = st.selectbox(
        "Domain", overview["domain"].tolist(), key="ver_domain", on_change=_reset_versions
    )
    versions = registry.versions(domain)
    current = registry.current_version(domain)
    # Keys carry the registry state: after training, rollback or roll-forward the pickers are
    # new widgets, so their "(current)" labels can never be stale.
    state = registry_fingerprint(path)[:12]

    def label(v: int) -> str:
        return f"v{v}" + (" (current)" if v == current else "")

    c1, c2, c3 = st.columns([2, 2, 3])
    a = c1.selectbox(
        "Version A",
        versions,
        index=max(0, len(versions) - 2),
        format_func=label,
        key=f"ver_a_{state}",
    )
    b = c2.selectbox(
        "Version B", versions, index=len(versions) - 1, format_func=label, key=f"ver_b_{state}"
    )
    with c3:
        st.write("")
        back, forward = st.columns(2)
        move = None
        if back.button(
            "Roll back",
            key="ver_rollback",
            icon=":material/undo:",
            disabled=not [v for v in versions if v < (current or 0)],
            help=ui.md(
                f"Point {domain} back at its previous version; other domains are untouched."
            ),
        ):
            move = "rollback"
        if forward.button(
            "Roll forward",
            key="ver_rollforward",
            icon=":material/redo:",
            disabled=not [v for v in versions if v > (current or 0)],
            help=ui.md(f"Point {domain} at its next version (undo a rollback)."),
        ):
            move = "roll_forward"
        if move is not None:
            try:
                target = WeightsRegistry(ui.writable_registry(ctx, loss))
                version = getattr(target, move)(domain)
            except RerankerError as e:
                ui.show_error(e)
            else:
                st.session_state["_rolled_back"] = f"{domain} now uses v{version}."
                _reset_versions()
                st.rerun()
    st.caption(
        ui.md(f"{domain}: current version v{current} of {', '.join(f'v{v}' for v in versions)}.")
    )
    if len(versions) == 1:
        st.caption(
            f"{ui.md(domain)} has a single version: train it again (Train tab) to compare two."
        )
    if "_rolled_back" in st.session_state:
        st.success(ui.md(st.session_state.pop("_rolled_back")))
    ui.simulated_note(ctx)
    doc_a, doc_b = registry.load(domain, a), registry.load(domain, b)
    weights_cmp, facts = compare_documents(doc_a, doc_b)
    fig = charts.weights_comparison_figure(
        weights_cmp["feature"].tolist(),
        {f"A: v{a}": weights_cmp["a"], f"B: v{b}": weights_cmp["b"]},
    )
    ui.chart(
        fig,
        weights_cmp.rename(columns={"a": f"A: v{a}", "b": f"B: v{b}"}),
        key="ver_compare",
        file_name=f"{domain}_v{a}_v{b}_weights",
    )
    st.dataframe(
        facts.rename(columns={"a": f"A: v{a}", "b": f"B: v{b}"}), key="ver_facts", hide_index=True
    )
