"""The demo datasets: a simulated media assistant and a real-corpus NLU, end to end.

``reranker demo --out DIR`` builds, deterministically, for each dataset::

    DIR/<dataset>/dataset.json                 name, description, sizes, how it was made
    DIR/<dataset>/corpus/{train,dev,test}.jsonl annotated corpora, with devices
    DIR/<dataset>/models/                       per-domain NLU models trained on ``train``
    DIR/<dataset>/hypotheses/{train,dev,test}.parquet   n-best hypotheses with references
    DIR/<dataset>/weights/{r1,r2,r3}/           re-rankers trained on the ``dev`` hypotheses

plus ``DIR/sample/hypotheses.csv`` (the first utterances of the real test split) and
``DIR/ATTRIBUTION.md`` (the corpora the data are derived from, their authors and licences). The
source corpora ship inside the package (``reranker/data/corpora``, see :func:`default_sources`).

**media** (`Media demo`): a generated corpus for Music, Video, Books, Weather, Shopping and
General, built from templates and real titles (book, film, song and album titles, artists,
playlists and cities taken from the slot values of the SNIPS corpus, CC0), plus titles that
belong to several catalogues ("mary poppins", "moana", "thriller", "the lion king", "harry
potter", ...). Every utterance has a **simulated** device (``echo_dot``: voice only,
``echo_show``: screen, ``fire_tv``: TV). The simulation draws the device first, then the domain
from a device-dependent prior (:data:`DOMAIN_PRIOR`: Video dominates on ``fire_tv`` and is rare
on ``echo_dot``, where Music and Books dominate), then an intent, a template and slot values. So
"play mary poppins" is mostly Video on ``fire_tv`` and mostly Music or Books on ``echo_dot``. The
NLU sees only the text; only the re-ranker's device features can learn the device preference.

**real** (`Real corpora demo`): NLU models trained on HWU64 (CC BY 4.0), hypotheses on SLURP's
devel split (CC BY 4.0) cut in two halves, ``dev`` and ``test``; corpus domains mapped to product
domains (SLURP's ``play`` split into Music, Books, Podcasts, Radio and Games by intent). Real
corpora have no device; each utterance gets a **simulated** device drawn uniformly at random,
independent of its content, so the device features carry no information there.

Everything is seeded; two builds write byte-identical corpora and hypothesis files.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reranker._validation import check_choice
from reranker.annotation import parse_slots, strip_annotation
from reranker.errors import DataError, TrainingError
from reranker.hypotheses import validate_hypotheses, write_table
from reranker.nlu.corpus import read_corpus, read_domain_map, validate_corpus, write_corpus
from reranker.nlu.models import predict_corpus, train_models
from reranker.options import LOSSES, SCOPES

__all__ = [
    "AMBIGUOUS_TITLES",
    "DATASETS",
    "DEVICES",
    "DOMAIN_PRIOR",
    "MEDIA_SETTINGS",
    "build_demo",
    "default_domain_map",
    "default_sources",
    "generate_media_corpus",
    "media_catalogues",
    "real_corpus_splits",
]

DATASETS: tuple[str, ...] = ("media", "real")
DEVICES: tuple[str, ...] = ("echo_dot", "echo_show", "fire_tv")

DEVICE_SHARE: dict[str, float] = {"echo_dot": 0.45, "echo_show": 0.25, "fire_tv": 0.30}
"""Simulated share of utterances per device (media demo)."""

DOMAIN_PRIOR: dict[str, dict[str, float]] = {
    "echo_dot": {"Music": 0.36, "Video": 0.03, "Books": 0.22, "Weather": 0.15, "Shopping": 0.12, "General": 0.12},
    "echo_show": {"Music": 0.24, "Video": 0.22, "Books": 0.14, "Weather": 0.14, "Shopping": 0.14, "General": 0.12},
    "fire_tv": {"Music": 0.12, "Video": 0.62, "Books": 0.03, "Weather": 0.07, "Shopping": 0.06, "General": 0.10},
}  # fmt: skip
"""Simulated P(domain | device) of the media demo: what people ask each device for."""

MEDIA_SETTINGS: dict[str, dict[str, Any]] = {
    "Music": {"profile": "standard"},
    "Video": {"profile": "confident"},
    "Books": {"profile": "cautious"},
    "Weather": {"profile": "subword"},
    "Shopping": {"profile": "cautious", "negative_fraction": 0.5},
    "General": {"profile": "confident", "domain_class_weight": "none"},
}
"""Each media domain's team settings (see :mod:`reranker.nlu.settings`)."""

