"""Reading a device CSV file: the header names POST /devices fields, each row one device.

Cells are trimmed; an empty cell means "not given" (the field's default). Rows are numbered as
a spreadsheet shows them: the header is row 1, the first device row 2.
"""

from __future__ import annotations

import csv
import email.parser
import email.policy
import io
from collections.abc import Iterator

from fastapi import HTTPException, status
from pydantic import ValidationError

from telecare.api.schemas import DeviceCreate
from telecare.api.validation import body_error
from telecare.devices.bulk_import import FieldError, ImportRow
from telecare.devices.registry import NewDevice

MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 10_000
COLUMNS = tuple(DeviceCreate.model_fields)
REQUIRED = tuple(name for name, spec in DeviceCreate.model_fields.items() if spec.is_required())


def too_large(what: str) -> HTTPException:
    return HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE,
        f"{what}: an import takes at most {MAX_ROWS} rows and {MAX_BYTES // (1024 * 1024)} MB;"
        " split the file",
    )


def csv_text(body: bytes, content_type: str) -> str:
    """The CSV text of a text/csv body or of the file in a multipart/form-data upload."""
    media_type = content_type.split(";", maxsplit=1)[0].strip().lower()
    if media_type == "multipart/form-data":
        body = _uploaded_file(body, content_type)
    elif media_type not in {"text/csv", "application/csv", "text/plain"}:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"send the file as text/csv or as multipart/form-data, not {media_type or 'nothing'}",
        )
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problem = f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})"
        raise body_error(None, problem) from None


def _uploaded_file(body: bytes, content_type: str) -> bytes:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    for part in message.iter_parts() if message.is_multipart() else ():
        if part.get_param("name", header="content-disposition") == "file":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload
    raise body_error("file", "no file in the upload: send it as the form field `file`")


def parse_rows(text: str) -> list[ImportRow]:
    """Every device row with its validation errors; 422 for a header that cannot be read."""
    records = csv.reader(io.StringIO(text, newline=""))
    header = [cell.strip() for cell in next(records, [])]
    _check_header(header)
    rows: list[ImportRow] = []
    for number, cells in _numbered(records):
        if len(rows) == MAX_ROWS:
            raise too_large(f"more than {MAX_ROWS} rows")
        rows.append(_row(number, header, cells))
    return rows


def _check_header(header: list[str]) -> None:
    unknown = [name for name in header if name not in COLUMNS]
    missing = [name for name in REQUIRED if name not in header]
    repeated = sorted({name for name in header if header.count(name) > 1})
    problems = []
    if unknown:
        problems.append(f"unknown column(s) {', '.join(map(repr, unknown))}")
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if repeated:
        problems.append(f"repeated column(s) {', '.join(repeated)}")
    if problems:
        raise body_error(
            "header", "; ".join(problems) + f" (the columns are: {', '.join(COLUMNS)})"
        )


def _numbered(records: Iterator[list[str]]) -> Iterator[tuple[int, list[str]]]:
    for index, cells in enumerate(records, start=2):
        if any(cell.strip() for cell in cells):
            yield index, cells


def _row(number: int, header: list[str], cells: list[str]) -> ImportRow:
    values = {name: cell.strip() for name, cell in zip(header, cells, strict=False) if cell.strip()}
    device_id = values.get("device_id")
    if len(cells) > len(header):
        error = FieldError(None, f"{len(cells)} cells but the header has {len(header)} columns")
        return ImportRow(number, device_id, None, [error])
    try:
        valid = DeviceCreate.model_validate(values)
    except ValidationError as exc:
        errors = [
            FieldError(str(e["loc"][0]) if e["loc"] else None, e["msg"]) for e in exc.errors()
        ]
        return ImportRow(number, device_id, None, errors)
    return ImportRow(number, device_id, NewDevice(**valid.model_dump()))
