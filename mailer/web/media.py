"""Hosted images at /media/NAME, cached for a year: a name is the hash of its content."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from mailer.compose.images import MEDIA_NAME
from mailer.compose.imaging import TYPES
from mailer.web.site import Site

CACHED = {"Cache-Control": "public, max-age=31536000, immutable"}


async def media(site: Site, request: Request) -> Response:
    """The file, with its type; any other name is the usual answer to a bad link."""
    name = request.path_params["name"]
    path = site.settings.media_dir / name
    if not MEDIA_NAME.fullmatch(name) or not path.is_file():
        return site.invalid(request)
    kind = TYPES[name.rpartition(".")[2]]
    return FileResponse(path, media_type=kind, headers=CACHED)
