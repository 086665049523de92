"""Shared state and widgets of the dashboard: the sidebar, the current context, downloads.

The selected dataset, split and loss are sidebar widgets rendered on every page and bound to the
URL query (``?dataset=media&split=test&loss=r2``), so they survive page switches and a view can
be shared by its link. Weights trained or loaded in a session live in a per-session workspace
(a temporary directory); the shipped ``demo_data/`` is never modified.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import data_cache as cache
from dashboard.names import registry_fingerprint, safe_file_name, table_token
from reranker import uploads
from reranker.datasets import DatasetInfo
from reranker.errors import RerankerError
from reranker.options import LOSSES
from reranker.scoring import SCORERS
from reranker.tables import ScoredTable

REPO = Path(__file__).resolve().parent.parent
LOSS_LABELS = {"r0": "R0", "r1": "R1", "r2": "R2", "r3": "R3"}
LOSS_HELP = {
    "r0": "R0: the unweighted product of the NLU confidences (no training)",
    "r1": "R1: expected SemER",
    "r2": "R2: cross-entropy on the correct bit",
    "r3": "R3: R1 + α·R2",
}
CALIBRATED_LOSSES = ("r2", "r3")
"""Losses with a cross-entropy term: their scores are trained to be probabilities."""
R1_CAUTION = (
    "**A caution on R1.** R1 minimises expected SemER through a softmax, which ignores any shift "
    "shared by all its terms: R1 scores rank hypotheses but are not probabilities. With the "
    "domain scope it cannot learn a domain's level against the other domains either, so its "
    "scores are not comparable across domains and its top-1 is worse than R0's. Use R3, or R1 "
    "trained with the utterance scope."
)
UPLOAD_PREFIX = "upload:"
PLOTLY_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}}


def data_root() -> Path:
    """The data directory: ``$RERANKER_DATA`` or the repository's ``demo_data/``."""
    return Path(os.environ.get("RERANKER_DATA") or REPO / "demo_data")


def workspace() -> Path:
    """This session's scratch directory (uploads, trained and copied weights).

    A fresh temporary directory per session, under ``$RERANKER_WORKSPACE`` when set.
    """
    if "workspace" not in st.session_state:
        parent = os.environ.get("RERANKER_WORKSPACE") or None
        if parent:
            Path(parent).mkdir(parents=True, exist_ok=True)
        st.session_state["workspace"] = tempfile.mkdtemp(prefix="reranker-dashboard-", dir=parent)
    return Path(st.session_state["workspace"])


def init_state() -> None:
    """Session defaults (widget values themselves default through their widgets)."""
    st.session_state.setdefault("uploads", {})
    st.session_state.setdefault("weights_paths", {})


@dataclass(frozen=True)
class Context:
    """What every page works on: the table, the chosen loss and the weights of each loss."""

    dataset_key: str
    label: str
    info: DatasetInfo | None
    table_path: Path | None
    split: str | None
    loss: str
    weights: dict[str, str] = field(default_factory=dict)
    fingerprints: dict[str, str] = field(default_factory=dict)

    @property
    def token(self) -> str:
        assert self.table_path is not None
        return table_token(self.table_path)

    @property
    def large(self) -> bool:
        """Whether the table is a partitioned dataset served from statistics."""
        return self.table_path is not None and cache.large(self.token)

    @property
    def devices_simulated(self) -> bool:
        return bool(self.info and self.info.devices_simulated)

    def available(self, loss: str) -> bool:
        return loss == "r0" or loss in self.weights

    def args(self, loss: str | None = None) -> tuple[str, str, str | None, str]:
        """``(token, loss, weights, fingerprint)``: the key of every cached computation."""
        loss = loss or self.effective_loss
        if loss == "r0" or loss not in self.weights:
            return self.token, "r0", None, "r0"
        return self.token, loss, self.weights[loss], self.fingerprints[loss]

    @property
    def effective_loss(self) -> str:
        return self.loss if self.available(self.loss) else "r0"

    @property
    def available_losses(self) -> list[str]:
        return [loss for loss in SCORERS if self.available(loss)]


def _weights_for(key: str, info: DatasetInfo | None) -> dict[str, str]:
    chosen: dict[str, str] = {}
    if info is not None:
        chosen.update({loss: str(p) for loss, p in info.weights.items()})
    overrides = st.session_state.get("weights_paths", {})
    for loss in LOSSES:
        if (key, loss) in overrides:
            chosen[loss] = overrides[(key, loss)]
    usable = {}
    for loss, path in chosen.items():
        try:
            from reranker.registry import WeightsRegistry

            if WeightsRegistry(path).domains():
                usable[loss] = path
        except (RerankerError, ImportError):
            continue
    return usable


