"""The observer: where every finished RequestRecord goes (log, ledger, metrics, the
dashboard's list of latest requests)."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

from ..core.record import RequestRecord
from ..core.status import BridgeStatus
from ..settings import Settings
from . import requestlog
from .ledger import Ledger
from .metrics import Metrics

log = logging.getLogger(__name__)

RECENT = 100


class Observer:
    def __init__(self, settings: Settings, status: Callable[[], BridgeStatus]):
        self.recent: deque[RequestRecord] = deque(maxlen=RECENT)
        self.ledger = Ledger(settings.data_dir, settings.usage_retention_days)
        self.metrics = Metrics(status)
        self.also: list[Callable[[RequestRecord], None]] = []  # more consumers (the key budgets)

    def finish(self, record: RequestRecord) -> None:
        """Called once per API request, after its last byte (never raises: observing must not
        break serving)."""
        self.recent.append(record)
        for consumer in (requestlog.emit, self.ledger.append, self.metrics.observe, *self.also):
            try:
                consumer(record)
            except Exception:
                log.exception("observing a request failed in %s", getattr(consumer, "__qualname__", consumer))
