"""Brazilian licence plates: normalising, validating and comparing plate text. Pure Python.

Two formats are in use:

* ``antiga`` (grey plates, before 2018): ``LLLNNNN``, written ``ABC-1234``;
* ``mercosul`` (since 2018): ``LLLNLNN``, written ``ABC1D23``.

The official conversion of an old plate to Mercosul replaces its 5th character, a digit
``d``, by the letter ``"ABCDEFGHIJ"[d]`` (``ABC-1234`` -> ``ABC1C34``). A vehicle keeps its
plate through that conversion, so searches and watchlists compare *keys*: the plate with its
5th character in letter form (``plate_key``).

OCR reads look-alike characters (``O``/``0``, ``I``/``1``, ``B``/``8``...). Positions 1-3 are
always letters and 4, 6, 7 always digits, so a look-alike in such a position is corrected
(``parse``); the 5th position may hold either and is only corrected with a format hint.
Text that needs more than ``MAX_CORRECTIONS`` corrections, is not exactly 7 characters once
cleaned, or has a separator anywhere but after the 3rd character is not a plate: street text
(``PROIBIDO ESTACIONAR``, ``TEL 9988-7766``, ``LOJA 123``) never becomes one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Format = Literal["mercosul", "antiga"]
MERCOSUL: Format = "mercosul"
ANTIGA: Format = "antiga"
FORMATS: tuple[Format, ...] = (MERCOSUL, ANTIGA)

PLATE_LENGTH = 7
MAX_CORRECTIONS = 2
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DIGITS = "0123456789"
FIFTH_LETTERS = "ABCDEFGHIJ"  # the official old -> Mercosul 5th-character table

# Look-alikes read by OCR in the wrong class, and what they stand for in the other class.
TO_DIGIT = {
    "O": "0",
    "Q": "0",
    "D": "0",
    "U": "0",
    "I": "1",
    "L": "1",
    "J": "1",
    "T": "7",
    "Z": "2",
    "S": "5",
    "B": "8",
    "G": "6",
    "A": "4",
}
TO_LETTER = {
    "0": "O",
    "1": "I",
    "2": "Z",
    "3": "B",
    "4": "A",
    "5": "S",
    "6": "G",
    "7": "T",
    "8": "B",
}
_MERCOSUL_RE = re.compile(r"^[A-Z]{3}[0-9][A-Z][0-9]{2}$")
_ANTIGA_RE = re.compile(r"^[A-Z]{3}[0-9]{4}$")
_SEPARATORS = " -.·:_"
_LETTER_POSITIONS = (0, 1, 2)
_DIGIT_POSITIONS = (3, 5, 6)


@dataclass(frozen=True)
class Plate:
    """A valid plate read from text: ``plate`` (7 characters), its format, and how many
    look-alike characters were corrected to get it."""

    plate: str
    format: Format
    corrections: int = 0

    @property
    def key(self) -> str:
        return plate_key(self.plate)


def clean(text: str) -> str:
    """Upper case without separators or anything that is not a letter or digit."""
    return "".join(ch for ch in text.upper() if ch.isascii() and ch.isalnum())


def plate_format(plate: str) -> Format | None:
    """``mercosul``, ``antiga`` or None for a clean 7-character plate."""
    if _MERCOSUL_RE.match(plate):
        return MERCOSUL
    if _ANTIGA_RE.match(plate):
        return ANTIGA
    return None


def normalize(text: str) -> str | None:
    """A plate typed by a person (any case, dashes, spaces) as its 7 characters, or None.

    No look-alike correction: what a person types is taken as meant.
    """
    plate = clean(text)
    return plate if plate_format(plate) else None


def plate_key(plate: str) -> str:
    """The comparison key: the 5th character in its Mercosul letter form."""
    if len(plate) == PLATE_LENGTH and plate[4].isdigit():
        return plate[:4] + FIFTH_LETTERS[int(plate[4])] + plate[5:]
    return plate


def to_mercosul(plate: str) -> str:
    """The official Mercosul conversion of an old plate (a Mercosul plate is unchanged)."""
    return plate_key(plate)


def to_antiga(plate: str) -> str | None:
    """The old plate a Mercosul plate was converted from, or None when none could be."""
    if plate_format(plate) == ANTIGA:
        return plate
    index = FIFTH_LETTERS.find(plate[4]) if len(plate) == PLATE_LENGTH else -1
    if index < 0:
        return None
    return plate[:4] + str(index) + plate[5:]


def equivalents(plate: str) -> list[str]:
    """The plate and its old/Mercosul counterpart (the spellings a search must match)."""
    spellings = [plate, to_mercosul(plate)]
    old = to_antiga(plate)
    if old:
        spellings.append(old)
    return list(dict.fromkeys(spellings))


def _separator_ok(text: str) -> bool:
    """A separator may only stand between the 3rd and 4th plate characters (``ABC-1234``)."""
    stripped = text.strip().upper()
    seen = 0
    gap_at: set[int] = set()
    for ch in stripped:
        if ch.isascii() and ch.isalnum():
            seen += 1
        elif ch in _SEPARATORS:
            gap_at.add(seen)
        else:
            return False  # other punctuation: not plate text
    return gap_at <= {3}


def parse(text: str, hint: Format | None = None) -> Plate | None:
    """The plate in an OCR'd text, with position-aware look-alike correction, or None.

    ``hint`` (the plate's style, when the caller could tell it) resolves the 5th character:
    with ``mercosul`` a digit look-alike there becomes a letter, with ``antiga`` a letter
    look-alike becomes a digit.
    """
    if not _separator_ok(text):
        return None
    raw = clean(text)
    if len(raw) != PLATE_LENGTH:
        return None
    chars = list(raw)
    corrections = 0
    for i in _LETTER_POSITIONS:
        if chars[i].isdigit():
            if chars[i] not in TO_LETTER:
                return None
            chars[i] = TO_LETTER[chars[i]]
            corrections += 1
    for i in _DIGIT_POSITIONS:
        if chars[i].isalpha():
            if chars[i] not in TO_DIGIT:
                return None
            chars[i] = TO_DIGIT[chars[i]]
            corrections += 1
    fifth = chars[4]
    if hint == MERCOSUL and fifth.isdigit() and fifth in TO_LETTER:
        chars[4] = TO_LETTER[fifth]
        corrections += 1
    elif hint == ANTIGA and fifth.isalpha() and fifth in TO_DIGIT:
        chars[4] = TO_DIGIT[fifth]
        corrections += 1
    if corrections > MAX_CORRECTIONS:
        return None
    plate = "".join(chars)
    fmt = plate_format(plate)
    if fmt is None:
        return None
    return Plate(plate=plate, format=fmt, corrections=corrections)


def distance(a: str, b: str) -> int:
    """Levenshtein distance (plates are short: the plain dynamic programme is enough)."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def similar(a: str, b: str) -> bool:
    """Whether two plates are within one edit of each other (a look-alike character such as
    ``O``/``0`` is one substitution), old/Mercosul equivalents counting as equal."""
    return distance(plate_key(clean(a)), plate_key(clean(b))) <= 1


def similar_patterns(plate: str) -> list[str]:
    """Regular expressions (``^...$``) matching every *key* ``similar`` to ``plate``'s.

    Stored reads carry valid 7-character keys, so one edit between two of them is one
    substitution: one pattern per position with that position a wildcard.
    """
    key = plate_key(plate)
    return [f"^{key[:i]}.{key[i + 1 :]}$" for i in range(len(key))]


def display(plate: str) -> str:
    """How the plate is written: ``ABC-1234`` (antiga) or ``ABC1D23`` (mercosul)."""
    return f"{plate[:3]}-{plate[3:]}" if plate_format(plate) == ANTIGA else plate


def vote(readings: list[tuple[str, float]]) -> tuple[str, float] | None:
    """The plate a vehicle pass most likely carries, from its frames' ``(plate, confidence)``.

    Each position is voted separately, weighted by confidence, among readings of the same
    key length; the 5th character is voted on its key form, then written back in the form
    most of its votes used. Returns ``(plate, confidence)`` (the winners' mean share) or None.
    """
    valid = [(p, c) for p, c in readings if plate_format(p)]
    if not valid:
        return None
    chosen: list[str] = []
    shares: list[float] = []
    for i in range(PLATE_LENGTH):
        weights: dict[str, float] = {}
        for plate, conf in valid:
            ch = plate_key(plate)[i] if i == 4 else plate[i]
            weights[ch] = weights.get(ch, 0.0) + max(conf, 1e-3)
        best = max(sorted(weights), key=lambda ch: weights[ch])
        chosen.append(best)
        shares.append(weights[best] / sum(weights.values()))
    key = "".join(chosen)
    # Written as an old plate when most readings agreeing on the key saw a digit there.
    digit_votes = sum(c for p, c in valid if plate_key(p) == key and p[4].isdigit())
    letter_votes = sum(c for p, c in valid if plate_key(p) == key and p[4].isalpha())
    plate = to_antiga(key) if digit_votes > letter_votes else key
    if plate is None or plate_format(plate) is None:
        return None
    mean_conf = sum(c for p, c in valid if plate_key(p) == key) / max(
        1, sum(1 for p, _ in valid if plate_key(p) == key)
    )
    confidence = min(shares) * (mean_conf if mean_conf else min(shares))
    return plate, round(confidence, 4)