AMBIGUOUS_TITLES: dict[str, tuple[str, ...]] = {
    "mary poppins": ("Video", "Books", "Music"),
    "moana": ("Video", "Music"),
    "thriller": ("Music", "Video"),
    "the lion king": ("Video", "Music", "Books"),
    "harry potter": ("Books", "Video"),
    "frozen": ("Video", "Music"),
    "the hobbit": ("Books", "Video"),
    "jurassic park": ("Books", "Video"),
    "little women": ("Books", "Video"),
    "the wizard of oz": ("Video", "Books", "Music"),
    "dune": ("Books", "Video"),
    "the jungle book": ("Books", "Video", "Music"),
    "matilda": ("Books", "Video", "Music"),
    "the great gatsby": ("Books", "Video"),
    "pride and prejudice": ("Books", "Video"),
    "purple rain": ("Music", "Video"),
    "les miserables": ("Books", "Video", "Music"),
    "grease": ("Video", "Music"),
    "the bodyguard": ("Video", "Music"),
    "charlie and the chocolate factory": ("Books", "Video"),
}
"""Titles in several catalogues (film, book, album or soundtrack) and the domains they belong to."""

_ITEMS = (
    "paper towels", "batteries", "coffee beans", "dog food", "cat litter", "dish soap", "a phone charger",
    "headphones", "toothpaste", "olive oil", "running shoes", "a yoga mat", "printer ink", "light bulbs",
    "laundry detergent", "trash bags", "a water bottle", "sunscreen", "a desk lamp", "an hdmi cable",
    "baby wipes", "green tea", "a backpack", "kitchen towels", "a usb stick", "vitamins", "shampoo",
    "a frying pan", "an umbrella", "socks",
)  # fmt: skip
_DATES = (
    "today", "tomorrow", "tonight", "this weekend", "on monday", "on friday", "next week",
    "this afternoon", "tomorrow morning", "on saturday",
)  # fmt: skip
_RATINGS = ("one", "two", "three", "four", "five", "1", "2", "3", "4", "5")