def writable_registry(ctx: Context, loss: str) -> Path:
    """The session's own copy of a loss's registry (copied from shipped weights on first use)."""
    target = workspace() / "weights" / safe_file_name(ctx.dataset_key) / loss
    current = ctx.weights.get(loss)
    if current is not None and Path(current).resolve() != target.resolve() and not target.exists():
        shutil.copytree(current, target)
    target.mkdir(parents=True, exist_ok=True)
    st.session_state["weights_paths"][(ctx.dataset_key, loss)] = str(target)
    return target


def _dataset_label(key: str, by_key: dict[str, DatasetInfo]) -> str:
    if key.startswith(UPLOAD_PREFIX):
        return f"Uploaded: {key[len(UPLOAD_PREFIX) :]}"
    return by_key[key].name if key in by_key else (key or "no data")


def _pick_dataset(root: Path, by_key: dict[str, DatasetInfo], uploaded: dict[str, str]) -> str:
    """The dataset selector (bound to ``?dataset=``); ``""`` when there is none."""
    options = [*by_key, *(UPLOAD_PREFIX + name for name in uploaded)]
    st.markdown("**Data**")
    if not options:
        st.warning(
            f"No dataset found under {md(root)}. Upload a hypothesis table on the Data page, "
            "or start with `--data DIR` / `RERANKER_DATA=DIR`."
        )
        return ""
    key = st.selectbox(
        "Dataset",
        options,
        format_func=lambda k: _dataset_label(k, by_key),
        key="dataset",
        bind="query-params",
    )
    return key or ""


def _pick_split(
    key: str, info: DatasetInfo | None, uploaded: dict[str, str]
) -> tuple[str | None, Path | None]:
    """The split selector when a dataset has several; ``(split, table path)``."""
    if info is None:
        if key.startswith(UPLOAD_PREFIX):
            return None, Path(uploaded[key[len(UPLOAD_PREFIX) :]])
        return None, None
    splits = list(info.splits)
    split = splits[0]
    if len(splits) > 1:
        split = st.selectbox(
            "Split",
            splits,
            index=splits.index(info.default_split),
            key="split",
            bind="query-params",
            help="Analyses use the test split by default; the weights were trained on dev.",
        )
    return split, info.splits[split or info.default_split]


def _pick_loss(weights: dict[str, str], info: DatasetInfo | None) -> str:
    """The loss selector (bound to ``?loss=``) and what a reader must know about the choice."""
    st.markdown("**Re-ranker**")
    loss = st.radio(
        "Loss",
        list(SCORERS),
        format_func=LOSS_LABELS.get,
        captions=[
            "baseline" if x == "r0" else ("trained" if x in weights else "no weights")
            for x in SCORERS
        ],
        key="loss",
        horizontal=True,
        bind="query-params",
        help="\n\n".join(LOSS_HELP.values()),
    )
    if loss != "r0" and loss not in weights:
        st.info(
            f"{LOSS_LABELS[loss]} has no weights for this dataset yet: pages use R0. "
            "Train or load weights on the Weights page."
        )
    if loss == "r1":
        st.warning(R1_CAUTION, icon=":material/warning:")
    if info is not None and info.devices_simulated:
        st.caption("Devices in this dataset are simulated.")
    return loss or "r0"


def sidebar() -> Context:
    """Render the shared sidebar (dataset, split, loss) and return the current context."""
    init_state()
    root = data_root()
    by_key = {d.key: d for d in cache.datasets(str(root))}
    uploaded: dict[str, str] = st.session_state["uploads"]
    with st.sidebar:
        key = _pick_dataset(root, by_key, uploaded)
        info = by_key.get(key)
        split, table_path = _pick_split(key, info, uploaded)
        weights = _weights_for(key, info)
        fingerprints = {loss: registry_fingerprint(p) for loss, p in weights.items()}
        loss = _pick_loss(weights, info)
    label = _dataset_label(key, by_key)
    return Context(key, label, info, table_path, split, loss, weights, fingerprints)


def bound(widget: Any, label: str, *args: Any, key: str, **kwargs: Any) -> Any:
    """A widget whose value is kept in the URL and across page switches."""
    return widget(label, *args, key=key, bind="query-params", persist_state="session", **kwargs)


def current() -> Context:
    """The context the router computed for this run."""
    return st.session_state["_context"]


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=])")


def md(text: object) -> str:
    """User text made inert for Streamlit's Markdown (every special character escaped).

    Streamlit never renders raw HTML here, but Markdown links, images, emphasis and its own
    ``:color[...]`` / ``:material/...:`` directives would still be interpreted; data values
    (domain names, file names, utterances) go through this before reaching any Markdown element.
    """
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


def show_error(error: RerankerError, *, replace: dict[str, str] | None = None) -> None:
    """Show a project error in place, as one line (never a traceback)."""
    message = " ".join(str(error).split())
    for old, new in (replace or {}).items():
        message = message.replace(old, new)
    st.error(md(message), icon=":material/error:")


