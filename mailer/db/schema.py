"""The schema as versioned migrations; SQLite's PRAGMA user_version counts those applied."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Migration:
    sql: str  # SQLite's
    postgresql: str = ""  # the same for PostgreSQL; its first twelve are schema_postgres's


SCHEMA = [
    """
    CREATE TABLE lists (
        id INTEGER PRIMARY KEY,
        slug TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        opt_in TEXT NOT NULL CHECK (opt_in IN ('single', 'double')),
        public_archive INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
    );
    CREATE TABLE subscribers (
        id INTEGER PRIMARY KEY,
        email TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL DEFAULT '',
        attributes TEXT NOT NULL DEFAULT '{}',
        smtputf8 INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL DEFAULT 'active'
            CHECK (status IN ('active', 'blocklisted', 'bounced')),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE memberships (
        list_id INTEGER NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
        subscriber_id INTEGER NOT NULL REFERENCES subscribers(id),
        status TEXT NOT NULL CHECK (status IN ('unconfirmed', 'confirmed', 'unsubscribed')),
        updated_at TEXT NOT NULL,
        PRIMARY KEY (list_id, subscriber_id)
    ) WITHOUT ROWID;
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        subscriber_id INTEGER REFERENCES subscribers(id),
        list_id INTEGER,
        campaign_id INTEGER,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX events_subscriber ON events(subscriber_id);
    """,
    """
    CREATE TABLE campaigns (
        id INTEGER PRIMARY KEY,
        list_id INTEGER REFERENCES lists(id) ON DELETE SET NULL,
        list_slug TEXT NOT NULL,
        subject TEXT NOT NULL,
        report_path TEXT NOT NULL,
        source TEXT NOT NULL,
        source_sha256 TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'draft'
            CHECK (status IN ('draft', 'sending', 'paused', 'done', 'cancelled')),
        reason TEXT NOT NULL DEFAULT '',
        settings TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT
    );
    CREATE TABLE deliveries (
        campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
        subscriber_id INTEGER NOT NULL REFERENCES subscribers(id),
        status TEXT NOT NULL DEFAULT 'queued'
            CHECK (status IN ('queued', 'sent', 'deferred', 'failed', 'skipped')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_code INTEGER,
        last_error TEXT NOT NULL DEFAULT '',
        message_id TEXT NOT NULL DEFAULT '',
        sent_at TEXT,
        PRIMARY KEY (campaign_id, subscriber_id)
    ) WITHOUT ROWID;
    CREATE INDEX events_campaign ON events(campaign_id);
    """,
    "ALTER TABLE deliveries ADD COLUMN reply TEXT NOT NULL DEFAULT ''",
    # Every mail `bounces process` has read, so a second run changes nothing.
    """
    CREATE TABLE IF NOT EXISTS processed_mail (
        digest TEXT PRIMARY KEY,
        message_id TEXT NOT NULL,
        outcome TEXT NOT NULL,
        source TEXT NOT NULL,
        processed_at TEXT NOT NULL
    ) WITHOUT ROWID
    """,
    # Erasure (GDPR article 17) is a subscriber status of its own.
    """
    CREATE TABLE subscribers_next (
        id INTEGER PRIMARY KEY,
        email TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL DEFAULT '',
        attributes TEXT NOT NULL DEFAULT '{}',
        smtputf8 INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL DEFAULT 'active'
            CHECK (status IN ('active', 'blocklisted', 'bounced', 'erased')),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    INSERT INTO subscribers_next SELECT id, email, name, attributes, smtputf8, status,
        created_at, updated_at FROM subscribers;
    DROP TABLE subscribers;
    ALTER TABLE subscribers_next RENAME TO subscribers;
    """,
    # The public form only for lists the editor opened; a form's name waits for consent; the
    # archive serves each campaign as rendered when it was sent.
    """
    ALTER TABLE lists ADD COLUMN public_form INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE memberships ADD COLUMN pending_name TEXT NOT NULL DEFAULT '';
    ALTER TABLE campaigns ADD COLUMN archive_html TEXT NOT NULL DEFAULT '';
    """,
    # When each reader joined each list (`subscribers ls`), kept through later changes; older
    # memberships take their first event on that list. `--since` reads changes by list and time.
    """
    ALTER TABLE memberships ADD COLUMN joined_at TEXT NOT NULL DEFAULT '';
    UPDATE memberships SET joined_at = COALESCE((SELECT MIN(e.at) FROM events e
        WHERE e.subscriber_id = memberships.subscriber_id AND e.list_id = memberships.list_id),
        updated_at);
    CREATE INDEX memberships_changed ON memberships(list_id, updated_at);
    """,
    # Consent as data (how and from where each reader joined, when they confirmed), the reader's
    # language and tags, erased addresses kept only as keyed hashes, campaigns to several lists
    # and to a segment of them.
    """
    ALTER TABLE memberships ADD COLUMN source TEXT NOT NULL DEFAULT '';
    ALTER TABLE memberships ADD COLUMN ip TEXT NOT NULL DEFAULT '';
    ALTER TABLE memberships ADD COLUMN confirmed_at TEXT NOT NULL DEFAULT '';
    UPDATE memberships SET confirmed_at = COALESCE((SELECT MIN(e.at) FROM events e
        WHERE e.subscriber_id = memberships.subscriber_id AND e.list_id = memberships.list_id
        AND e.kind = 'confirmed'), joined_at) WHERE status = 'confirmed';
    ALTER TABLE subscribers ADD COLUMN lang TEXT NOT NULL DEFAULT '';
    CREATE TABLE tags (
        subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
        tag TEXT NOT NULL,
        PRIMARY KEY (subscriber_id, tag)
    ) WITHOUT ROWID;
    CREATE INDEX tags_tag ON tags(tag, subscriber_id);
    CREATE TABLE erased_addresses (
        digest TEXT PRIMARY KEY,
        erased_at TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE campaign_lists (
        campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
        list_id INTEGER REFERENCES lists(id) ON DELETE SET NULL,
        list_slug TEXT NOT NULL,
        position INTEGER NOT NULL,  -- as the editor gave them; the first names the campaign
        PRIMARY KEY (campaign_id, list_slug)
    ) WITHOUT ROWID;
    CREATE INDEX campaign_lists_list ON campaign_lists(list_id);
    INSERT INTO campaign_lists SELECT id, list_id, list_slug, 0 FROM campaigns;
    ALTER TABLE campaigns ADD COLUMN segment TEXT NOT NULL DEFAULT '';
    """,
    # One campaign in several languages: each edition's report, subject and archived copy
    # (position 0 is the default edition, the campaign's own report), and the edition each
    # delivery was given ('' for deliveries made before: the default).
    """
    CREATE TABLE campaign_editions (
        campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
        lang TEXT NOT NULL,
        position INTEGER NOT NULL,
        subject TEXT NOT NULL,
        report_path TEXT NOT NULL,
        source TEXT NOT NULL,
        archive_html TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (campaign_id, lang)
    ) WITHOUT ROWID;
    ALTER TABLE deliveries ADD COLUMN edition TEXT NOT NULL DEFAULT '';
    """,
    # The images and attachments a campaign's editions read, as they were read: a resume and
    # every build process send those bytes, whatever became of the files.
    """
    CREATE TABLE campaign_files (
        campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
        path TEXT NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (campaign_id, path)
    ) WITHOUT ROWID;
    """,
    # A reader's request, on their preferences page, to be mailed at another address: kept
    # until that address confirms it (a link naming the request's random number, ``nonce``),
    # one per reader (a new request replaces it). Stored, not carried in the link, so that the
    # address stays out of URLs and logs and a link dies once used or replaced. Erasing the
    # reader removes it.
    """
    CREATE TABLE address_changes (
        subscriber_id INTEGER PRIMARY KEY REFERENCES subscribers(id) ON DELETE CASCADE,
        email TEXT NOT NULL,
        smtputf8 INTEGER NOT NULL DEFAULT 0,
        nonce INTEGER NOT NULL,
        requested_at TEXT NOT NULL,
        confirmed_at TEXT NOT NULL DEFAULT ''
    );
    CREATE TRIGGER address_changes_erased AFTER UPDATE OF status ON subscribers
    WHEN NEW.status = 'erased' BEGIN
        DELETE FROM address_changes WHERE subscriber_id = NEW.id;
    END;
    """,
    # 12: campaigns sent at a set time (scheduled, its time in UTC) and each list's welcome
    # campaign (kind 'welcome': its deliveries are added as readers join). A CHECK cannot be
    # altered in SQLite: the table is rebuilt, its ids kept.
    """
    CREATE TABLE campaigns_next (
        id INTEGER PRIMARY KEY,
        list_id INTEGER REFERENCES lists(id) ON DELETE SET NULL,
        list_slug TEXT NOT NULL,
        subject TEXT NOT NULL,
        report_path TEXT NOT NULL,
        source TEXT NOT NULL,
        source_sha256 TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'draft' CHECK (status IN
            ('draft', 'scheduled', 'sending', 'paused', 'done', 'cancelled')),
        reason TEXT NOT NULL DEFAULT '',
        settings TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        archive_html TEXT NOT NULL DEFAULT '',
        segment TEXT NOT NULL DEFAULT '',
        kind TEXT NOT NULL DEFAULT 'issue' CHECK (kind IN ('issue', 'welcome')),
        scheduled_at TEXT
    );
    INSERT INTO campaigns_next (id, list_id, list_slug, subject, report_path, source,
        source_sha256, status, reason, settings, created_at, started_at, finished_at,
        archive_html, segment)
    SELECT id, list_id, list_slug, subject, report_path, source, source_sha256, status, reason,
        settings, created_at, started_at, finished_at, archive_html, segment FROM campaigns;
    DROP TABLE campaigns;
    ALTER TABLE campaigns_next RENAME TO campaigns;
    CREATE INDEX campaigns_due ON campaigns (status, scheduled_at);
    ALTER TABLE lists ADD COLUMN welcome_campaign_id INTEGER
        REFERENCES campaigns(id) ON DELETE SET NULL;
    """,
]

# 13: many sending processes on one campaign (`mailer campaigns work`): each claims a batch of
# queued deliveries for a while (claimed_by, lease_until: '' when unclaimed; the claim stays as
# who sent it), and says in campaign_workers that it is alive and how much it holds. The
# partial index finds the queued deliveries of a campaign in order, not walking the sent ones.
WORKERS = """
ALTER TABLE deliveries ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';
ALTER TABLE deliveries ADD COLUMN lease_until TEXT NOT NULL DEFAULT '';
CREATE INDEX deliveries_queued ON deliveries (campaign_id, subscriber_id) WHERE status = 'queued';
CREATE TABLE campaign_workers (
    campaign_id {id} NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    worker TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    finished_at TEXT NOT NULL DEFAULT '',
    holding INTEGER NOT NULL DEFAULT 0,  -- deliveries claimed and not yet recorded
    PRIMARY KEY (campaign_id, worker)
);
"""

MIGRATIONS = [Migration(sql) for sql in SCHEMA] + [
    Migration(WORKERS.format(id="INTEGER"), WORKERS.format(id="BIGINT")),
]
