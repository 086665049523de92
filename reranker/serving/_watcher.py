"""Following a weights registry: each domain's current version, reloaded when it changes.

A :class:`WeightsWatcher` polls a registry directory (docs/formats.md#weights-registry): every
``interval`` seconds it lists the domain directories and stats each ``<Domain>/CURRENT`` and the
version file it points to, a few system calls per domain. When a domain's pair of stats changes (a
publish or a rollback renames a new ``CURRENT`` into place, so its inode changes), the domain's
current document is read and validated with :meth:`WeightsRegistry.load` and a new :class:`Snapshot`
is swapped in with that domain replaced and every other domain's model object untouched. A document
that fails validation is never served: the domain keeps what it had, the failure is logged and
counted, and the same files are not retried until they change again.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reranker.errors import WeightsError
from reranker.registry import CURRENT, WeightsRegistry
from reranker.serving._model import DomainModel, Snapshot

__all__ = ["ReloadEvent", "WeightsWatcher"]

log = logging.getLogger("reranker.serving")

_Stat = tuple[int, int, int, int]  # device, inode, size, mtime_ns
_Signature = tuple[_Stat | None, _Stat | None]


@dataclass(frozen=True)
class ReloadEvent:
    """What one poll did to one domain: ``ok`` False means the change was refused."""

    domain: str
    ok: bool
    label: str
    message: str = ""


def _stat(path: Path) -> _Stat | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class WeightsWatcher:
    """Keeps :attr:`snapshot` equal to a registry's valid current versions.

    Parameters
    ----------
    path : str or os.PathLike
        The registry directory; it must exist (it may hold no domain yet).
    interval : float
        Seconds between two polls, for whoever calls :meth:`poll` periodically (the service
        does from its event loop).
    on_event : callable, optional
        Called with every :class:`ReloadEvent` (metrics, tests).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        interval: float = 0.2,
        on_event: Callable[[ReloadEvent], None] | None = None,
    ) -> None:
        self.registry = WeightsRegistry(path)
        if not self.registry.path.is_dir():
            raise WeightsError(f"{self.registry.path}: no such weights directory")
        self.interval = float(interval)
        self.on_event = on_event
        self.snapshot = Snapshot()
        self._seen: dict[str, _Signature] = {}
        self._lock = threading.Lock()

    def _signatures(self) -> dict[str, _Signature]:
        out: dict[str, _Signature] = {}
        try:
            entries = list(os.scandir(self.registry.path))
        except OSError as e:
            log.warning("cannot list weights directory %s: %s", self.registry.path, e)
            return dict(self._seen)  # keep serving what we have
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            directory = Path(entry.path)
            pointer = _stat(directory / CURRENT)
            target: _Stat | None = None
            if pointer is not None:
                try:
                    text = (directory / CURRENT).read_text(encoding="utf-8").strip()
                except (OSError, UnicodeDecodeError):
                    text = ""
                if text.isdigit():
                    target = _stat(directory / f"v{int(text):04d}.json")
            out[entry.name] = (pointer, target)
        return out

    def _load(self, domain: str, signature: _Signature) -> tuple[DomainModel | None, ReloadEvent]:
        if signature[0] is None:
            return None, ReloadEvent(domain, True, "r0", "no current version: scored with R0")
        document = self.registry.load(domain)  # validates; raises WeightsError
        model = DomainModel.from_document(document)
        return model, ReloadEvent(domain, True, model.label)

    def poll(self) -> list[ReloadEvent]:
        """Look at the registry once and swap in a new snapshot if a domain changed."""
        with self._lock:
            current = self._signatures()
            events: list[ReloadEvent] = []
            snapshot = self.snapshot
            for domain in sorted(set(current) | set(self._seen)):
                signature = current.get(domain, (None, None))
                if self._seen.get(domain, (None, None)) == signature:
                    continue
                self._seen[domain] = signature
                try:
                    model, event = self._load(domain, signature)
                except Exception as e:  # any document that fails to load is refused, not served
                    old = snapshot.models.get(domain)
                    label = old.label if old is not None else "r0"
                    events.append(ReloadEvent(domain, False, label, " ".join(str(e).split())))
                    continue
                if model is not None or domain in snapshot.models:
                    snapshot = snapshot.replace(domain, model)
                events.append(event)
            self.snapshot = snapshot  # one reference assignment: requests see old or new
        if self.on_event is not None:
            for event in events:
                self.on_event(event)
        return events
