"""``reranker nlu train|predict|cross-fit``, ``reranker demo`` and ``reranker probe``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from reranker.cli._app import app
from reranker.cli._common import (
    check_output_path,
    check_output_target,
    err_console,
    out_console,
    print_table,
    refuse_input_as_output,
    status,
)

if TYPE_CHECKING:
    import pandas as pd

nlu_app = typer.Typer(
    help="Train the per-domain NLU models and predict n-best hypotheses.",
    no_args_is_help=True,
)
app.add_typer(nlu_app, name="nlu")


DomainMapOption = Annotated[
    Path | None,
    typer.Option(
        "--domain-map", help="JSON map from corpus domains (or intents) to product domains."
    ),
]
SettingsOption = Annotated[
    Path | None,
    typer.Option("--settings", help="JSON per-domain settings overrides ({Domain or '*': {...}})."),
]
DeviceOption = Annotated[
    str | None,
    typer.Option(
        "--device", help="Device of utterances whose corpus line has none (default 'unknown')."
    ),
]
JobsOption = Annotated[
    int, typer.Option("--jobs", "-j", min=1, help="Worker processes (domains train in parallel).")
]
DomainsOption = Annotated[int, typer.Option("--domains", min=1, help="Top domains per utterance.")]
IntentsOption = Annotated[int, typer.Option("--intents", min=1, help="Top intents per domain.")]


def _progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=err_console,
        disable=not err_console.is_terminal,
        transient=True,
    )


def _read_training_corpus(
    corpus: list[Path], domain_map: Path | None, settings: Path | None
) -> tuple[pd.DataFrame, dict[str, dict[str, Any]] | None]:
    """The labelled corpus (domains mapped) and the settings overrides of a training command,
    the settings checked against the corpus's domains (an error names the settings file)."""
    from reranker.errors import DataError
    from reranker.nlu import read_corpora, read_domain_map, read_settings_file
    from reranker.nlu.settings import check_settings

    mapping = read_domain_map(domain_map) if domain_map is not None else None
    overrides = read_settings_file(settings) if settings is not None else None
    with status("reading the corpus"):
        frame = read_corpora(corpus, domain_map=mapping)
    if settings is not None:
        try:
            check_settings(overrides, frame["domain"].tolist())
        except DataError as error:
            raise DataError(f"{settings}: {error}") from error
    return frame, overrides


