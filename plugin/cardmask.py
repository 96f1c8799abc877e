"""Card numbers typed as free text are masked before anything keeps, emails or logs them.

People paste card numbers where they do not belong: a refund reason, an address
line, a name, an agent's reply. :func:`mask_card_numbers` is called on such free
text where it enters, by the one text rule of every door (:func:`plugin.validation.free_text`
and the schema field types built on it: reasons, agent messages and replies, names and
address lines), so the database, the emails, the host's helpdesk and the logs only ever see
the masked form.

What counts as a card number: 13 to 19 digits, as one run or in groups separated
by a single space or dash ("4242 4242 4242 4242", "4242-4242-4242-4242",
"4242424242424242"), not touching other digits, that pass the Luhn check. Every
digit but the last four becomes ``•`` and the separators stay where they were::

    "4242 4242 4242 4242" -> "•••• •••• •••• 4242"
    "4242424242424242"    -> "••••••••••••4242"

The mask has exactly the length of what it replaces, so a masked value fits
every length limit the original fitted. Digit runs failing Luhn stay as written.
Identifiers (Order IDs, payment IDs) are not free text and are never passed
here; inside free text, a Luhn-valid run of 13 to 19 digits is masked wherever
it stands, since a leaked card number costs more than a masked reference.
"""
from __future__ import annotations

import re
from typing import overload

#: The character that replaces each hidden digit.
MASK_CHAR = "\u2022"
#: How many digits a card number has.
MIN_DIGITS, MAX_DIGITS = 13, 19
#: Digits left visible at the end of a masked number.
KEEP_LAST = 4

#: A chain of digit groups joined by one space or dash, with no digit just before or after it.
_CHAIN_RE = re.compile(r"(?<!\d)\d+(?:[ -]\d+)*(?!\d)")
_GROUP_RE = re.compile(r"\d+")
#: What a digit adds to the Luhn sum in a doubled position.
_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def luhn_valid(digits: str) -> bool:
    """True when the string of decimal digits passes the Luhn (mod 10) check."""
    values = [int(char) for char in reversed(digits)]
    total = sum(values[0::2]) + sum(_DOUBLED[value] for value in values[1::2])
    return total % 10 == 0


def _mask_span(text: str) -> str:
    """``text`` (digits and separators) with every digit but the last four replaced by the mask."""
    digits = sum(char.isdigit() for char in text)
    hidden = digits - KEEP_LAST
    out: list[str] = []
    for char in text:
        if char.isdigit() and hidden > 0:
            out.append(MASK_CHAR)
            hidden -= 1
        else:
            out.append(char)
    return "".join(out)


def _mask_chain(chain: str) -> str:
    """Mask each card number in a chain of digit groups.

    A card number is a sequence of whole groups of the chain (so "4242 4242 4242 4242 123" masks
    the number and keeps the trailing "123"); the longest valid one starting at a group wins.
    """
    groups = [(m.start(), m.end(), [int(char) for char in m.group()]) for m in _GROUP_RE.finditer(chain)]
    pieces: list[str] = []
    done = 0  # characters of chain already copied to pieces
    first = 0
    while first < len(groups):
        found = None
        count = 0
        # Luhn sums kept while digits are appended on the right: ``plain`` of the digits so far,
        # ``shifted`` of the same digits one position further from the end.
        plain = shifted = 0
        for last in range(first, len(groups)):
            values = groups[last][2]
            count += len(values)
            if count > MAX_DIGITS:
                break
            for value in values:
                plain, shifted = shifted + value, plain + _DOUBLED[value]
            if count >= MIN_DIGITS and plain % 10 == 0:
                found = last
        if found is None:
            first += 1
            continue
        start, end = groups[first][0], groups[found][1]
        pieces.append(chain[done:start])
        pieces.append(_mask_span(chain[start:end]))
        done = end
        first = found + 1
    pieces.append(chain[done:])
    return "".join(pieces)


@overload
def mask_card_numbers(text: str) -> str: ...


@overload
def mask_card_numbers(text: None) -> None: ...


def mask_card_numbers(text: str | None) -> str | None:
    """``text`` with every card number in it masked (see the module's docstring); None stays None."""
    if not text:
        return text
    return _CHAIN_RE.sub(lambda match: _mask_chain(match.group()), text)
