"""Empty an SDK MeterProvider the kit created, in a forked child, with every lock in it new.

The SDK re-creates its export threads after a fork but keeps its aggregations (the
child would export its parent's totals again) and the locks in them (held by a thread
that does not exist in the child, they deadlock its first measurement). The SDK has
no public way to do either, so this walks its storage: the one place that knows the
SDK's private layout. Anything it does not find is left as the SDK keeps it.
"""

from __future__ import annotations

import threading
from typing import Any


def reset_meter_provider(provider: Any) -> None:
    for name, factory in (("_lock", threading.Lock), ("_meter_lock", threading.Lock)):
        if hasattr(provider, name):
            setattr(provider, name, factory())
    for meter in list(getattr(provider, "_meters", {}).values()):
        if hasattr(meter, "_instrument_registration_lock"):
            meter._instrument_registration_lock = threading.Lock()
    consumer = getattr(provider, "_measurement_consumer", None)
    if consumer is None:
        return
    if hasattr(consumer, "_lock"):
        consumer._lock = threading.Lock()
    for storage in list(getattr(consumer, "_reader_storages", {}).values()):
        if hasattr(storage, "_lock"):
            storage._lock = threading.RLock()
        for matches in list(getattr(storage, "_instrument_view_instrument_matches", {}).values()):
            for match in matches:
                if hasattr(match, "_lock"):
                    match._lock = threading.Lock()
                if hasattr(match, "_attributes_aggregation"):
                    match._attributes_aggregation = {}
    for reader in list(getattr(provider, "_metric_readers", ())):
        if hasattr(reader, "_lock"):
            reader._lock = threading.RLock()
        if hasattr(reader, "_export_lock"):
            reader._export_lock = threading.Lock()