@nlu_app.command("train")
def nlu_train(
    corpus: Annotated[
        list[Path],
        typer.Option("--corpus", "-c", help="Annotated corpus (.jsonl or .csv); repeatable."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model directory to write.")],
    domain_map: DomainMapOption = None,
    settings: SettingsOption = None,
    domain: Annotated[
        list[str] | None, typer.Option("--domain", "-d", help="Train only this domain; repeatable.")
    ] = None,
    jobs: JobsOption = 1,
) -> None:
    """Train each domain's domain classifier, intent classifier and CRF slot tagger."""
    from reranker.nlu import train_models

    check_output_target(out, inputs=[*corpus, domain_map, settings], directory=True)
    frame, overrides = _read_training_corpus(corpus, domain_map, settings)
    started = time.perf_counter()
    with _progress_bar() as bar:
        task = bar.add_task("training", total=1.0)

        def report(name: str, message: str, fraction: float) -> None:
            bar.update(task, completed=fraction, description=f"{name}: {message}")

        models = train_models(
            frame, out, settings=overrides, domains=domain or None, progress=report
        )
    elapsed = time.perf_counter() - started
    table = Table(title=f"NLU models in {out}")
    for column in ("domain", "profile", "utterances", "intents", "slot types", "seconds"):
        table.add_column(column, justify="left" if column in ("domain", "profile") else "right")
    for name in models.domain_names:
        model = models.domains[name]
        table.add_row(
            escape(name),
            model.settings.profile,
            str(model.summary.get("n_utterances", "")),
            str(len(model.intents)),
            str(len(model.slot_tagger.slot_types)),
            f"{models.training_seconds.get(name, 0.0):.1f}",
        )
    print_table(err_console, table)
    err_console.print(
        f"trained {len(models.domain_names)} domains on {len(frame):,} utterances in {elapsed:.1f}s",
        highlight=False,
    )


@nlu_app.command("predict")
def nlu_predict(
    models: Annotated[Path, typer.Option("--models", "-m", help="Model directory (nlu train).")],
    corpus: Annotated[
        Path, typer.Option("--corpus", "-c", help="Corpus to predict (.jsonl or .csv).")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Hypothesis table; format by extension.")
    ],
    nbest: Annotated[
        int, typer.Option("--nbest", "-k", min=1, help="Hypotheses per utterance, at most.")
    ] = 6,
    domains: DomainsOption = 3,
    intents: IntentsOption = 2,
    device: DeviceOption = None,
    domain_map: Annotated[
        Path | None,
        typer.Option("--domain-map", help="Domain map applied to the corpus references."),
    ] = None,
) -> None:
    """Write the n-best hypotheses of every corpus utterance, with references.

    The output is a hypothesis table (docs/formats.md#hypothesis-table).

    The corpus may also hold only ``id`` and ``text`` (and ``device``) per line: the
    hypotheses then have no reference columns.
    """
    from reranker.hypotheses import validate_hypotheses, write_table
    from reranker.nlu import load_models, predict_corpus, read_corpus, read_domain_map

    check_output_path(out, inputs=[corpus, domain_map])
    mapping = read_domain_map(domain_map) if domain_map is not None else None
    with status("loading models"):
        loaded = load_models(models)
    with status("reading the corpus"):
        frame = read_corpus(corpus, domain_map=mapping, require_labels=False)
    with status(f"predicting {len(frame):,} utterances"):
        hyps = predict_corpus(
            loaded, frame, device=device, nbest=nbest, domains=domains, intents=intents
        )
    validate_hypotheses(hyps, source=str(out))
    write_table(hyps, out)
    err_console.print(
        f"wrote {len(hyps):,} hypotheses of {len(frame):,} utterances to {out}", highlight=False
    )


@nlu_app.command("cross-fit")
def nlu_cross_fit(
    corpus: Annotated[
        list[Path],
        typer.Option(
            "--corpus", "-c", help="Annotated training corpus (.jsonl or .csv); repeatable."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Hypothesis table; format by extension.")
    ],
    folds: Annotated[int, typer.Option("--folds", min=2, help="Folds (NLU trainings).")] = 5,
    nbest: Annotated[int, typer.Option("--nbest", min=1, help="Hypotheses per utterance.")] = 6,
    domains: DomainsOption = 3,
    intents: IntentsOption = 2,
    domain_map: DomainMapOption = None,
    settings: SettingsOption = None,
    device: DeviceOption = None,
    jobs: JobsOption = 1,
) -> None:
    """Hypotheses of a training corpus from NLU models that did not train on them.

    The corpus is cut into K folds by a hash of the utterance id.

    The NLU is trained K times on K - 1 folds and predicts the n-best of the fold it did not see.

    The result is a hypothesis table with references, to train re-rankers on.
    """
    from reranker.errors import DataError
    from reranker.hypotheses import validate_hypotheses, write_table
    from reranker.nlu.cross_fit import cross_fitted_hypotheses

    check_output_path(out, inputs=[*corpus, domain_map, settings])
    frame, overrides = _read_training_corpus(corpus, domain_map, settings)
    started = time.perf_counter()
    try:
        hyps = cross_fitted_hypotheses(
            frame,
            folds=folds,
            settings=overrides,
            jobs=jobs,
            device=device,
            nbest=nbest,
            domains=domains,
            intents=intents,
            progress=lambda message: err_console.print(message, highlight=False),
        )
    except DataError as error:
        raise DataError(f"{', '.join(str(c) for c in corpus)}: {error}") from error
    validate_hypotheses(hyps, source=str(out))
    write_table(hyps, out)
    err_console.print(
        f"wrote {len(hyps):,} cross-fitted hypotheses of {len(frame):,} utterances to {out} "
        f"({folds} folds, {time.perf_counter() - started:.1f}s)",
        highlight=False,
    )


@app.command("demo")
def demo_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to build the demo data in.")],
    dataset: Annotated[
        list[str] | None,
        typer.Option("--dataset", help="Build only this dataset (media or real); repeatable."),
    ] = None,
    small: Annotated[
        bool, typer.Option("--small", help="A small, fast configuration (for tests and previews).")
    ] = False,
    sources: Annotated[
        Path | None,
        typer.Option(
            "--sources",
            help="Folder with hwu64.jsonl, slurp_devel.jsonl, snips.jsonl "
            "(default: the corpora installed with reranker).",
        ),
    ] = None,
    no_weights: Annotated[
        bool, typer.Option("--no-weights", help="Skip training the re-ranker weights.")
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the simulation.")] = 0,
    scope: Annotated[
        str, typer.Option("--scope", help="Softmax scope of R1/R3: utterance or domain.")
    ] = "utterance",
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            min=1,
            help="Worker processes for NLU and re-ranker training (default: all cores; the data "
            "built do not depend on it).",
        ),
    ] = None,
) -> None:
    """Build the media demo (simulated devices) and the real-corpus demo: corpus, NLU models,
    hypotheses and re-ranker weights, deterministically."""
    from reranker.demo import DATASETS, build_demo

    chosen = list(dict.fromkeys(dataset or DATASETS))
    unknown = [d for d in chosen if d not in DATASETS]
    if unknown:
        raise typer.BadParameter(
            f"unknown dataset {unknown[0]!r}; choose from {', '.join(DATASETS)}",
            param_hint="--dataset",
        )

    def report(message: str) -> None:
        err_console.print(message, highlight=False)

    refuse_input_as_output(out, [sources])
    started = time.perf_counter()
    build_demo(
        out,
        datasets=chosen,
        small=small,
        sources=sources,
        weights=not no_weights,
        seed=seed,
        scope=scope,
        jobs=jobs,
        progress=report,
    )
    err_console.print(f"demo data in {out} ({time.perf_counter() - started:.1f}s)", highlight=False)


@app.command("probe")
def probe_cmd(
    text: Annotated[str, typer.Argument(help="The utterance, e.g. 'play mary poppins'.")],
    models: Annotated[Path, typer.Option("--models", "-m", help="NLU model directory.")],
    weights: Annotated[
        str, typer.Option("--weights", "-w", help="A weights registry directory, or 'r0'.")
    ],
    device: Annotated[
        list[str], typer.Option("--device", help="Device to rank for; repeatable (side by side).")
    ],
    nbest: Annotated[
        int | None, typer.Option("--nbest", "-k", min=1, help="Hypotheses to show.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object: device -> ranked hypotheses.")
    ] = False,
) -> None:
    """Run the NLU live on TEXT and rank its hypotheses for each device, side by side."""
    from reranker.nlu import load_models
    from reranker.probe import probe_text

    loaded = load_models(models)
    ranked = probe_text(loaded, text, device, weights, nbest=nbest)
    if as_json:
        doc = {
            d: [
                {
                    "domain": str(r["domain"]),
                    "intent": str(r["intent"]),
                    "slots": str(r["slots"]),
                    "score": float(r["score"]),
                }
                for r in frame.to_dict(orient="records")
            ]
            for d, frame in ranked.items()
        }
        print(json.dumps(doc, indent=1, ensure_ascii=False))
        return
    grid = Table(title=escape(f"{text!r}: ranked hypotheses per device"), show_lines=True)
    grid.add_column("rank", justify="right")
    for d in ranked:
        grid.add_column(d)
    depth = max((len(f) for f in ranked.values()), default=0)
    for k in range(depth):
        cells = []
        for frame in ranked.values():
            if k < len(frame):
                row = frame.iloc[k]
                cells.append(
                    escape(
                        f"{row['domain']} / {row['intent']}\n{row['slots']}\nscore {row['score']:.3f}"
                    )
                )
            else:
                cells.append("")
        grid.add_row(str(k + 1), *cells)
    print_table(out_console, grid)


@nlu_app.command("import")
def nlu_import(
    files: Annotated[list[Path], typer.Argument(help="Upstream corpus files.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="slurp, hwu64 or snips.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Annotated corpus to write (.jsonl).")],
    domain_map: DomainMapOption = None,
) -> None:
    """Convert upstream SLURP, HWU64 or SNIPS files to an annotated corpus (docs/formats.md)."""
    from reranker.errors import DataError
    from reranker.nlu import read_domain_map, write_corpus
    from reranker.nlu.importers import import_corpus

    if out.suffix.lower() != ".jsonl":
        raise DataError(f"{out}: the annotated corpus is written as .jsonl")
    check_output_target(out, inputs=[*files, domain_map])
    mapping = read_domain_map(domain_map) if domain_map is not None else None
    with status("importing"):
        frame = import_corpus(fmt, files, domain_map=mapping)
    write_corpus(frame, out)
    err_console.print(
        f"wrote {len(frame):,} utterances ({frame['domain'].nunique()} domains, "
        f"{frame['intent'].nunique()} intents) to {out}",
        highlight=False,
    )
