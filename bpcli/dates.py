"""Dates in CSV cells: recognising them, and the network inputs a date becomes.

A date column's cells are read as text (each distinct text once), parsed here, and
expanded into ``DATE_FEATURES``: the days since 1970-01-01 and the year (trends), and the
month, the day of the week and the day of the year as points on a circle (sine and
cosine, so that December sits next to January). docs/model-format.md describes the same
rules for readers without bp.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

DATE_FEATURES = ("days", "year", "month_sin", "month_cos", "weekday_sin", "weekday_cos",
                 "yearday_sin", "yearday_cos")
EPOCH = dt.date(1970, 1, 1)
# three numbers separated by - / or . (the same twice), and optionally a time, ignored
_NUMBERS = re.compile(r"(\d{1,4})([-/.])(\d{1,2})\2(\d{1,4})(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?")
DATE_SHARE = 0.9  # a text column is dates when this share of its values parse as dates


def parse_date(text: str, date_format: str | None = None, day_first: bool = True
               ) -> dt.date | None:
    """The date a cell holds, or None. With ``date_format`` (strftime codes), only that;
    otherwise ISO 8601 (``2012-01-03``, ``2012-01-03T10:00``), year first with ``/`` or
    ``.`` (``2012/01/03``), or year last, day first when ``day_first``
    (``03.01.2012``, ``3/1/2012``)."""
    text = text.strip()
    try:
        if date_format is not None:
            return dt.datetime.strptime(text, date_format).date()
        match = _NUMBERS.fullmatch(text)
        if match is None:
            return None
        first, _, middle, last = match.groups()
        if len(first) == 4:
            year, month, day = int(first), int(middle), int(last)
        elif len(last) == 4:
            year, month, day = int(last), int(middle), int(first)
            if not day_first:
                month, day = day, month
        else:
            return None
        return dt.date(year, month, day)
    except ValueError:
        return None


def day_first_order(texts: Sequence[str]) -> tuple[bool, bool]:
    """``(day_first, certain)`` for year-last dates: day first unless a value shows the
    month first (a second number above 12); certain when some value decides it, or when
    no value has its year last."""
    year_last = False
    for text in texts:
        match = _NUMBERS.fullmatch(text.strip())
        if match is None or len(match.group(1)) == 4:
            continue
        year_last = True
        if int(match.group(1)) > 12:
            return True, True
        if int(match.group(3)) > 12:
            return False, True
    return True, not year_last


def looks_like_dates(texts: Sequence[str]) -> bool:
    """Whether a text column's distinct values are dates (a few typos allowed); a sample
    of them first, so that a column of free text costs little."""
    if not texts:
        return False
    for sample in (texts[:: max(1, len(texts) // 200)], texts):
        day_first, _ = day_first_order(sample)
        parsed = sum(parse_date(t, None, day_first) is not None for t in sample)
        if parsed < DATE_SHARE * len(sample):
            return False
    return True


def date_features(date: dt.date) -> list[float]:
    """The raw network inputs of one date, in the order of ``DATE_FEATURES``."""
    month = 2 * math.pi * (date.month - 1) / 12
    weekday = 2 * math.pi * date.weekday() / 7  # Monday is 0
    yearday = 2 * math.pi * (date.timetuple().tm_yday - 1) / 365.25
    return [float((date - EPOCH).days), float(date.year), math.sin(month), math.cos(month),
            math.sin(weekday), math.cos(weekday), math.sin(yearday), math.cos(yearday)]


def features_of(dates: Sequence[dt.date | None]) -> NDArray[np.float64]:
    """``(len(dates), 8)`` raw inputs, NaN for a date that is None."""
    out = np.full((len(dates), len(DATE_FEATURES)), np.nan)
    for i, date in enumerate(dates):
        if date is not None:
            out[i] = date_features(date)
    return out
