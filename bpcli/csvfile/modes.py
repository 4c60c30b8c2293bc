"""Parse modes: how polars is asked to read a chunk, and the order in which a reader
switches them on when a parse fails."""

from __future__ import annotations

import enum


class ParseMode(enum.Flag):
    """How polars is asked to read a chunk: plainly (numbers, true/false and text as they
    stand), or with some of these switched on. Each reads files that the plain parse cannot,
    at a cost, so a reader starts plain and, when polars fails on a chunk, switches on the
    next of ``FALLBACKS`` and parses the chunk again (``ParseMode.after_failure``).

    A switch once on stays on for the chunks after (``ChunkReader.mode``): the chunks of
    one file were written alike, so the next most likely needs it too, and trying the
    cheaper mode first on every chunk would cost a failed parse (as slow as a good one)
    each time. Carrying a mode changes no value: each switch only widens what reads, and
    a cell that reads without it reads the same with it (1.5 with decimal commas on is
    still 1.5, " 7" is 7 either way)."""

    PLAIN = 0
    #: words such as NA read as missing; polars' parser is slower with them
    MISSING_WORDS = enum.auto()
    #: numbers and true/false with blanks around them ("1, 2"): every cell read as text,
    #: trimmed and converted (slower still); a cell that does not convert is noted in
    #: ``ChunkReader.pending`` rather than failing the parse
    BLANKS = enum.auto()
    #: numbers such as 1,5 for 1.5, in a file that is not comma-separated
    DECIMAL_COMMAS = enum.auto()

    def after_failure(self, delimiter: str) -> ParseMode | None:
        """The mode to parse again in after polars failed in this one: the first of
        ``FALLBACKS`` not yet on, switched on; None when none is left."""
        for fallback in FALLBACKS:
            if fallback in self or (fallback is ParseMode.DECIMAL_COMMAS and delimiter == ","):
                continue
            return self | fallback
        return None


#: The switches a failed parse turns on, in order: missing-value words first (the most
#: common cause, and the cheapest), then blanks (every cell as text: the slowest), then
#: decimal commas (never in a comma-separated file). In ``BLANKS`` mode a bad cell no
#: longer fails a parse, so what fails there is a number that reads with decimal commas
#: (``parsing._DecimalCommas``) or a record polars cannot split, which no mode mends.
FALLBACKS = (ParseMode.MISSING_WORDS, ParseMode.BLANKS, ParseMode.DECIMAL_COMMAS)
#: How cells are read as text (to infer kinds, or diagnose): missing words as missing.
TEXT = ParseMode.MISSING_WORDS
