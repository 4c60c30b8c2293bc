"""Did-you-mean hints: the one place that suggests names, for config keys and CSV columns alike."""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Sequence

#: Did-you-mean hints: words and choices beyond these get no hint.
MAX_HINT_LENGTH = 100


MAX_HINT_CHOICES = 10_000


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """A suggestion among ``choices`` for a misspelt ``word``, or "". Kept cheap for
    long words and many choices (a hint is not worth seconds)."""
    if len(word) > MAX_HINT_LENGTH:
        return ""
    # difflib's ratio 2 * matches / (len(a) + len(b)) reaches the cutoff 0.6 only when
    # the shorter is at least 3/7 of the longer
    plausible = [c for c in itertools.islice(choices, MAX_HINT_CHOICES)
                 if 3 * max(len(c), len(word)) <= 7 * min(len(c), len(word))]
    close = difflib.get_close_matches(word, plausible, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
