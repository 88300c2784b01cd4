"""The reader's preferences page /p/{token}, and /a/{token} that confirms a new address."""

# GET and HEAD change nothing; only a POST from our own page carrying its CSRF field does.

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from mailer.audience import preferences as chosen
from mailer.audience.addresses import Address
from mailer.audience.preferences import Choices, Moved, Profile
from mailer.compose import translations
from mailer.compose.address_change import (
    address_url,
    build_address_confirm,
    build_address_notice,
)
from mailer.compose.templates import template_dirs
from mailer.db.database import Database
from mailer.errors import AddressError, MailerError
from mailer.models import Candidate, Consent, SubscriberStatus
from mailer.send.transactional import deliver_notice
from mailer.web.confirm import DAY
from mailer.web.ratelimit import address_key
from mailer.web.site import PRIVATE, Site, mask
from mailer.web.subscribe import (
    FORM_HEADERS,
    ask,
    clean_name,
    from_here,
    printable,
    typed_address,
)

log = logging.getLogger("mailer.web")
# Private, and its forms send our Origin (no-referrer would make it "null").
HEADERS = {**PRIVATE, **FORM_HEADERS}
MAX_FIELDS = 1000  # a checkbox per list; the body stays under site.MAX_FORM_BYTES
MAX_ADDRESS = 320
# The forms of the page that need nothing but the reader, and what the page says when done.
ACTIONS: dict[str, Callable[[Database, int], object]] = {
    "leave": chosen.leave_all, "cancel": chosen.cancel_address}  # fmt: skip
NOTICES = {"save": "saved", "leave": "left", "cancel": "cancelled"}


async def preferences(site: Site, request: Request) -> Response:
    """/p/{token}: the page, and each of its forms (save, address, cancel, leave)."""
    token = request.path_params["token"]
    subject = site.signer.check(token)
    if subject is None or subject.purpose != "p":
        return site.invalid(request)
    reader = await _reader(site, subject.subscriber_id)
    if reader is None:  # never known, or erased
        return site.invalid(request)
    if request.method != "POST":  # GET and HEAD change nothing: mail scanners follow links
        return _page(site, request, token, reader)
    form = await _form(request)
    if not from_here(site, request) or not _csrf_matches(site, token, form.get("csrf")):
        return _page(site, request, token, reader, 403, error="forged")  # nothing changes
    action = str(form.get("action") or "")
    if action == "address":
        return await _new_address(site, request, token, reader, str(form.get("email") or ""))
    asked = ""
    if action == "save":
        choices = _choices(request, reader, form)
        joining = await site.db(lambda database: chosen.save(database, reader, choices))
        lang = site.language(request, choices.lang or reader.lang)
        consent = Consent(chosen.SOURCE, ip=request.client.host if request.client else "")
        candidate = Candidate(reader.email, reader.smtputf8, None, consent=consent, lang=lang)
        for mailing_list in joining:  # confirmed from the inbox, as on the form
            site.confirmations.put(mailing_list, partial(ask, site, mailing_list, candidate,
                                                         chosen.SOURCE))  # fmt: skip
        asked = ", ".join(each.name for each in joining)
    elif action in ACTIONS:
        await site.db(lambda database: ACTIONS[action](database, reader.id))
    else:
        return _page(site, request, token, reader, 400)
    now = await _reader(site, reader.id) or reader
    return _page(site, request, token, now, notice=NOTICES[action], asked=asked)


async def _new_address(
    site: Site, request: Request, token: str, reader: Profile, typed: str
) -> Response:
    """Keep the request and answer; the link to the new address and the notice to the old
    one are mailed after the answer went out. For an address that may not be used (taken,
    blocked, erased) nothing is kept or mailed, and the answer is the same."""
    shown = printable(typed)[:MAX_ADDRESS]
    try:
        address = await typed_address(site, typed)
    except AddressError as error:
        return _page(site, request, token, reader, 400, error="address", problem=error.reason,
                     email=shown)  # fmt: skip
    client = request.client.host if request.client else ""
    if not site.per_ip.allow(client or "unknown") or not site.per_address.allow(
        address_key(address.email)
    ):  # the page mails whoever is typed in: as bounded as the form
        headers = {"Retry-After": str(int(site.per_address.period))}
        lang = site.language(request, reader.lang)
        return site.page("busy", 429, headers, lang, too_many=True)
    issued = int(site.clock())
    secret = site.signer.secret
    nonce = await site.db(
        lambda database: chosen.request_address(database, reader, address, secret, issued)
    )
    # The same answer whether or not the address may be used (taken by another reader, blocked,
    # erased): the page must not tell whoever holds its link who else is known here.
    answer = _page(site, request, token, reader, notice="sent", email=mask(address.email))
    if nonce is not None:
        url = address_url(site.settings.newsletter.base_url, site.signer, reader.id, nonce,
                          issued)  # fmt: skip
        lang = site.language(request, reader.lang)
        answer.background = BackgroundTask(_mail, site, reader, address, url, token, lang)
    return answer


