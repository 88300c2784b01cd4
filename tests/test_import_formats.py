"""Other tools' exports, recognised from their real header rows: each row lands with its status
(who left stays left, with the time they left), its name, tags, consent and attributes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Invoke, store, write_csv
from tests.test_import import summary_format, summary_line

pytestmark = pytest.mark.usefixtures("engine")  # each test on SQLite, then PostgreSQL

# Mailchimp's subscribed export of an audience with its default merge fields: 22 columns.
MAILCHIMP = (
    '"Email Address","First Name","Last Name",Address,"Phone Number",MEMBER_RATING,OPTIN_TIME,'
    "OPTIN_IP,CONFIRM_TIME,CONFIRM_IP,LATITUDE,LONGITUDE,GMTOFF,DSTOFF,TIMEZONE,CC,REGION,"
    "LAST_CHANGED,LEID,EUID,NOTES,TAGS"
)
PLACE = "51.5072000,-0.1276000,0,1,Europe/London,GB,ENG"
UNSUBSCRIBED = (
    '"Email Address","First Name","Last Name",MEMBER_RATING,OPTIN_TIME,OPTIN_IP,CONFIRM_TIME,'
    "CONFIRM_IP,LATITUDE,LONGITUDE,GMTOFF,DSTOFF,TIMEZONE,CC,REGION,UNSUB_TIME,"
    "UNSUB_CAMPAIGN_TITLE,UNSUB_CAMPAIGN_ID,UNSUB_REASON,UNSUB_REASON_OTHER,LEID,EUID,NOTES,TAGS"
)
CLEANED = (
    '"Email Address","First Name","Last Name",MEMBER_RATING,OPTIN_TIME,OPTIN_IP,CONFIRM_TIME,'
    "CONFIRM_IP,LATITUDE,LONGITUDE,GMTOFF,DSTOFF,TIMEZONE,CC,REGION,CLEAN_TIME,"
    "CLEAN_CAMPAIGN_TITLE,CLEAN_CAMPAIGN_ID,LEID,EUID,NOTES,TAGS"
)
LISTMONK = "uuid,email,name,attributes,status,created_at,updated_at"
SUBSTACK = "email,active_subscription,expiry,plan,email_disabled,created_at,first_payment_at"
BUTTONDOWN = (
    "id,secondary_id,email,notes,subscriber_type,referrer_url,utm_source,utm_medium,"
    "utm_campaign,creation_date,ip_address,subscription_date,unsubscription_date,tags,metadata"
)
GHOST = (
    "id,email,name,note,subscribed_to_emails,complimentary_plan,stripe_customer_id,created_at,"
    "deleted_at,labels,tiers"
)


@pytest.fixture
def weekly(mailer: Invoke) -> str:
    assert mailer("lists", "create", "weekly").exit_code == 0
    return "weekly"


def readers(workspace: Path, slug: str = "weekly") -> dict[str, dict[str, Any]]:
    """Each reader of the list as the database holds them: statuses, consent, tags, events."""
    found: dict[str, dict[str, Any]] = {}
    with store(workspace) as db:
        for row in db.query(
            "SELECT s.id, s.email, s.name, s.attributes, s.status, s.lang, m.status, m.source,"
            " m.joined_at, m.confirmed_at, m.ip FROM subscribers s JOIN memberships m"
            " ON m.subscriber_id = s.id JOIN lists l ON l.id = m.list_id WHERE l.slug = ?"
            " ORDER BY s.id",
            (slug,),
        ):
            sid, email, name, attributes, status, lang, membership, *consent = row
            tags = {t for (t,) in db.query("SELECT tag FROM tags WHERE subscriber_id = ?", (sid,))}
            events = db.query(
                "SELECT kind, at, detail FROM events WHERE subscriber_id = ? ORDER BY id", (sid,)
            )
            found[email] = {
                "name": name, "attributes": json.loads(attributes), "status": status,
                "lang": lang, "membership": membership, "consent": tuple(consent),
                "tags": tags, "events": events,
            }  # fmt: skip
    return found


def test_mailchimp_subscribed_export_lands_confirmed_with_names_tags_and_consent(
    mailer: Invoke, workspace: Path
) -> None:
    assert mailer("lists", "create", "weekly", "--double-opt-in").exit_code == 0
    path = write_csv(
        workspace / "subscribed_members_export_4f1e2c9a7b.csv",
        MAILCHIMP + "\r\n"
        'ada@example.org,Ada,Lovelace,,,4,"2019-03-14 09:12:31",203.0.113.7,"2019-03-14 09:14:02",'
        f'203.0.113.7,{PLACE},"2023-01-02 10:00:00",101,a1b2c3d4e5,"met at the fair",'
        '"""steward"",""press"""\r\n'
        'grace@example.org,Grace,Hopper,,,2,,,"2020-06-01 12:00:00",,,,,,,,,'
        '"2020-06-01 12:00:00",102,f6a7b8c9d0,,\r\n',
    )
    result = mailer("subscribers", "import", "weekly", str(path))
    assert result.exit_code == 0, result.output
    assert summary_line(result.stdout)["added"] == 2
    assert summary_format(result.stdout) == "Mailchimp (subscribed export)"
    found = readers(workspace)
    ada = found["ada@example.org"]
    # Subscribed in Mailchimp means confirmed, even on a double opt-in list.
    assert (ada["name"], ada["membership"], ada["status"]) == (
        "Ada Lovelace",
        "confirmed",
        "active",
    )
    assert ada["consent"] == (
        f"import:{path.name}", "2019-03-14T09:12:31+00:00", "2019-03-14T09:14:02+00:00",
        "203.0.113.7",
    )  # fmt: skip
    assert ada["tags"] == {"steward", "press"}
    assert ada["attributes"] == {
        "MEMBER_RATING": "4", "CONFIRM_IP": "203.0.113.7", "LATITUDE": "51.5072000",
        "LONGITUDE": "-0.1276000", "GMTOFF": "0", "DSTOFF": "1", "TIMEZONE": "Europe/London",
        "CC": "GB", "REGION": "ENG", "LAST_CHANGED": "2023-01-02 10:00:00", "LEID": "101",
        "EUID": "a1b2c3d4e5", "NOTES": "met at the fair",
    }  # fmt: skip
    assert ada["events"] == [("subscribed", "2019-03-14T09:12:31+00:00", f"import:{path.name}")]
    # No opt-in time: they joined when they confirmed.
    grace = found["grace@example.org"]
    assert grace["consent"][1:3] == ("2020-06-01T12:00:00+00:00", "2020-06-01T12:00:00+00:00")
    assert (grace["name"], grace["tags"]) == ("Grace Hopper", set())


def test_mailchimp_unsubscribed_export_leaves_no_one_to_mail(
    mailer: Invoke, workspace: Path, weekly: str
) -> None:
    """The issue's first finding: the unsubscribed export made confirmed readers of people who
    had left. Now those already here leave, with the time they left, and the rest arrive left."""
    known = write_csv(workspace / "old.csv", "email,name\ngrace@example.org,Grace\n")
    assert mailer("subscribers", "import", weekly, str(known)).exit_code == 0
    path = write_csv(
        workspace / "unsubscribed_members_export_4f1e2c9a7b.csv",
        UNSUBSCRIBED + "\r\n"
        'grace@example.org,Grace,Hopper,2,,,"2020-06-01 12:00:00",,,,,,,,,"2024-02-01 08:30:00",'
        '"Autumn report",a1b2c3,"I no longer want to receive these emails",,102,f6a7b8c9d0,,\r\n'
        'alan@example.org,Alan,Turing,1,"2018-01-01 10:00:00",198.51.100.4,"2018-01-01 10:05:00",'
        ',,,,,,,,"2021-05-05 05:05:05",Spring,b2c3d4,Other,"too many",103,e1e2e3e4e5,,\r\n',
    )
    result = mailer("subscribers", "import", weekly, str(path))
    assert result.exit_code == 0, result.output
    line = result.stdout.strip().splitlines()[-1]
    assert line == (
        "1 added, 1 updated, 0 unchanged, 0 skipped, 0 invalid, 0 duplicate-in-file, 0 erased;"
        " 2 unsubscribed; format: Mailchimp (unsubscribed export)"
    )
    found = readers(workspace)
    assert {e: r["membership"] for e, r in found.items()} == {
        "grace@example.org": "unsubscribed", "alan@example.org": "unsubscribed"
    }  # fmt: skip
    # Known here already, she leaves now (by the source, before her join here): the source's
    # time is in the event's detail, and the events stay in order.
    kind, at, detail = found["grace@example.org"]["events"][-1]
    assert (kind, detail) == (
        "unsubscribed",
        f"import:{path.name}, dated 2024-02-01T08:30:00+00:00",
    )
    assert at >= found["grace@example.org"]["events"][0][1]
    assert [kind for kind, *_ in found["alan@example.org"]["events"]] == [
        "subscribed", "unsubscribed"
    ]  # fmt: skip
    assert found["alan@example.org"]["attributes"]["UNSUB_REASON_OTHER"] == "too many"
    listed = json.loads(
        mailer("subscribers", "ls", weekly, "--status", "confirmed", "--json").stdout
    )
    assert listed == []
    again = mailer("subscribers", "import", weekly, str(path))
    assert summary_line(again.stdout)["unchanged"] == 2  # the same file again changes nothing


def test_mailchimp_cleaned_export_bounces(mailer: Invoke, workspace: Path, weekly: str) -> None:
    mailer("subscribers", "add", weekly, "ada@example.org")
    path = write_csv(
        workspace / "cleaned_members_export_4f1e2c9a7b.csv",
        CLEANED + "\r\n"
        'ada@example.org,Ada,Lovelace,1,,,"2019-03-14 09:14:02",,,,,,,,,"2023-07-08 03:04:05",'
        '"Summer issue",c3d4e5,101,a1b2c3d4e5,,\r\n'
        'gone@example.org,,,1,,,"2019-01-01 00:00:00",,,,,,,,,"2022-01-01 00:00:00",Winter,d4e5,'
        "104,b1b2b3b4b5,,\r\n",
    )
    result = mailer("subscribers", "import", weekly, str(path))
    assert result.exit_code == 0, result.output
    assert "; 2 bounced; format: Mailchimp (cleaned export)" in result.stdout
    found = readers(workspace)
    assert {e: r["status"] for e, r in found.items()} == {
        "ada@example.org": "bounced", "gone@example.org": "bounced"
    }  # fmt: skip
    kind, at, detail = found["ada@example.org"]["events"][-1]
    assert (kind, detail) == ("bounced", f"import:{path.name}, dated 2023-07-08T03:04:05+00:00")
    assert at >= found["ada@example.org"]["events"][0][1]


def test_listmonk_export(mailer: Invoke, workspace: Path, weekly: str) -> None:
    path = write_csv(
        workspace / "subscribers.csv",
        LISTMONK + "\n"
        'b2b1f2a0-5e0a-4d7c-9a55-1f0c3b7d9e01,ada@example.org,Ada Lovelace,"{""city"": ""London"",'
        ' ""projects"": {""engine"": 1}}",enabled,2021-02-17 09:54:02.123456 +0000 +0000,'
        "2024-01-05 10:00:00.5 +0000 +0000\n"
        "c3c2a3b1-6f1b-4e8d-8b66-2a1d4c8e0f12,bob@example.org,Bob,{},disabled,"
        "2020-05-05 05:05:05 +0200 CEST,2023-03-03 03:03:03.25 +0100 CET\n"
        "d4d3b4c2-7a2c-4f9e-9c77-3b2e5d9f1a23,eve@example.org,Eve,{},blocklisted,"
        "2020-01-01 00:00:00 +0000 UTC,2022-02-02 02:02:02 +0000 UTC\n",
    )
    result = mailer("subscribers", "import", weekly, str(path))
    assert result.exit_code == 0, result.output
    assert summary_format(result.stdout) == "listmonk"
    found = readers(workspace)
    ada, bob, eve = (found[f"{n}@example.org"] for n in ("ada", "bob", "eve"))
    assert ada["attributes"] == {"city": "London", "projects": '{"engine": 1}', "uuid":
                                 "b2b1f2a0-5e0a-4d7c-9a55-1f0c3b7d9e01"}  # fmt: skip
    assert (ada["membership"], ada["consent"][1]) == ("confirmed", "2021-02-17T09:54:02+00:00")
    assert (bob["membership"], bob["consent"][1]) == ("unsubscribed", "2020-05-05T03:05:05+00:00")
    assert bob["events"][-1][:2] == ("unsubscribed", "2023-03-03T02:03:03+00:00")
    assert (eve["status"], eve["events"][-1][:2]) == (
        "blocklisted", ("blocklisted", "2022-02-02T02:02:02+00:00")
    )  # fmt: skip


def test_listmonk_attributes_with_half_an_emoji_land_with_a_replacement(
    mailer: Invoke, workspace: Path, weekly: str
) -> None:
    """A JSON escape of a lone surrogate (JavaScript cut an emoji in half): the reader lands,
    the half becomes U+FFFD. Before, no database took it: a traceback."""
    path = write_csv(
        workspace / "subscribers.csv",
        LISTMONK + "\n"
        'b2b1f2a0-5e0a-4d7c-9a55-1f0c3b7d9e01,ada@example.org,Ada,"{""city"": ""Z\\ud83drich"",'
        ' ""tags"": [""\\udc4d""]}",enabled,2021-02-17 09:54:02 +0000 UTC,'
        "2024-01-05 10:00:00 +0000 UTC\n",
    )
    result = mailer("subscribers", "import", weekly, str(path))
    assert result.exit_code == 0, result.output
    assert readers(workspace)["ada@example.org"]["attributes"] == {
        "city": "Z\ufffdrich", "tags": '["\ufffd"]', "uuid": "b2b1f2a0-5e0a-4d7c-9a55-1f0c3b7d9e01"
    }  # fmt: skip


def test_substack_export(mailer: Invoke, workspace: Path, weekly: str) -> None:
    path = write_csv(
        workspace / "email_list.vale.csv",
        SUBSTACK + "\n"
        "ada@example.org,true,2026-07-06T16:20:44.000Z,monthly,false,2018-08-27T15:06:27.713Z,"
        "2018-08-27T15:10:00.000Z\n"
        "bob@example.org,false,,other,true,2019-01-01T08:00:00.000Z,\n"
        "x9f3k@deletion-request.substack.com,false,,other,false,2019-02-02T08:00:00.000Z,\n",
    )
    result = mailer("subscribers", "import", weekly, str(path))
    assert result.exit_code == 0, result.output
    assert summary_format(result.stdout) == "Substack"
    # A deletion request is Substack's stand-in for a reader who asked to be erased.
    assert summary_line(result.stdout) == {
        "added": 2, "updated": 0, "unchanged": 0, "skipped": 0, "invalid": 0,
        "duplicate-in-file": 0, "erased": 1,
    }  # fmt: skip
    found = readers(workspace)
    assert set(found) == {"ada@example.org", "bob@example.org"}
    ada = found["ada@example.org"]
    assert (ada["membership"], ada["consent"][1]) == ("confirmed", "2018-08-27T15:06:27+00:00")
    assert ada["attributes"] == {"active_subscription": "true", "expiry":
                                 "2026-07-06T16:20:44.000Z", "plan": "monthly",
                                 "first_payment_at": "2018-08-27T15:10:00.000Z"}  # fmt: skip
    assert found["bob@example.org"]["membership"] == "unsubscribed"


def test_a_deletion_requests_bad_value_is_still_reported(
    mailer: Invoke, workspace: Path, weekly: str
) -> None:
    """The row stands for a reader erased, and is counted so; a bad time in it is one more
    problem of the file, as in any row that says its reader left."""
    path = write_csv(
        workspace / "email_list.vale.csv",
        SUBSTACK + "\n"
        "ada@example.org,true,,monthly,false,2018-08-27T15:06:27.713Z,\n"
        "y7@deletion-request.substack.com,false,,other,true,last spring,\n",
    )
    result = mailer("subscribers", "import", weekly, str(path))
    assert result.exit_code == 1
    assert summary_line(result.stdout) == {
        "added": 1, "updated": 0, "unchanged": 0, "skipped": 0, "invalid": 1,
        "duplicate-in-file": 0, "erased": 1,
    }  # fmt: skip
    assert result.stderr.startswith(f"{path}:3: invalid time in created_at")
    assert set(readers(workspace)) == {"ada@example.org"}


def test_buttondown_export(mailer: Invoke, workspace: Path, weekly: str) -> None:
    path = write_csv(
        workspace / "buttondown-subscribers.csv",
        BUTTONDOWN + "\n"
        "g13dbe77-77e6-65fc-b884-pl68df5bc2e9,7,ada@example.org,Met in London.,regular,"
        "https://buttondown.com/vale,,,,2024-03-13 00:03:09.183465+00:00,105.231.64.181,"
        "2024-03-13 00:03:09.183465+00:00,,corporate;london,\"{'staff': 'true', 'desk': 3}\"\n"
        "a1,8,bob@example.org,,unsubscribed,,,,,2023-01-01 10:00:00+00:00,,"
        "2023-01-01 10:00:00+00:00,2024-04-08 17:09:32.596959+00:00,,{}\n"
        "a2,9,cy@example.org,,unactivated,,,,,2024-05-05 05:05:05+00:00,,,,,{}\n"
        "a3,10,dee@example.org,,undeliverable,,,,,2022-02-02 02:02:02+00:00,,,,,{}\n"
        "a4,11,eve@example.org,,complained,,,,,2022-02-02 02:02:02+00:00,,,,,{}\n",
    )
    result = mailer("subscribers", "import", weekly, str(path))
    assert result.exit_code == 0, result.output
    assert summary_format(result.stdout) == "Buttondown"
    found = readers(workspace)
    ada = found["ada@example.org"]
    joined = "2024-03-13T00:03:09+00:00"  # confirmed as it joined: the file says no more
    assert ada["consent"] == (f"import:{path.name}", joined, joined, "105.231.64.181")
    assert ada["tags"] == {"corporate", "london"}
    assert ada["attributes"] == {
        "id": "g13dbe77-77e6-65fc-b884-pl68df5bc2e9", "secondary_id": "7",
        "notes": "Met in London.", "referrer_url": "https://buttondown.com/vale",
        "staff": "true", "desk": "3",
    }  # fmt: skip
    assert found["bob@example.org"]["events"][-1][:2] == (
        "unsubscribed", "2024-04-08T17:09:32+00:00"
    )  # fmt: skip
    assert {e: (r["membership"], r["status"]) for e, r in found.items()} == {
        "ada@example.org": ("confirmed", "active"),
        "bob@example.org": ("unsubscribed", "active"),
        "cy@example.org": ("unconfirmed", "active"),
        "dee@example.org": ("confirmed", "bounced"),
        "eve@example.org": ("confirmed", "blocklisted"),
    }


def test_ghost_export(mailer: Invoke, workspace: Path, weekly: str) -> None:
    path = write_csv(
        workspace / "member-export-2024-05-01.csv",
        GHOST + "\n"
        "6283a5c7e1a4b2001c9e1a01,ada@example.org,Ada Lovelace,Early supporter,true,false,"
        'cus_D5JgW66mn4j0BQ,2022-01-20T10:41:31.000Z,,"Steward, Press",Bronze\n'
        "6283a5c7e1a4b2001c9e1a02,bob@example.org,Bob,,false,false,,2022-02-20T10:41:31.000Z,"
        ",,\n",
    )
    result = mailer("subscribers", "import", weekly, str(path))
    assert result.exit_code == 0, result.output
    assert summary_format(result.stdout) == "Ghost"
    found = readers(workspace)
    ada = found["ada@example.org"]
    assert (ada["name"], ada["tags"], ada["consent"][1]) == (
        "Ada Lovelace", {"Steward", "Press"}, "2022-01-20T10:41:31+00:00"
    )  # fmt: skip
    assert ada["attributes"] == {"id": "6283a5c7e1a4b2001c9e1a01", "note": "Early supporter",
                                 "complimentary_plan": "false",
                                 "stripe_customer_id": "cus_D5JgW66mn4j0BQ",
                                 "tiers": "Bronze"}  # fmt: skip
    assert found["bob@example.org"]["membership"] == "unsubscribed"


def test_map_names_the_columns_of_any_csv(mailer: Invoke, workspace: Path, weekly: str) -> None:
    path = write_csv(
        workspace / "leser.csv",
        "Mail;Vorname;Nachname;Stadt;Angemeldet;Zustand;Schlagworte;Sprache;Intern\n"
        "ada@example.org;Ada;Lovelace;London;2020-01-01T10:00:00+01:00;subscribed;a, b;en-GB;x\n"
        "bob@example.org;Bob;;Köln;;unsubscribed;;de;y\n",
    )
    maps = ["Mail=email", "Vorname=first_name", "Nachname=last_name", "Stadt=attribute:city",
            "angemeldet=joined_at", "Zustand=status", "Schlagworte=tags", "Sprache=lang",
            "Intern=ignore"]  # fmt: skip
    result = mailer("subscribers", "import", weekly, str(path),
                    *(f"--map={m}" for m in maps))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert summary_format(result.stdout) == "generic CSV with --map"
    found = readers(workspace)
    ada, bob = found["ada@example.org"], found["bob@example.org"]
    assert (ada["name"], ada["attributes"], ada["tags"], ada["lang"]) == (
        "Ada Lovelace", {"city": "London"}, {"a", "b"}, "en-GB"
    )  # fmt: skip
    assert ada["consent"][1] == "2020-01-01T09:00:00+00:00"  # in UTC, to the second
    assert (bob["name"], bob["membership"], bob["attributes"]) == (
        "Bob", "unsubscribed", {"city": "Köln"}
    )  # fmt: skip


def test_status_forces_one_status_but_never_brings_back_who_left(
    mailer: Invoke, workspace: Path, weekly: str
) -> None:
    plain = write_csv(workspace / "blocked.csv", "email\nspam@example.org\nbot@example.org\n")
    result = mailer("subscribers", "import", weekly, str(plain), "--status", "blocklisted")
    assert result.exit_code == 0, result.output
    assert "; 2 blocklisted; format: generic CSV" in result.stdout
    assert {r["status"] for r in readers(workspace).values()} == {"blocklisted"}
    left = write_csv(
        workspace / "unsubscribed_members_export_1.csv",
        UNSUBSCRIBED + "\r\n" + "ada@example.org,Ada,,1,,,,,,,,,,,,,,,,,,,,\r\n",
    )
    forced = mailer("subscribers", "import", weekly, str(left), "--status", "confirmed")
    assert forced.exit_code == 0, forced.output
    assert readers(workspace)["ada@example.org"]["membership"] == "unsubscribed"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--map", "Nmae=name"], "error: invalid --map 'Nmae=name': {path} has no column 'Nmae'"),
        (["--map", "name=nickname"], "error: invalid --map 'name=nickname': unknown field"),
        (["--map", "name"], "error: invalid --map 'name': expected COLUMN=FIELD"),
        (
            ["--map", "name=email", "--map", "email=email"],
            "error: invalid --map 'email=email': two columns are mapped to email",
        ),
        (["--status", "gone"], "error: invalid --status 'gone': choose from confirmed, "),
        (["--status", "confirmed", "--confirmed"], "error: --confirmed and --status cannot"),
    ],
)
def test_bad_options_are_one_line_before_anything_is_written(
    mailer: Invoke, workspace: Path, args: list[str], expected: str
) -> None:
    path = write_csv(workspace / "people.csv", "email,name\nada@example.org,Ada\n")
    result = mailer("subscribers", "import", "new", str(path), "--create-list", *args)
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(expected.format(path=path)), line
    assert mailer("lists", "ls", "--json").stdout.strip() in ("", "[]")  # no list was created


def test_an_unknown_format_names_the_missing_email_column_and_the_columns_seen(
    mailer: Invoke, workspace: Path, weekly: str
) -> None:
    path = write_csv(
        workspace / "contacts.csv", "Contact,Phone,Town\nAda,+44 20 7946 0000,London\n"
    )
    result = mailer("subscribers", "import", weekly, str(path))
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line == (
        f"error: {path}:1: no email column in the header ['Contact', 'Phone', 'Town']: expected"
        ' one named email, e-mail or Email Address, or name it with --map "COLUMN=email"'
    )


def test_bad_values_are_reported_by_line_and_the_good_rows_land(
    mailer: Invoke, workspace: Path, weekly: str
) -> None:
    path = write_csv(
        workspace / "subscribed_members_export_2.csv",
        MAILCHIMP + "\r\n"
        'ada@example.org,Ada,,,,1,"yesterday",,,,,,,,,,,,,,,\r\n'
        "bob@example.org,Bob,,,,1,,300.1.2.3,,,,,,,,,,,,,,\r\n"
        "cy@example.org,Cy,,,,1,,2001:0db8:0000:0000:0000:0000:0000:0001,,,,,,,,,,,,,,\r\n"
        'dee@example.org,Dee,,,,1,"9999-12-31T23:59:59-01:00",,,,,,,,,,,,,,,\r\n',
    )
    result = mailer("subscribers", "import", weekly, str(path))
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"{path}:2: invalid time in OPTIN_TIME (expected ISO 8601, such as 2024-03-14 09:12:31"
        " or 2024-03-14T09:12:31Z): 'yesterday'",
        f"{path}:3: invalid IP address in OPTIN_IP: '300.1.2.3'",
        f"{path}:5: invalid time in OPTIN_TIME (expected ISO 8601, such as 2024-03-14 09:12:31"
        " or 2024-03-14T09:12:31Z): '9999-12-31T23:59:59-01:00'",
    ]
    found = readers(workspace)
    assert list(found) == ["cy@example.org"]
    assert found["cy@example.org"]["consent"][3] == "2001:db8::1"  # its short form
    unknown = write_csv(workspace / "s.csv", "email,status\nada@example.org,gone\n")
    result = mailer("subscribers", "import", weekly, str(unknown), "--map", "status=status")
    assert result.stderr.startswith(f"{unknown}:2: unknown status in status (confirmed,")
