"""UK postcodes: the district (outward code) is the unit outages and migrations are grouped by."""

from __future__ import annotations

import re

_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?) ?([0-9][A-Z]{2})$")
_DISTRICT = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]?$")


def normalise_postcode(value: str) -> str:
    """`sw1a1aa` -> `SW1A 1AA`; a bare district (`SW1A`) is kept as it is. ValueError otherwise."""
    compact = re.sub(r"\s+", "", value.upper())
    match = _POSTCODE.fullmatch(compact)
    if match:
        return f"{match.group(1)} {match.group(2)}"
    if _DISTRICT.fullmatch(compact):
        return compact
    raise ValueError(f"{value!r} is not a UK postcode (e.g. 'SW1A 1AA')")


def postcode_district(postcode: str) -> str:
    return postcode.split(" ", maxsplit=1)[0]