async def _mail(
    site: Site, reader: Profile, address: Address, url: str, token: str, lang: str
) -> None:
    """The link to the new address, then the notice to the one used until now (not when it
    bounced: nobody reads it). Problems are logged: the page has answered."""
    newsletter, templates = site.settings.newsletter, template_dirs(site.settings.templates_dir)
    new, old = address.email, reader.email
    page = f"{newsletter.base_url.rstrip('/')}/p/{token}"

    def confirm() -> bytes:
        return build_address_confirm(newsletter, new, address.smtputf8, url, templates, lang)

    def notice() -> bytes:
        return build_address_notice(newsletter, old, reader.smtputf8, mask(new), page,
                                    templates, lang)  # fmt: skip

    mails = [(new, address.smtputf8, confirm)]
    if reader.status == SubscriberStatus.ACTIVE:
        mails.append((old, reader.smtputf8, notice))
    for recipient, smtputf8, build in mails:
        try:
            message = await run_in_threadpool(build)
            reply = await deliver_notice(site.settings, site.transport, recipient, message,
                                         smtputf8)  # fmt: skip
            if not reply.accepted:
                log.warning("address change of subscriber %s: refused: %s", reader.id, reply.line)
        except MailerError as error:
            log.warning("address change of subscriber %s: not sent: %s", reader.id, error)


async def new_address(site: Site, request: Request) -> Response:
    """/a/{token}: GET shows a button, POST moves the reader to the new address; a link is good
    for [web] confirm_days, for its own request only, and only while it is still waiting."""
    subject = site.signer.check(request.path_params["token"])
    if subject is None or subject.purpose != "a" or subject.issued is None:
        return site.invalid(request)
    if not 0 <= site.clock() - subject.issued <= _max_age(site):
        return site.invalid(request)
    reader, nonce = subject.subscriber_id, subject.list_id
    found = await site.db(lambda database: chosen.waiting(database, reader, nonce))
    if found is None:
        return site.invalid(request)
    lang = site.language(request, found.lang)
    page = site.signer.make("p", reader, 0)
    context: dict[str, Any] = {"address": mask(found.email), "preferences": page}
    if request.method != "POST":  # GET and HEAD change nothing
        state = "done" if found.done else "ask"
        return site.page("preferences_address", 200, PRIVATE, lang, state=state, **context)
    secret = site.signer.secret
    moved = await site.db(lambda database: chosen.confirm_address(database, reader, nonce, secret))
    if moved is Moved.TAKEN:
        return site.page("preferences_address", 409, PRIVATE, lang, state="taken", **context)
    if moved is Moved.INVALID:
        return site.invalid(request)
    return site.page("preferences_address", 200, PRIVATE, lang, state="done", **context)


def csrf(site: Site, token: str) -> str:
    """The page's CSRF field: an HMAC of its token with the workspace secret, so that only a
    page we served for this token can send its forms."""
    mac = hmac.new(site.signer.secret, b"preferences form\0" + token.encode(), hashlib.sha256)
    return mac.hexdigest()


def _csrf_matches(site: Site, token: str, sent: object) -> bool:
    if not isinstance(sent, str):
        return False
    return hmac.compare_digest(sent.encode(), csrf(site, token).encode())


def _max_age(site: Site) -> float:
    return site.settings.web.confirm_days * DAY


async def _reader(site: Site, subscriber_id: int) -> Profile | None:
    return await site.db(lambda database: chosen.profile(database, subscriber_id))


async def _form(request: Request) -> FormData:
    """The posted fields (a checkbox a list: more than site.form allows); a body we cannot
    parse is an empty form, which the CSRF check refuses."""
    try:
        return await request.form(max_files=0, max_fields=MAX_FIELDS)
    except HTTPException as error:
        if error.status_code == 413:  # BodyLimit: too much, declared or not
            raise
        return FormData()
    except (ValueError, UnicodeDecodeError):
        return FormData()


def _choices(request: Request, reader: Profile, form: FormData) -> Choices:
    """What the save form says. A language left as the page showed it stays the reader's own
    (fr-CA is shown as French), and one we have no catalog for is ignored."""
    sent = str(form.get("lang") or "")
    lang = reader.lang
    if sent != _shown_language(reader) and (sent in translations.languages() or not sent):
        lang = sent
    shown = str(form.get("shown") or "").split(",")
    ip = request.client.host if request.client else ""
    name = clean_name(str(form.get("name") or ""))
    if name == clean_name(reader.name):  # shown as the page cleans it: not a change
        name = reader.name
    return Choices(name, lang, _ids(form.getlist("list")), _ids(shown), ip)


def _ids(values: list[Any]) -> frozenset[int]:
    return frozenset(int(v) for v in values if isinstance(v, str) and v.isdigit() and len(v) < 19)


def _shown_language(reader: Profile) -> str:
    """The language the page's menu shows as the reader's: '' (no preference) when they have
    none or one we have no catalog for."""
    return (translations.best_language([reader.lang]) or "") if reader.lang else ""


def _page(
    site: Site,
    request: Request,
    token: str,
    reader: Profile,
    status: int = 200,
    **context: Any,
) -> Response:
    """The preferences page, in the reader's language (else the browser's)."""
    lang = site.language(request, reader.lang)
    values: dict[str, Any] = {"notice": "", "error": "", "problem": "", "email": "",
                              "asked": "", **context}  # fmt: skip
    return site.page(
        "preferences", status, HEADERS, lang,
        address=mask(reader.email), name=reader.name, chosen=_shown_language(reader),
        languages=translations.languages(), lists=reader.lists, token=token,
        shown=",".join(str(each.list.id) for each in reader.lists), csrf=csrf(site, token),
        **values,
    )  # fmt: skip
