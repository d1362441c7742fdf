"""The daemon's active window: when cycles may start ("22:00-07:00" in a time zone, across midnight)."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """An "HH:MM-HH:MM" window in a time zone; an empty spec is always open."""

    spec: str
    timezone: str = "UTC"

    def _bounds(self) -> tuple[dt.time, dt.time]:
        start, end = self.spec.split("-")
        return dt.time.fromisoformat(start), dt.time.fromisoformat(end)

    def is_open(self, now: float) -> bool:
        if not self.spec:
            return True
        start, end = self._bounds()
        local = dt.datetime.fromtimestamp(now, zoneinfo.ZoneInfo(self.timezone)).time().replace(tzinfo=None)
        if start < end:
            return start <= local < end
        return local >= start or local < end  # across midnight

    def _next(self, now: float, at: dt.time) -> float:
        """The first moment after `now` the local clock reads `at`."""
        zone = zoneinfo.ZoneInfo(self.timezone)
        day = dt.datetime.fromtimestamp(now, zone).date()
        for offset in range(3):
            moment = dt.datetime.combine(day + dt.timedelta(days=offset), at, tzinfo=zone).timestamp()
            if moment > now:
                return moment
        raise AssertionError("unreachable: a time of day recurs within two days")  # pragma: no cover

    def opens_at(self, now: float) -> float:
        """When the window next opens (`now` when it is open)."""
        return now if self.is_open(now) else self._next(now, self._bounds()[0])

    def closes_at(self, now: float) -> float | None:
        """When the open window closes (None: never, with no window)."""
        if not self.spec:
            return None
        return self._next(now, self._bounds()[1])

    def describe(self) -> str:
        return f"{self.spec} {self.timezone}" if self.spec else "any time"