# (intent, template, weight); {slot_type} placeholders, "{title:...}" = a title slot.
_TEMPLATES: dict[str, list[tuple[str, str, float]]] = {
    "Music": [
        ("Music.PlayMusic", "play {song_name}", 3),
        ("Music.PlayMusic", "play the song {song_name}", 2),
        ("Music.PlayMusic", "play {song_name} by {artist_name}", 2),
        ("Music.PlayMusic", "play some {artist_name}", 2),
        ("Music.PlayMusic", "play music by {artist_name}", 1),
        ("Music.PlayMusic", "put on {album_name}", 2),
        ("Music.PlayMusic", "play the album {album_name}", 2),
        ("Music.PlayMusic", "play {album_name}", 3),
        ("Music.PlayMusic", "i want to hear {song_name}", 1),
        ("Music.PlayMusic", "play the soundtrack of {album_name}", 1),
        ("Music.AddToPlaylist", "add {song_name} to my {playlist} playlist", 2),
        ("Music.AddToPlaylist", "put {song_name} on {playlist}", 1),
        ("Music.AddToPlaylist", "add this song to {playlist}", 1),
        ("Music.PauseMusic", "pause the music", 1),
        ("Music.PauseMusic", "stop the music", 1),
        ("Music.PauseMusic", "pause the song", 1),
    ],
    "Video": [
        ("Video.PlayVideo", "play {video_name}", 4),
        ("Video.PlayVideo", "watch {video_name}", 2),
        ("Video.PlayVideo", "play the movie {video_name}", 2),
        ("Video.PlayVideo", "put on {video_name}", 2),
        ("Video.PlayVideo", "i want to watch {video_name}", 1),
        ("Video.PlayVideo", "play the film {video_name}", 1),
        ("Video.PlayVideo", "stream {video_name}", 1),
        ("Video.SearchVideo", "show me the trailer of {video_name}", 1),
        ("Video.SearchVideo", "find movies like {video_name}", 1),
        ("Video.SearchVideo", "search for {video_name}", 1),
    ],
    "Books": [
        ("Books.ReadBook", "read {book_name}", 3),
        ("Books.ReadBook", "read me {book_name}", 2),
        ("Books.ReadBook", "play the audiobook {book_name}", 2),
        ("Books.ReadBook", "play {book_name}", 3),
        ("Books.ReadBook", "continue {book_name}", 1),
        ("Books.ReadBook", "resume my book {book_name}", 1),
        ("Books.RateBook", "rate {book_name} {rating_value} stars", 2),
        ("Books.RateBook", "give {book_name} {rating_value} out of five", 1),
        ("Books.RateBook", "rate this book {rating_value} stars", 1),
    ],
    "Weather": [
        ("Weather.GetWeather", "what's the weather in {city}", 3),
        ("Weather.GetWeather", "what is the weather {date}", 2),
        ("Weather.GetWeather", "will it rain in {city} {date}", 2),
        ("Weather.GetWeather", "weather forecast for {city}", 2),
        ("Weather.GetWeather", "is it going to be cold {date}", 1),
        ("Weather.GetWeather", "how hot is it in {city}", 1),
        ("Weather.GetWeather", "do i need an umbrella {date}", 1),
    ],
    "Shopping": [
        ("Shopping.BuyItem", "buy {item_name}", 3),
        ("Shopping.BuyItem", "order {item_name}", 2),
        ("Shopping.BuyItem", "i want to buy {item_name}", 1),
        ("Shopping.BuyItem", "reorder {item_name}", 1),
        ("Shopping.AddToCart", "add {item_name} to my cart", 2),
        ("Shopping.AddToCart", "put {item_name} in my basket", 1),
        ("Shopping.AddToCart", "add {item_name} to my shopping list", 1),
    ],
    "General": [
        ("General.Greet", "hello", 1),
        ("General.Greet", "hi there", 1),
        ("General.Greet", "good morning", 1),
        ("General.Joke", "tell me a joke", 2),
        ("General.Joke", "say something funny", 1),
        ("General.Thanks", "thank you", 1),
        ("General.Thanks", "thanks a lot", 1),
    ],
}

_TITLE_SLOTS: dict[str, str] = {
    "song_name": "Music",
    "album_name": "Music",
    "video_name": "Video",
    "book_name": "Books",
}
_AMBIGUOUS_SHARE = 0.35
"""Share of title slots filled with a multi-catalogue title (when the domain has some)."""
_BOOK_PURCHASE_SHARE = 0.25
"""Share of Shopping items that are book titles ("buy harry potter")."""

Progress = Callable[[str], None]


def _package_data() -> Path:
    root = resources.files("reranker") / "data"
    if not isinstance(root, Path) or not root.is_dir():
        raise DataError(f"{root}: the package's data files are not on the file system")
    return root


def default_sources() -> Path:
    """The real corpora installed with the package (``reranker/data/corpora``).

    ``hwu64.jsonl``, ``slurp_devel.jsonl`` and ``snips.jsonl``, with ``ATTRIBUTION.md`` and the
    text of their licences.
    """
    return _package_data() / "corpora"


def default_domain_map() -> Path:
    """The HWU64/SLURP scenario to product domain map installed with the package."""
    return _package_data() / "domain_maps" / "slurp_to_product.json"


def _check_sources(sources: Path, names: Sequence[str]) -> None:
    for name in names:
        if not (sources / name).is_file():
            raise DataError(f"{sources}: missing {name} (pass --sources with the real corpora)")


def _clean_title(value: str) -> str | None:
    value = " ".join(value.lower().replace("’", "'").split())
    words = value.split()
    if not 1 <= len(words) <= 6 or len(value) < 3:
        return None
    if not all(ch.isalnum() or ch in " '&-" for ch in value) or not value.isascii():
        return None
    return value


