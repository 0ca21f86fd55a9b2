"""The runner's filter step: split a manifest into the records a predicate keeps and those it drops (with why).

Streams line by line (memory does not grow with the manifest), writes both files atomically, and keeps every record
somewhere: a dropped record goes to the dropped file with its reason, never silently away.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import ManifestError
from ..manifest import atomic_open, dumps, loads

_VALUES = re.compile(r" \([^()]*\)$")


@dataclass
class FilterCounts:
    kept: int = 0
    dropped: int = 0
    reasons: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict:
        return {"kept": self.kept, "dropped": self.dropped, "reasons": dict(self.reasons.most_common())}


def reason_key(reason: str) -> str:
    """What reasons are counted by: without the record's own values, so `x > 1 is false (x=0.2)` and
    `x > 1 is false (x=0.3)` are one reason."""
    return _VALUES.sub("", reason)


def filter_manifest(source, kept_path, dropped_path, reason_of: Callable[[dict], str | None],
                    expression: str = "") -> FilterCounts:
    """Records of `source` for which `reason_of` is None go to `kept_path` (same bytes); the others to
    `dropped_path` as {"record": ..., "reason": ..., "where": expression}."""
    counts = FilterCounts()
    with open(source, "rb") as src, atomic_open(kept_path, "wb") as kept, atomic_open(dropped_path, "wb") as dropped:
        for n, line in enumerate(src, 1):
            if not line.strip():
                continue
            try:
                record = loads(line)
            except ValueError as exc:
                raise ManifestError(f"{source}:{n}: malformed JSON ({exc})") from None
            reason = reason_of(record)
            if reason is None:
                kept.write(line if line.endswith(b"\n") else line + b"\n")
                counts.kept += 1
            else:
                dropped.write(dumps({"record": record, "reason": reason, "where": expression}) + b"\n")
                counts.dropped += 1
                counts.reasons[reason_key(reason)] += 1
    return counts
