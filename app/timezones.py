"""Time zones: the IANA names a person may choose, and a moment shown in one of them (DESIGN.md:
times are shown in the viewer's zone, UTC until they choose one; `<time datetime>` carries
UTC)."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime
from functools import cache

from markupsafe import Markup, escape

DEFAULT_ZONE = "UTC"


@cache
def zone_names() -> tuple[str, ...]:
    """Every zone the system's tz database knows, sorted; UTC among them."""
    names = set(zoneinfo.available_timezones()) | {DEFAULT_ZONE}
    # "posixrules" and "localtime" are files of the database, not places.
    names -= {"posixrules", "localtime", "Factory"}
    return tuple(sorted(names))


def is_zone(name: object) -> bool:
    return isinstance(name, str) and name in zone_names()


@cache
def zone(name: str) -> zoneinfo.ZoneInfo:
    """The zone by its name; UTC for a name the system does not know. Without listing every
    zone: that reads the whole tz database, seconds on a busy machine."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        return zoneinfo.ZoneInfo(DEFAULT_ZONE)


def as_utc(moment: datetime) -> datetime:
    """A stored moment in UTC (SQLite gives naive datetimes back; they are UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


# How a moment is written, by kind; static/js/times.js writes the same in the browser.
STYLES = {
    "date": "%-d %B %Y",
    "datetime": "%-d %B %Y, %H:%M %Z",
    "message_time": "%-d %b, %H:%M",
}


def time_element(moment: datetime, style: str, zone_name: str, localize: bool = False) -> Markup:
    """`<time datetime="UTC, ISO 8601">the moment in the zone</time>`, written in `style`.
    `localize` marks a fragment rendered once for several people (live chat): the page's script
    (static/js/times.js) writes it again in the zone of the person who sees it."""
    utc = as_utc(moment)
    shown = utc.astimezone(zone(zone_name)).strftime(STYLES[style])
    marker = Markup(' data-localize="{}"').format(style) if localize else Markup("")
    return Markup('<time datetime="{}"{}>{}</time>').format(
        utc.isoformat(timespec="seconds"), marker, escape(shown)
    )