def need_table(ctx: Context) -> bool:
    """Explain and return False when there is no table to analyse."""
    if ctx.table_path is None:
        st.info(
            "No hypothesis table selected: pick a dataset in the sidebar or upload one on the Data page."
        )
        return False
    if ctx.large:
        try:
            ensure_statistics(ctx)
        except RerankerError as e:
            show_error(e)
            return False
    return True


def ensure_statistics(ctx: Context) -> None:
    """Compute once, in one pass, the statistics of every scoring this dataset has."""
    from dashboard.large_data import ensure_statistics as ensure

    scorings = tuple(None if x == "r0" else ctx.weights[x] for x in ctx.available_losses)
    ensure(ctx.token, scorings)


def scored_or_error(
    ctx: Context, loss: str | None = None
) -> tuple[ScoredTable, dict[str, str]] | None:
    """The scored table of a loss, or None after showing why it could not be computed."""
    try:
        return cache.scored(*ctx.args(loss))
    except RerankerError as e:
        show_error(e)
        return None


def has_references(ctx: Context) -> bool:
    """Whether the table has references; explains what is missing when it has not."""
    if ctx.large:
        return True  # its statistics exist, and they need references
    try:
        ok = cache.prepared(ctx.token).has_references
    except RerankerError as e:
        show_error(e)
        return False
    if not ok:
        st.info(
            "This table has no reference columns (ref_domain, ref_intent, ref_slots), so SemER, "
            "correctness and calibration cannot be computed. Upload a table with references."
        )
    return ok


def chart(fig: go.Figure, data: pd.DataFrame, *, key: str, file_name: str) -> None:
    """A plotly chart (PNG from its modebar camera) with its data as a CSV download."""
    st.plotly_chart(fig, key=f"{key}_chart", config=PLOTLY_CONFIG)
    st.download_button(
        "Download data (CSV)",
        data.to_csv(index=False).encode("utf-8"),
        file_name=f"{safe_file_name(file_name)}.csv",
        mime="text/csv",
        key=f"{key}_csv",
        icon=":material/download:",
    )


def check_quota(*, add_files: int, add_bytes: int) -> None:
    """Refuse (DataError) storing more in this session's workspace than its quota allows."""
    uploads.check_quota(
        workspace(), uploads.Quota.from_env(), add_files=add_files, add_bytes=add_bytes
    )


def save_upload(name: str, data: bytes) -> Path:
    """Store uploaded bytes in the workspace under a safe version of their file name.

    Raises
    ------
    DataError
        When the session's storage quota (:mod:`reranker.uploads`) would be exceeded.
    """
    digest = hashlib.sha256(data).hexdigest()[:16]
    directory = workspace() / "uploads" / digest
    path = directory / uploads.safe_upload_name(name)
    if not path.exists():
        check_quota(add_files=1, add_bytes=len(data))
        directory.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return path


def server_folder(text: str) -> Path:
    """A server folder a user typed, confined to the data folder and this session's workspace.

    Any folder is accepted when the operator allows it (``RERANKER_ALLOW_SERVER_PATHS=1``,
    ``reranker dashboard --allow-server-paths``). The refusal does not tell whether it exists.
    """
    return uploads.confine_path(
        text, [data_root(), workspace()], allow_any=uploads.server_paths_allowed()
    )


def fmt(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def simulated_note(ctx: Context) -> None:
    """What the dataset's devices mean (its own description), wherever devices are shown."""
    if ctx.info is not None and ctx.info.device_note:
        st.caption(md(ctx.info.device_note))


def score_label(loss: str) -> str:
    """How to name a loss's score: "calibrated" only for losses trained to be probabilities."""
    if loss in CALIBRATED_LOSSES:
        return f"{LOSS_LABELS[loss]} score (trained to be calibrated)"
    if loss == "r0":
        return "R0 score (product of the NLU confidences, not calibrated)"
    return f"{LOSS_LABELS[loss]} score (not a probability)"


def best_trained_loss(ctx: Context) -> str:
    """The loss to open the probe on: R3, else R2, else R1 (README: R3 is as good as R2 and
    R1 is the weakest), else R0 when nothing is trained."""
    for loss in ("r3", "r2", "r1"):
        if ctx.available(loss):
            return loss
    return "r0"


def drop_stale_choice(key: str, options: list[str]) -> None:
    """Forget a widget value (and its URL parameter) naming an option this dataset lacks.

    A link or a session carried over from another dataset may name a domain or device this one
    does not have; such values are removed from the URL instead of lingering there.
    """
    allowed = set(options)
    state = st.session_state.get(key)
    if state is not None:
        values = state if isinstance(state, list) else [state]
        if any(v not in allowed for v in values):
            kept = [v for v in values if v in allowed]
            if isinstance(state, list):
                st.session_state[key] = kept
            else:
                del st.session_state[key]
    if key in st.query_params:
        values = st.query_params.get_all(key)
        kept = [v for v in values if v in allowed]
        if len(kept) != len(values):
            if kept:
                st.query_params[key] = kept
            else:
                del st.query_params[key]