def media_catalogues(snips: pd.DataFrame) -> dict[str, list[str]]:
    """Titles and names per slot type, from the SNIPS corpus's slot values (sorted, unique).

    Keys: ``song_name`` (PlayMusic tracks, creative works of type song), ``album_name``
    (PlayMusic albums, albums and soundtracks), ``video_name`` (movie names, films, TV shows),
    ``book_name`` (RateBook and creative works of type book, novel, saga), ``artist_name``,
    ``playlist``, ``city``. Multi-catalogue titles of :data:`AMBIGUOUS_TITLES` are excluded (they
    are added on purpose by the generator).
    """
    buckets: dict[str, set[str]] = {
        k: set()
        for k in (
            "song_name",
            "album_name",
            "video_name",
            "book_name",
            "artist_name",
            "playlist",
            "city",
        )
    }
    creative = {
        "song": "song_name", "album": "album_name", "soundtrack": "album_name", "movie": "video_name",
        "film": "video_name", "picture": "video_name", "tv show": "video_name", "tv series": "video_name",
        "television show": "video_name", "show": "video_name", "book": "book_name", "novel": "book_name",
        "saga": "book_name",
    }  # fmt: skip
    for intent, annotation in zip(snips["intent"], snips["annotation"], strict=True):
        slots = parse_slots(annotation)
        types = {t: v for t, v in slots}
        targets: list[tuple[str, str]] = []
        if intent == "PlayMusic":
            targets += [("song_name", v) for t, v in slots if t == "track"]
            targets += [("album_name", v) for t, v in slots if t == "album"]
            targets += [("artist_name", v) for t, v in slots if t == "artist"]
        elif intent == "AddToPlaylist":
            targets += [("playlist", v) for t, v in slots if t == "playlist"]
            targets += [("artist_name", v) for t, v in slots if t == "artist"]
        elif intent == "SearchScreeningEvent":
            targets += [("video_name", v) for t, v in slots if t == "movie_name"]
        elif intent == "RateBook":
            kind = types.get("object_type", "book").lower()
            if kind in ("book", "novel", "textbook", "saga"):
                targets += [("book_name", v) for t, v in slots if t == "object_name"]
        elif intent == "SearchCreativeWork":
            kind = types.get("object_type", "").lower()
            if kind in creative:
                targets += [(creative[kind], v) for t, v in slots if t == "object_name"]
        elif intent == "GetWeather":
            targets += [("city", v) for t, v in slots if t == "city"]
        for bucket, value in targets:
            clean = _clean_title(value)
            if clean is not None and clean not in AMBIGUOUS_TITLES:
                buckets[bucket].add(clean)
    # A title in several SNIPS catalogues is ambiguous by nature; keep it in each.
    return {k: sorted(v) for k, v in buckets.items()}


@dataclass(frozen=True)
class _Choice:
    values: tuple[str, ...]
    weights: np.ndarray

    def draw(self, rng: np.random.Generator) -> str:
        return self.values[int(rng.choice(len(self.values), p=self.weights))]


def _choice(pairs: Sequence[tuple[str, float]]) -> _Choice:
    w = np.array([p for _, p in pairs], dtype=np.float64)
    return _Choice(tuple(v for v, _ in pairs), w / w.sum())


