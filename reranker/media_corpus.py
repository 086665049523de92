"""The simulated media-assistant corpus of the ``media`` demo dataset.

Music, Video, Books, Weather, Shopping and General utterances built from templates and real
titles (book, film, song and album titles, artists, playlists and cities taken from the slot
values of the SNIPS corpus, CC0), plus titles that belong to several catalogues ("mary poppins",
"moana", "thriller", "the lion king", "harry potter", ...). Every utterance has a **simulated**
device (``echo_dot``: voice only, ``echo_show``: screen, ``fire_tv``: TV). The simulation draws
the device first, then the domain from a device-dependent prior (:data:`DOMAIN_PRIOR`: Video
dominates on ``fire_tv`` and is rare on ``echo_dot``, where Music and Books dominate), then an
intent, a template and slot values. So "play mary poppins" is mostly Video on ``fire_tv`` and
mostly Music or Books on ``echo_dot``. The NLU sees only the text; only the re-ranker's device
features can learn the device preference.

Everything is seeded: the same seed gives the same corpus.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from reranker.annotation import parse_slots, strip_annotation
from reranker.errors import DataError
from reranker.nlu.corpus import validate_corpus

__all__ = [
    "AMBIGUOUS_TITLES",
    "DEVICES",
    "DEVICE_SHARE",
    "DOMAIN_PRIOR",
    "MEDIA_SETTINGS",
    "generate_media_corpus",
    "media_catalogues",
]

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
    rng = np.random.default_rng(seed)
    devices = _choice(list(DEVICE_SHARE.items()))
    priors = {dev: _choice(list(p.items())) for dev, p in DOMAIN_PRIOR.items()}
    templates = {
        d: _choice([(f"{i}\x1f{t}", w) for i, t, w in rows]) for d, rows in _TEMPLATES.items()
    }
    slots = _SlotFiller.from_catalogues(catalogues)
    records: list[dict[str, object]] = []
    for k in range(n_utterances):
        device = devices.draw(rng)
        domain = priors[device].draw(rng)
        intent, template = templates[domain].draw(rng).split("\x1f")
        annotation = slots.fill(template, rng)
        records.append(
            {
                "id": f"{prefix}-{k + 1:06d}",
                "text": strip_annotation(annotation),
                "domain": domain,
                "intent": intent,
                "annotation": annotation,
                "device": device,
            }
        )
    return validate_corpus(records, source=f"<{prefix} corpus>")


@dataclass(frozen=True)
class _SlotFiller:
    """Slot values of the templates: catalogue titles, multi-catalogue titles, fixed lists."""

    catalogues: dict[str, list[str]]
    ambiguous: dict[str, list[str]]
    fillers: dict[str, Sequence[str]]

    @classmethod
    def from_catalogues(cls, catalogues: dict[str, list[str]]) -> _SlotFiller:
        ambiguous = {
            d: sorted(t for t, doms in AMBIGUOUS_TITLES.items() if d in doms)
            for d in ("Music", "Video", "Books")
        }
        fillers: dict[str, Sequence[str]] = {
            **catalogues,
            "item_name": _ITEMS,
            "date": _DATES,
            "rating_value": _RATINGS,
        }
        return cls(catalogues, ambiguous, fillers)

    def fill(self, template: str, rng: np.random.Generator) -> str:
        """The annotation of ``template`` with each ``{slot_type}`` drawn from its pool."""
        pieces: list[str] = []
        rest = template
        while "{" in rest:
            before, _, tail = rest.partition("{")
            slot_type, _, rest = tail.partition("}")
            written, pool = self._pool(slot_type, rng)
            if written != slot_type:  # "the song X" reads "the album X" for an album title
                before = before.replace("the song ", "the album ")
            value = str(pool[int(rng.integers(len(pool)))])
            pieces += [before, f"[{written} : {value}]"]
        pieces.append(rest)
        return " ".join("".join(pieces).split())

    def _pool(self, slot_type: str, rng: np.random.Generator) -> tuple[str, Sequence[str]]:
        """The slot type written in the annotation and the values to draw from."""
        title_domain = _TITLE_SLOTS.get(slot_type)
        if (
            title_domain is not None
            and self.ambiguous[title_domain]
            and rng.random() < _AMBIGUOUS_SHARE
        ):
            # a multi-catalogue music title is an album or soundtrack
            written = "album_name" if slot_type == "song_name" else slot_type
            return written, self.ambiguous[title_domain]
        if slot_type == "item_name" and rng.random() < _BOOK_PURCHASE_SHARE:
            return slot_type, sorted(AMBIGUOUS_TITLES) + self.catalogues["book_name"][:200]
        return slot_type, self.fillers[slot_type]
