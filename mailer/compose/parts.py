"""Base64 MIME parts made once per campaign (images, attachments), with RFC 2231 file names."""

from __future__ import annotations

import base64
import re
from urllib.parse import quote

from mailer.compose.mime import clean, fold

PLAIN_NAME = re.compile(r"[A-Za-z0-9 !#$%&'()*+,./:;<=>?@\[\]^_`{|}~-]{1,50}")  # no " or \
PIECE = 50  # characters of an RFC 2231 value per folded line


def name_params(key: str, name: str) -> list[str]:
    """``key="name"`` when the name is short, printable ASCII; else RFC 2231 parameters
    (``key*=utf-8''R%C3%A9sum%C3%A9.pdf``), continued over lines when long, each line
    holding whole characters."""
    if PLAIN_NAME.fullmatch(name):
        return [f'{key}="{name}"']
    pieces = [""]
    for char in name:
        encoded = quote(char.encode("utf-8"), safe="")
        if pieces[-1] and len(pieces[-1]) + len(encoded) > PIECE:
            pieces.append("")
        pieces[-1] += encoded
    if len(pieces) == 1:
        return [f"{key}*=utf-8''{pieces[0]}"]
    charset = ["utf-8''"] + [""] * (len(pieces) - 1)
    ends = [";"] * (len(pieces) - 1) + [""]
    return [f"{key}*{i}*={charset[i]}{piece}{ends[i]}" for i, piece in enumerate(pieces)]


def base64_lines(data: bytes) -> bytes:
    """``data`` in base64, 76 characters a line, CRLF between lines (none after the last:
    the boundary that follows begins with it)."""
    return base64.encodebytes(data).replace(b"\n", b"\r\n").removesuffix(b"\r\n")


def leaf(
    content_type: str,
    data: bytes,
    filename: str,
    *,
    disposition: str = "attachment",
    content_id: str = "",
) -> bytes:
    """One whole base64 part: headers, the blank line, the encoded body."""
    name = clean(filename) or "file"
    headers = [
        fold("Content-Type", [f"{content_type};", *name_params("name", name)]),
        b"Content-Transfer-Encoding: base64\r\n",
        fold("Content-ID", [f"<{content_id}>"]) if content_id else b"",
        fold("Content-Disposition", [f"{disposition};", *name_params("filename", name)]),
    ]
    return b"".join(headers) + b"\r\n" + base64_lines(data)