def generate_media_corpus(
    snips: pd.DataFrame, n_utterances: int, *, seed: int = 0, prefix: str = "media"
) -> pd.DataFrame:
    """Generate the simulated media corpus (with devices), deterministically from ``seed``.

    Each utterance: device ~ :data:`DEVICE_SHARE`; domain ~ :data:`DOMAIN_PRIOR` [device];
    (intent, template) ~ the domain's weighted templates; each title slot is, with probability
    0.35, a multi-catalogue title of the domain (:data:`AMBIGUOUS_TITLES`), else a SNIPS title of
    its catalogue; Shopping items are book titles 25% of the time.

    Parameters
    ----------
    snips : pandas.DataFrame
        The SNIPS corpus (``intent``, ``annotation``), the source of real titles.
    n_utterances : int
    seed : int
    prefix : str
        Prefix of the utterance ids (``<prefix>-000001``, ...).

    Returns
    -------
    pandas.DataFrame
        A validated corpus frame (id, text, domain, intent, annotation, device).
    """
    if n_utterances < 1:
        raise DataError(f"n_utterances must be >= 1, got {n_utterances}")
    catalogues = media_catalogues(snips)
    empty = [k for k, v in catalogues.items() if not v]
    if empty:
        raise DataError(f"the SNIPS corpus yields no {empty[0]} values for the media demo")
    ambiguous = {
        d: sorted(t for t, doms in AMBIGUOUS_TITLES.items() if d in doms)
        for d in ("Music", "Video", "Books")
    }
    rng = np.random.default_rng(seed)
    devices = _choice(list(DEVICE_SHARE.items()))
    priors = {dev: _choice(list(p.items())) for dev, p in DOMAIN_PRIOR.items()}
    templates = {
        d: _choice([(f"{i}\x1f{t}", w) for i, t, w in rows]) for d, rows in _TEMPLATES.items()
    }
    fillers: dict[str, Sequence[str]] = {
        **catalogues,
        "item_name": _ITEMS,
        "date": _DATES,
        "rating_value": _RATINGS,
    }
    records: list[dict[str, object]] = []
    for k in range(n_utterances):
        device = devices.draw(rng)
        domain = priors[device].draw(rng)
        intent, template = templates[domain].draw(rng).split("\x1f")
        pieces: list[str] = []
        pool: Sequence[str]
        rest = template
        while "{" in rest:
            before, _, tail = rest.partition("{")
            slot_type, _, rest = tail.partition("}")
            pieces.append(before)
            if (
                slot_type in _TITLE_SLOTS
                and ambiguous[_TITLE_SLOTS[slot_type]]
                and rng.random() < _AMBIGUOUS_SHARE
            ):
                pool = ambiguous[_TITLE_SLOTS[slot_type]]
                if slot_type == "song_name":  # a multi-catalogue music title is an album/soundtrack
                    slot_type = "album_name"
                    pieces[-1] = before.replace("the song ", "the album ")
            elif slot_type == "item_name" and rng.random() < _BOOK_PURCHASE_SHARE:
                pool = sorted(AMBIGUOUS_TITLES) + catalogues["book_name"][:200]
            else:
                pool = fillers[slot_type]
            value = str(pool[int(rng.integers(len(pool)))])
            pieces.append(f"[{slot_type} : {value}]")
        pieces.append(rest)
        annotation = " ".join("".join(pieces).split())
        text = strip_annotation(annotation)
        records.append(
            {
                "id": f"{prefix}-{k + 1:06d}",
                "text": text,
                "domain": domain,
                "intent": intent,
                "annotation": annotation,
                "device": device,
            }
        )
    return validate_corpus(records, source=f"<{prefix} corpus>")


def _simulated_devices(n: int, rng: np.random.Generator) -> list[str]:
    return [DEVICES[int(i)] for i in rng.integers(0, len(DEVICES), n)]


def _sample_info(real: Path, n_utterances: int) -> dict[str, Any]:
    """``sample/dataset.json``: what the sample is, with the real-corpus demo's device facts."""
    real_info = json.loads((real / "dataset.json").read_text(encoding="utf-8"))
    return {
        "name": "Sample",
        "description": (
            f"The first {n_utterances} utterances of the real-corpus demo's test split (NLU "
            "trained on HWU64, hypotheses on SLURP devel), as one small CSV file: a quick look at "
            "the table format and an example to upload. It has no weights or NLU models of its "
            "own. Devices are simulated: drawn uniformly at random, independent of the "
            "utterance, so they carry no information."
        ),
        "devices": real_info.get("devices"),
        "device_simulation": real_info.get("device_simulation"),
        "source": "real/hypotheses/test.parquet",
        "attribution": real_info.get("attribution"),
    }


def _write_json(path: Path, doc: object) -> None:
    path.write_text(
        json.dumps(doc, indent=1, sort_keys=False, ensure_ascii=False) + "\n", encoding="utf-8"
    )


_ATTRIBUTION = [
    "HWU64: X. Liu, A. Eshghi, P. Swietojanski, V. Rieser, \"Benchmarking Natural Language Understanding Services for building Conversational Agents\", IWSDS 2019. CC BY 4.0.",
    "SLURP: E. Bastianelli, A. Vanzo, P. Swietojanski, V. Rieser, \"SLURP: A Spoken Language Understanding Resource Package\", EMNLP 2020. Text released under CC BY 4.0.",
    "SNIPS: A. Coucke et al., \"Snips Voice Platform: an embedded Spoken Language Understanding system for private-by-design voice interfaces\", 2018. CC0 1.0.",
]  # fmt: skip


_LICENCES = {
    "CC BY 4.0": "https://creativecommons.org/licenses/by/4.0/",
    "CC0 1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
}


def _write_attribution(path: Path) -> None:
    """``ATTRIBUTION.md`` of a demo folder: what its data are derived from, under which licence."""
    lines = [
        "# Attribution",
        "",
        "The demo datasets in this folder are derived from these annotated corpora (the `real/`",
        "and `sample/` data from HWU64 and SLURP, `media/` from SNIPS titles):",
        "",
        *(f"- {entry}" for entry in _ATTRIBUTION),
        "",
        "Licences: " + "; ".join(f"{name}, {url}" for name, url in _LICENCES.items()) + ".",
        "Changes: product domains mapped from the corpora's scenarios, NLU hypotheses, and",
        "**simulated** devices (no corpus records a device). The corpora themselves ship with the",
        "`reranker` package (`reranker/data/corpora/`, with their attribution and licence texts).",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class _Splits:
    train: pd.DataFrame
    dev: pd.DataFrame
    test: pd.DataFrame
    info: dict[str, Any]
    settings: Mapping[str, Mapping[str, Any]] | None


def _media_splits(sources: Path, *, small: bool, seed: int) -> _Splits:
    _check_sources(sources, ["snips.jsonl"])
    snips = read_corpus(sources / "snips.jsonl")
    sizes = (600, 300, 300) if small else (6000, 2000, 2000)
    splits = [
        generate_media_corpus(snips, n, seed=seed * 1000 + k, prefix=f"media-{name}")
        for k, (name, n) in enumerate(zip(("train", "dev", "test"), sizes, strict=True))
    ]
    info = {
        "name": "Media demo",
        "description": (
            "A simulated media assistant: Music, Video, Books, Weather, Shopping and General, "
            "generated from templates and real titles (SNIPS slot values, CC0) plus titles in "
            "several catalogues ('mary poppins', 'moana', 'thriller', ...). Devices are "
            "simulated: the true domain of an ambiguous request depends on the device (Video "
            "mostly on fire_tv, Music and Books mostly on echo_dot)."
        ),
        "devices": "simulated",
        "device_simulation": {
            "device_share": DEVICE_SHARE,
            "domain_prior_given_device": DOMAIN_PRIOR,
        },
        "sources": ["SNIPS (CC0 1.0): titles, artists, playlists and cities"],
        "attribution": [_ATTRIBUTION[2]],
    }
    return _Splits(splits[0], splits[1], splits[2], info, MEDIA_SETTINGS)


def _real_splits(sources: Path, *, small: bool, seed: int) -> _Splits:
    _check_sources(sources, ["hwu64.jsonl", "slurp_devel.jsonl"])
    map_path = sources.parent / "domain_maps" / "slurp_to_product.json"
    domain_map = read_domain_map(map_path if map_path.is_file() else default_domain_map())
    train = read_corpus(sources / "hwu64.jsonl", domain_map=domain_map)
    held = read_corpus(sources / "slurp_devel.jsonl", domain_map=domain_map)
    if small:
        keep = ["Alarm", "Books", "Music", "Weather", "General"]
        train = train[train["domain"].isin(keep)]
        train = train.groupby("domain", sort=True).head(120).reset_index(drop=True)
        held = held[held["domain"].isin(keep)].head(240).reset_index(drop=True)
    rng = np.random.default_rng(seed)
    train = train.assign(device=_simulated_devices(len(train), rng))
    held = held.assign(device=_simulated_devices(len(held), rng))
    order = rng.permutation(len(held))
    half = len(held) // 2
    dev = held.iloc[np.sort(order[:half])].reset_index(drop=True)
    test = held.iloc[np.sort(order[half:])].reset_index(drop=True)
    info = {
        "name": "Real corpora demo",
        "description": (
            "NLU models trained on HWU64; hypotheses on SLURP's devel split, cut at random into "
            "dev (re-ranker training) and test (evaluation) halves. Corpus scenarios are mapped "
            "to product domains (SLURP's 'play' split into Music, Books, Podcasts, Radio and "
            "Games by intent). Devices are simulated: drawn uniformly at random, independent "
            "of the utterance, so they carry no information."
        ),
        "devices": "simulated",
        "device_simulation": {
            "device_share": {d: 1 / len(DEVICES) for d in DEVICES},
            "independent_of_content": True,
        },
        "domain_map": domain_map.description,
        "sources": ["HWU64 (CC BY 4.0): training corpus", "SLURP devel (CC BY 4.0): dev and test"],
        "attribution": _ATTRIBUTION[:2],
    }
    return _Splits(train, dev, test, info, None)


def _build_dataset(
    name: str,
    target: Path,
    sources: Path,
    *,
    small: bool,
    seed: int,
    weights: bool,
    jobs: int | None,
    scope: str,
    report: Progress,
) -> dict[str, Any]:
    import time

    splits = (_media_splits if name == "media" else _real_splits)(sources, small=small, seed=seed)
    corpus_dir = target / "corpus"
    corpus_dir.mkdir(parents=True)
    frames = {"train": splits.train, "dev": splits.dev, "test": splits.test}
    for split, frame in frames.items():
        write_corpus(frame, corpus_dir / f"{split}.jsonl")
    report(
        f"{name}: corpus train/dev/test = {len(splits.train)}/{len(splits.dev)}/{len(splits.test)} utterances"
    )
    started = time.perf_counter()
    train_corpus = read_corpus(corpus_dir / "train.jsonl")
    models = train_models(
        train_corpus,
        target / "models",
        settings=splits.settings,
        progress=lambda d, m, f: report(f"{name}: NLU {d}: {m}") if m != "training" else None,
    )
    nlu_seconds = time.perf_counter() - started
    report(f"{name}: NLU models trained in {nlu_seconds:.1f}s")
    hyp_dir = target / "hypotheses"
    hyp_dir.mkdir()
    counts: dict[str, dict[str, int]] = {}
    for split in frames:
        corpus = read_corpus(corpus_dir / f"{split}.jsonl")
        hyps = validate_hypotheses(predict_corpus(models, corpus), source=f"{name}/{split}")
        write_table(hyps, hyp_dir / f"{split}.parquet")
        counts[split] = {"utterances": len(corpus), "hypotheses": len(hyps)}
    report(f"{name}: hypotheses written")
    trained: dict[str, Any] = {}
    if weights:
        from reranker.training import train_domains

        dev = validate_hypotheses(pd.read_parquet(hyp_dir / "dev.parquet"), source=f"{name}/dev")
        for loss in LOSSES:
            results = train_domains(
                dev,
                loss=loss,
                out=target / "weights" / loss,
                engine="serial" if jobs == 1 else "local",
                jobs=jobs,
                scope=scope,
            )
            failed = {d: r.error for d, r in results.items() if not r.ok}
            if failed:
                domain, error = next(iter(failed.items()))
                raise TrainingError(f"{name}: {loss} weights of domain {domain!r} failed: {error}")
            trained[loss] = {d: {"converged": r.converged} for d, r in results.items()}
            report(f"{name}: {loss} weights trained for {len(results)} domains")
    info = dict(splits.info)
    info.update(
        {
            "seed": seed,
            "small": small,
            "splits": counts,
            "domains": models.domain_names,
            "nlu": {
                "models": "models/",
                "nbest": {"nbest": 6, "domains": 3, "intents": 2},
                "settings": {d: models.domains[d].settings.profile for d in models.domain_names},
            },
            "weights": {loss: f"weights/{loss}" for loss in trained} if weights else {},
            "weights_trained_on": "dev" if weights else None,
            "weights_options": {"scope": scope} if weights else {},
            "evaluate_on": "test",
        }
    )
    _write_json(target / "dataset.json", info)
    return {"nlu_seconds": nlu_seconds, "splits": counts}


def build_demo(
    out: str | os.PathLike[str],
    *,
    datasets: Sequence[str] = DATASETS,
    small: bool = False,
    sources: str | os.PathLike[str] | None = None,
    weights: bool = True,
    seed: int = 0,
    jobs: int | None = 1,
    scope: str = "utterance",
    sample_utterances: int = 100,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Build the demo datasets under ``out`` (see the module docstring for the layout).

    Each dataset is built in a temporary directory next to ``out/<dataset>`` and moved into place
    when complete, replacing a previous build (other files under ``out`` are left alone).

    Parameters
    ----------
    out : path-like
    datasets : sequence of {"media", "real"}
    small : bool
        A small, fast configuration (a few hundred utterances, fewer domains) for tests.
    sources : path-like, optional
        Folder with ``hwu64.jsonl``, ``slurp_devel.jsonl`` and ``snips.jsonl`` (default: the
        corpora installed with the package, :func:`default_sources`). A
        ``domain_maps/slurp_to_product.json`` beside that folder replaces the packaged domain map.
    weights : bool
        Train the R1, R2, R3 re-rankers on the dev hypotheses (:func:`reranker.training.train_domains`).
    seed : int
    jobs : int, optional
        Worker processes for re-ranker training (1: in this process).
    scope : {"utterance", "domain"}
        Softmax scope of the R1 and R3 losses (see :func:`reranker.training.train_domains`).
    sample_utterances : int
        Utterances of the real test split copied to ``out/sample/hypotheses.csv``.
    progress : callable, optional
        Called with a one-line message as the build advances.

    Returns
    -------
    dict
        Per dataset: NLU training seconds and split sizes.
    """
    report: Progress = progress or (lambda message: None)
    unknown = [d for d in datasets if d not in DATASETS]
    if unknown:
        raise DataError(f"unknown demo dataset {unknown[0]!r}; choose from {', '.join(DATASETS)}")
    check_choice("scope", scope, SCOPES)
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise DataError(f"{root}: exists and is not a directory")
    root.mkdir(parents=True, exist_ok=True)
    src = Path(sources) if sources is not None else default_sources()
    if not src.is_dir():
        raise DataError(f"{src}: no such folder of source corpora (pass --sources)")
    needed = sorted(
        {
            f
            for d in datasets
            for f in (("snips.jsonl",) if d == "media" else ("hwu64.jsonl", "slurp_devel.jsonl"))
        }
    )
    _check_sources(src, needed)
    _write_attribution(root / "ATTRIBUTION.md")
    summary: dict[str, Any] = {}
    for name in dict.fromkeys(datasets):
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
        try:
            summary[name] = _build_dataset(
                name,
                staging,
                src,
                small=small,
                seed=seed,
                weights=weights,
                jobs=jobs,
                scope=scope,
                report=report,
            )
            final = root / name
            if final.exists():
                shutil.rmtree(final)
            os.replace(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if name == "real":
            test = pd.read_parquet(root / name / "hypotheses" / "test.parquet")
            ids = test["utterance_id"].drop_duplicates().head(sample_utterances)
            sample = test[test["utterance_id"].isin(set(ids))].reset_index(drop=True)
            (root / "sample").mkdir(exist_ok=True)
            write_table(sample, root / "sample" / "hypotheses.csv")
            _write_json(root / "sample" / "dataset.json", _sample_info(root / name, len(ids)))
            report(f"sample: {len(sample)} hypotheses of {len(ids)} utterances")
    return summary


def real_corpus_splits(
    sources: str | os.PathLike[str] | None = None, *, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The real-corpus demo's corpora, as :func:`build_demo` makes them: ``(train, dev, test)``.

    ``train`` is HWU64 (every utterance), ``dev`` and ``test`` the two halves of SLURP devel,
    domains mapped to product domains, devices simulated; ``seed`` as in :func:`build_demo`.
    """
    src = Path(sources) if sources is not None else default_sources()
    splits = _real_splits(src, small=False, seed=seed)
    return splits.train, splits.dev, splits.test
