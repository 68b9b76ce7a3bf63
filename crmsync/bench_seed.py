"""Seed one large account for the page benchmark (``manage.py bench_pages``).

One account with N prospects and M events and what surrounds them in a real account: capsules,
identified and anonymous visitors, a connected HubSpot connection, record links for most
prospects, an outbox of mostly done rows with some thousands failed (varied CRM messages) and
some pending, retrying, waiting and in flight, sync runs, audit entries, inbound changes and
conflicts, outgoing webhook deliveries, scores, grade changes and trigger firings.

Everything is written by PostgreSQL itself (``INSERT … SELECT … FROM generate_series``) in
chunks, inside one transaction with the big tables' secondary indexes dropped and rebuilt at
the end (a sorted index build is many times faster than maintaining the index row by row) and
foreign-key triggers off (``session_replication_role = replica``: the rows are made consistent
by construction). If the seed is interrupted, the transaction rolls back and nothing is left
half-made. Row ids are reserved from each table's sequence up front, so rows can point at each
other arithmetically (event ``g`` belongs to prospect ``g mod N``) without lookups.

A finished seed writes an audit entry ``bench.seeded`` with its sizes; :func:`ensure_seeded`
skips the work when it finds one with the sizes asked for.
"""

# ruff: noqa: S608 - the SQL is built from this module's constants (names, arrays of fixed words); every
# value that varies is a query parameter.

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from django.contrib.auth import get_user_model
from django.db import connection as db
from django.db import transaction
from django.utils import timezone

from crmsync.models import Account, AuditEntry, Membership, Role
from integrations.models import Connection, ConnectionStatus, SyncMode, WebhookSubscription

ACCOUNT_SLUG = "bench-pages"
ACCOUNT_NAME = "Bench Pages Ltd"
OWNER_EMAIL = "bench-pages-owner@example.com"
OPS_EMAIL = "bench-pages-ops@example.com"
SEEDED_ACTION = "bench.seeded"
CHUNK = 1_000_000

# The tables written in bulk: their secondary indexes are rebuilt once at the end.
BULK_TABLES = (
    "crmsync_prospect",
    "crmsync_visitor",
    "crmsync_event",
    "crmsync_auditentry",
    "integrations_recordlink",
    "integrations_outboxitem",
    "integrations_syncrun",
    "integrations_inboundevent",
    "integrations_syncconflict",
    "integrations_webhookdelivery",
    "scoring_prospectscore",
    "scoring_gradechange",
    "scoring_triggerfiring",
)


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How many rows of each kind, derived from the prospect and event counts."""

    prospects: int
    events: int

    @property
    def capsules(self) -> int:
        return 200

    @property
    def anonymous_visitors(self) -> int:
        return max(100, self.prospects // 10)

    def scaled(self, at_a_million: int, floor: int) -> int:
        return max(floor, at_a_million * self.prospects // 1_000_000)

    @property
    def runs(self) -> int:
        return self.scaled(20_000, 200)

    @property
    def activity_rows(self) -> int:
        # The newest events' activities (about a month of them at 10 events per prospect).
        return min(self.events, self.prospects)

    @property
    def failed(self) -> int:
        return self.scaled(5_000, 200)

    @property
    def audit_entries(self) -> int:
        return self.scaled(200_000, 1_000)

    @property
    def inbound_events(self) -> int:
        return self.scaled(200_000, 1_000)

    @property
    def deliveries(self) -> int:
        return self.scaled(500_000, 1_000)


@dataclasses.dataclass
class Seeded:
    account: Account
    connection: Connection
    owner: object
    ops: object
    seconds: float | None  # None when an earlier seed was reused
    table_rows: dict[str, int]


def _users() -> tuple[object, object]:
    User = get_user_model()
    owner, _ = User.objects.get_or_create(username=OWNER_EMAIL, defaults={"email": OWNER_EMAIL})
    ops, _ = User.objects.get_or_create(
        username=OPS_EMAIL, defaults={"email": OPS_EMAIL, "is_staff": True, "is_superuser": True}
    )
    return owner, ops


def _marker(account: Account) -> AuditEntry | None:
    return AuditEntry.objects.filter(account=account, action=SEEDED_ACTION).order_by("-pk").first()


def ensure_seeded(prospects: int, events: int, *, reseed: bool = False, log: Callable[[str], None] = print) -> Seeded:
    """The benchmark account, seeded with the asked sizes unless a finished seed of them exists."""
    owner, ops = _users()
    account = Account.objects.filter(slug=ACCOUNT_SLUG).first()
    marker = _marker(account) if account else None
    if (
        account is not None
        and not reseed
        and marker is not None
        and marker.changes.get("prospects") == prospects
        and marker.changes.get("events") == events
    ):
        log(f"reusing the seeded account {ACCOUNT_SLUG} ({prospects:,} prospects, {events:,} events)")
        connection = Connection.objects.live().get(account=account)
        return Seeded(account, connection, owner, ops, None, table_sizes())
    started = time.monotonic()
    if account is not None:
        log(f"removing the earlier account {ACCOUNT_SLUG}")
        with transaction.atomic(), db.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = replica")
            _delete_account(cursor, account.pk)
    sizes = Sizes(prospects, events)
    with transaction.atomic():
        account = Account.objects.create(name=ACCOUNT_NAME, slug=ACCOUNT_SLUG, notification_email=OWNER_EMAIL)
        Membership.objects.create(account=account, user=owner, role=Role.OWNER)
        now = timezone.now()
        connection = Connection.objects.create(
            account=account,
            provider="hubspot",
            status=ConnectionStatus.ACTIVE,
            sync_mode=SyncMode.REALTIME,
            access_token="bench-access-token",
            refresh_token="bench-refresh-token",
            token_expires_at=now + timezone.timedelta(hours=6),
            crm_account_id="4242",
            crm_account_name="Bench Pages HubSpot",
            crm_user_email=OWNER_EMAIL,
            activated_at=now - timezone.timedelta(days=400),
            connected_at=now - timezone.timedelta(days=400),
            created_by=owner,
        )
        subscriptions = [
            WebhookSubscription.objects.create(
                account=account,
                target_url=f"https://hooks.zapier.com/hooks/catch/{n}/bench/",
                events=["*"],
                secret="whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" * 1,
                source="zapier",
            )
            for n in (1, 2)
        ]
        from scoring.models_triggers import TriggerRule

        rule = TriggerRule.objects.create(
            account=account, name="Viewed a capsule", condition_type="capsule_viewed", actions=[]
        )
        with db.cursor() as cursor:
            # Check the ORM rows' deferred foreign keys now: an index cannot be built on a table with
            # checks still pending.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET LOCAL session_replication_role = replica")
            cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
            cursor.execute("SET LOCAL synchronous_commit = off")
            dropped = _drop_secondary_indexes(cursor, log)
            _seed_rows(cursor, sizes, account.pk, connection.pk, [s.pk for s in subscriptions], rule.pk, now, log)
            log(f"rebuilding {len(dropped)} indexes")
            t0 = time.monotonic()
            for _table, statement in dropped:
                cursor.execute(statement)
            log(f"  indexes rebuilt in {time.monotonic() - t0:.0f} s")
        seconds = time.monotonic() - started
        AuditEntry.objects.create(
            account=account,
            actor_label="bench_pages",
            action=SEEDED_ACTION,
            changes={"prospects": prospects, "events": events, "seconds": round(seconds, 1)},
        )
    t0 = time.monotonic()
    with db.cursor() as cursor:
        for table in BULK_TABLES:
            cursor.execute(f"VACUUM ANALYZE {table}")
    seconds = time.monotonic() - started
    log(f"vacuum analyze in {time.monotonic() - t0:.0f} s; seeded in {seconds:.0f} s")
    return Seeded(account, connection, owner, ops, seconds, table_sizes())


def table_sizes() -> dict[str, int]:
    """Rows (the planner's estimate, after ANALYZE) and size on disk of the big tables."""
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT relname, reltuples::bigint, pg_total_relation_size(oid) FROM pg_class "
            "WHERE relname = ANY(%s) ORDER BY relname",
            [list(BULK_TABLES)],
        )
        return {name: {"rows": rows, "mb": round(size / 2**20)} for name, rows, size in cursor.fetchall()}


def _drop_secondary_indexes(cursor, log) -> list[tuple[str, str]]:
    """Drops every index of BULK_TABLES but the primary key; returns the statements that rebuild them."""
    cursor.execute(
        """
        SELECT t.relname, i.relname, pg_get_indexdef(i.oid), c.conname, pg_get_constraintdef(c.oid)
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_class t ON t.oid = x.indrelid
        LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.contype = 'u' AND c.conrelid = x.indrelid
        WHERE t.relname = ANY(%s) AND NOT x.indisprimary
        ORDER BY t.relname, i.relname
        """,
        [list(BULK_TABLES)],
    )
    rebuild = []
    for table, index, indexdef, constraint, constraintdef in cursor.fetchall():
        if constraint:
            cursor.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{constraint}"')
            rebuild.append((table, f'ALTER TABLE "{table}" ADD CONSTRAINT "{constraint}" {constraintdef}'))
        else:
            cursor.execute(f'DROP INDEX "{index}"')
            rebuild.append((table, indexdef))
    log(f"dropped {len(rebuild)} secondary indexes of {len(BULK_TABLES)} tables for the load")
    return rebuild


def _delete_account(cursor, account_id: int) -> None:
    """Every row of the account, found through the foreign keys that point at its account,
    connections and prospects (FK triggers are off, so the order is free)."""

    def referencing(table: str) -> list[tuple[str, str]]:
        cursor.execute(
            """
            SELECT c.conrelid::regclass::text, a.attname
            FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
            WHERE c.contype = 'f' AND c.confrelid = %s::regclass
            """,
            [table],
        )
        return cursor.fetchall()

    prospects = "SELECT id FROM crmsync_prospect WHERE account_id = %s"
    connections = "SELECT id FROM integrations_connection WHERE account_id = %s"
    events = "SELECT id FROM crmsync_event WHERE account_id = %s"
    for parent, ids in (
        ("crmsync_event", events),
        ("crmsync_prospect", prospects),
        ("integrations_connection", connections),
    ):
        for table, column in referencing(parent):
            if column == "event_id":
                continue  # rows of this account that point at its events go with their account or connection
            cursor.execute(f'DELETE FROM {table} WHERE "{column}" IN ({ids})', [account_id])
    for table, column in referencing("crmsync_account"):
        cursor.execute(f'DELETE FROM {table} WHERE "{column}" = %s', [account_id])
    cursor.execute("DELETE FROM crmsync_account WHERE id = %s", [account_id])


def _reserve_ids(cursor, table: str, count: int) -> int:
    """Takes ``count`` ids from the table's sequence; the rows get ``base + 1 … base + count``."""
    cursor.execute(
        "SELECT setval(pg_get_serial_sequence(%s, 'id'), nextval(pg_get_serial_sequence(%s, 'id')) + %s)",
        [table, table, count],
    )
    return cursor.fetchone()[0] - count - 1


def _chunks(total: int, size: int = CHUNK):
    for lo in range(1, total + 1, size):
        yield lo, min(total, lo + size - 1)


FIRST_NAMES = "Ann Bob Chloe David Emma Farid Grace Hiro Ines Jonas Kira Liam Maya Noah Olga Pavel Quinn Rosa Sam Tara"
LAST_NAMES = (
    "Lee Smith Garcia Muller Rossi Dubois Novak Kowalski Silva Jensen Berg Costa Tanaka Khan Ivanova Murphy Weber "
    "Moreau Lopez Fischer Santos Nagy Horvat Larsen Ahmed Kim Chen Patel Brown Wilson"
)
COMPANIES = [f"{word} {kind}" for word in ("Northwind", "Contoso", "Globex", "Initech", "Umbrella",
                                             "Hooli", "Stark", "Wayne", "Acme", "Tyrell")
             for kind in ("Ltd", "GmbH", "Inc", "SA", "BV")]  # fmt: skip
DOMAINS = "example.com example.org example.net acme.test northwind.test globex.test hooli.test mail.test"
EVENT_TYPES = [
    "capsule_viewed",
    "capsule_viewed",
    "capsule_viewed",
    "time_spent",
    "time_spent",
    "content_accessed",
    "cta_clicked",
    "question_asked",
    "capsule_completed",
    "sentiment",
]
# What CRMs answer when they refuse a record, by error kind (integrations.errors).
FAILURES = [
    ("record", "HubSpot 400: Property values were not valid: email 'x@{n}' is not a valid email address"),
    ("record", 'HubSpot 400: Property "lifecyclestage" has no option "evangelist{n}"'),
    ("record", "HubSpot 409: Contact already exists. Existing ID: {n}"),
    ("record", "HubSpot 400: phone: '+{n}abc' could not be parsed as a phone number"),
    ("configuration", 'HubSpot 400: Property "capsule_score_{n}" does not exist'),
    ("configuration", 'Mapping: the CRM field "industry" takes one of 30 options; got "Space {n}"'),
    ("retryable", "HubSpot 429: You have reached your secondly limit (retries used up after {n} attempts)"),
    ("retryable", "HubSpot 502: Bad gateway from api.hubapi.com (request id {n})"),
    ("retryable", "Timed out after 30 s waiting for api.hubapi.com (attempt {n})"),
]
# A rare kind, failed long ago (before the token was renewed): few rows, with ids older than nearly
# every other row. Filtering or searching for them must not read the outbox in id order to find them.
OLD_SIGN_IN_FAILURES = [
    "HubSpot 401: The OAuth token used to make this call expired 4{n} minute(s) ago.",
    "HubSpot 403: This app hasn't been granted all required scopes (crm.objects.contacts.write)",
]
OLD_SIGN_IN_ROWS = 40
HOLD_REASONS = [
    "Waiting for consent",
    "Score below the threshold (20)",
    "Waiting for the lead to exist in the CRM",
]


def _text_array(values) -> str:
    return "ARRAY[" + ",".join("'" + value.replace("'", "''") + "'" for value in values) + "]"


def _seed_rows(cursor, sizes: Sizes, account: int, connection: int, subscriptions: list[int], rule: int, now, log):
    P, E = sizes.prospects, sizes.events
    params = {"a": account, "c": connection, "now": now}

    def run(label: str, sql: str, total: int | None = None, **extra) -> None:
        t0 = time.monotonic()
        if total is None:
            cursor.execute(sql, {**params, **extra})
            count = cursor.rowcount
        else:
            count = 0
            for lo, hi in _chunks(total):
                cursor.execute(sql, {**params, **extra, "lo": lo, "hi": hi})
                count += cursor.rowcount
                if total > CHUNK:
                    log(f"  {label}: {hi:,} of {total:,}")
        log(f"{label}: {count:,} rows in {time.monotonic() - t0:.1f} s")

    c0 = _reserve_ids(cursor, "crmsync_capsule", sizes.capsules)
    p0 = _reserve_ids(cursor, "crmsync_prospect", P)
    e0 = _reserve_ids(cursor, "crmsync_event", E)
    r0 = _reserve_ids(cursor, "integrations_syncrun", sizes.runs)
    i0 = _reserve_ids(cursor, "integrations_inboundevent", sizes.inbound_events)
    params.update(c0=c0, p0=p0, e0=e0, r0=r0, i0=i0, P=P, E=E, C=sizes.capsules, R=sizes.runs)

    run(
        "capsules",
        """INSERT INTO crmsync_capsule (id, account_id, external_id, title, url, created_at)
           SELECT %(c0)s + g, %(a)s, 'cap_' || g, 'Product tour ' || g, 'https://capsules.example.com/c/' || g,
                  %(now)s - (g * interval '1 day')
           FROM generate_series(1::bigint, %(C)s) g""",
    )
    # Prospect g: one of 20 first names, 30 last names, 50 companies, 8 domains; 1 in 1,000 erased;
    # consent: 10% refused, 10% unknown, 80% given; created over the last year, oldest first.
    run(
        "prospects",
        f"""INSERT INTO crmsync_prospect (id, account_id, email, first_name, last_name, phone, company, job_title,
               attributes, utm, consent_granted, consent_at, consent_source, erased, erased_at, created_at,
               updated_at, last_event_at)
           SELECT %(p0)s + g, %(a)s,
                  CASE WHEN g %% 1000 = 999 THEN NULL
                       ELSE lower(f.first) || '.' || lower(l.last) || g || '@' || d.domain END,
                  CASE WHEN g %% 1000 = 999 THEN '' ELSE f.first END,
                  CASE WHEN g %% 1000 = 999 THEN '' ELSE l.last END,
                  CASE WHEN g %% 3 = 0 THEN '+44 20 7946 ' || lpad((g %% 10000)::text, 4, '0') ELSE '' END,
                  CASE WHEN g %% 1000 = 999 THEN '' ELSE co.company END,
                  CASE g %% 4 WHEN 0 THEN 'CTO' WHEN 1 THEN 'Head of Sales' WHEN 2 THEN 'Marketing lead' ELSE '' END,
                  jsonb_build_object('plan', CASE WHEN g %% 2 = 0 THEN 'pro' ELSE 'free' END),
                  CASE WHEN g %% 5 = 0 THEN '{{"utm_source": "linkedin", "utm_medium": "cpc"}}'::jsonb
                       ELSE '{{}}'::jsonb END,
                  CASE g %% 10 WHEN 0 THEN FALSE WHEN 1 THEN NULL ELSE TRUE END,
                  CASE WHEN g %% 10 = 1 THEN NULL ELSE %(now)s - ((%(P)s - g) * interval '30 seconds') END,
                  CASE WHEN g %% 10 = 1 THEN '' ELSE 'capsule form' END,
                  g %% 1000 = 999,
                  CASE WHEN g %% 1000 = 999 THEN %(now)s - interval '3 days' END,
                  %(now)s - ((%(P)s - g) * interval '30 seconds'),
                  %(now)s - ((%(P)s - g) * interval '30 seconds') + interval '1 hour',
                  %(now)s - ((g %% 720) * interval '1 hour')
           FROM generate_series(%(lo)s::bigint, %(hi)s) g
           CROSS JOIN LATERAL (SELECT ({_text_array(FIRST_NAMES.split())})[g %% 20 + 1] AS first) f
           CROSS JOIN LATERAL (SELECT ({_text_array(LAST_NAMES.split())})[(g / 20) %% 30 + 1] AS last) l
           CROSS JOIN LATERAL (SELECT ({_text_array(COMPANIES)})[g %% 50 + 1] AS company) co
           CROSS JOIN LATERAL (SELECT ({_text_array(DOMAINS.split())})[g %% 8 + 1] AS domain) d""",
        P,
    )
    run(
        "visitors (identified)",
        """INSERT INTO crmsync_visitor (account_id, visitor_id, prospect_id, first_seen_at, identified_at)
           SELECT %(a)s, 'v-' || g, %(p0)s + g, %(now)s - ((%(P)s - g) * interval '30 seconds') - interval '1 day',
                  %(now)s - ((%(P)s - g) * interval '30 seconds')
           FROM generate_series(%(lo)s::bigint, %(hi)s) g""",
        P,
    )
    run(
        "visitors (anonymous)",
        """INSERT INTO crmsync_visitor (account_id, visitor_id, prospect_id, first_seen_at, identified_at)
           SELECT %(a)s, 'anon-' || g, NULL, %(now)s - (g * interval '5 minutes'), NULL
           FROM generate_series(1::bigint, %(A)s) g""",
        A=sizes.anonymous_visitors,
    )
    # Event g: 1 in 20 anonymous; newest last, spread evenly over the last year.
    run(
        "events",
        f"""INSERT INTO crmsync_event (id, account_id, external_id, type, occurred_at, received_at, capsule_id,
               prospect_id, visitor_id, data)
           SELECT %(e0)s + g, %(a)s, 'evt_' || g, ({_text_array(EVENT_TYPES)})[g %% 10 + 1],
                  %(now)s - ((%(E)s - g) * (interval '365 days' / %(E)s)) - interval '2 seconds',
                  %(now)s - ((%(E)s - g) * (interval '365 days' / %(E)s)),
                  %(c0)s + g %% %(C)s + 1,
                  CASE WHEN g %% 20 = 0 THEN NULL ELSE %(p0)s + g %% %(P)s + 1 END,
                  CASE WHEN g %% 20 = 0 THEN 'anon-' || (g %% %(A)s + 1) ELSE 'v-' || (g %% %(P)s + 1) END,
                  CASE WHEN g %% 10 IN (3, 4) THEN jsonb_build_object('seconds', g %% 600)
                       WHEN g %% 10 = 7 THEN jsonb_build_object('text', 'Does it integrate with HubSpot?')
                       WHEN g %% 10 = 9 THEN jsonb_build_object('sentiment', 'positive')
                       ELSE '{{}}'::jsonb END
           FROM generate_series(%(lo)s::bigint, %(hi)s) g""",
        E,
        A=sizes.anonymous_visitors,
    )
    # Record links: 90% of prospects (not those with g % 10 = 0); erased ones "erased"; a few re-linked
    # or deleted in the CRM.
    run(
        "record links",
        """INSERT INTO integrations_recordlink (connection_id, prospect_id, crm_object_type, crm_id, state,
               last_payload_hash, last_sent_fields, last_synced_at, created_at)
           SELECT %(c)s, %(p0)s + g, 'contact', (100000000 + g)::text,
                  CASE WHEN g %% 1000 = 999 THEN 'erased' WHEN g %% 997 = 0 THEN 'relinked'
                       WHEN g %% 1999 = 0 THEN 'deleted' ELSE 'linked' END,
                  md5(g::text), '{"email": "…", "firstname": "…"}'::jsonb,
                  %(now)s - ((g %% 720) * interval '1 hour'),
                  %(now)s - ((%(P)s - g) * interval '30 seconds') + interval '1 minute'
           FROM generate_series(%(lo)s::bigint, %(hi)s) g WHERE g %% 10 <> 0""",
        P,
    )
    # Sync runs: real-time flushes over the last 30 days, every 40th a batch or manual run; the newest
    # a manual run still going.
    run(
        "sync runs",
        """INSERT INTO integrations_syncrun (id, connection_id, mode, state, started_at, finished_at, total,
               processed, created, updated, unchanged, failed, skipped, activities, api_calls, rate_limited, error)
           SELECT %(r0)s + g, %(c)s,
                  CASE WHEN g = %(R)s OR g %% 80 = 0 THEN 'manual' WHEN g %% 40 = 0 THEN 'batch' ELSE 'realtime' END,
                  CASE WHEN g = %(R)s THEN 'running' WHEN g %% 500 = 0 THEN 'failed' ELSE 'done' END,
                  %(now)s - ((%(R)s - g) * (interval '30 days' / %(R)s)) - interval '1 minute',
                  CASE WHEN g = %(R)s THEN NULL
                       ELSE %(now)s - ((%(R)s - g) * (interval '30 days' / %(R)s)) END,
                  CASE WHEN g = %(R)s THEN 5000 ELSE 0 END,
                  CASE WHEN g = %(R)s THEN 1234 ELSE 20 + g %% 80 END,
                  g %% 7, g %% 11, g %% 13, g %% 3, 0, g %% 50, 2 + g %% 9, CASE WHEN g %% 97 = 0 THEN 1 ELSE 0 END,
                  CASE WHEN g %% 500 = 0 THEN 'HubSpot 503: Service unavailable' ELSE '' END
           FROM generate_series(1::bigint, %(R)s) g""",
    )
    # The outbox. First the rare, old sign-in failures (so their ids come before the done rows'), on
    # prospects that have no other person row (g % 10 = 0).
    run(
        "outbox: failed long ago, sign-in",
        f"""INSERT INTO integrations_outboxitem (connection_id, prospect_id, kind, dedupe_key, payload, state,
               attempts, next_attempt_at, last_error, last_error_kind, hold_reason, claimed_by, run_id, created_at,
               updated_at, done_at, result)
           SELECT %(c)s, %(p0)s + g * 10, 'person', 'person:' || (%(p0)s + g * 10), '{{}}', 'failed', 8,
                  t.failed_at, replace(({_text_array(OLD_SIGN_IN_FAILURES)})[g %% 2 + 1], '{{n}}', g::text), 'auth',
                  '', '', NULL, t.failed_at - interval '10 minutes', t.failed_at, NULL, ''
           FROM generate_series(1::bigint, %(n)s) g
           CROSS JOIN LATERAL (SELECT %(now)s - interval '40 days' + g * interval '1 minute' AS failed_at) t""",
        n=OLD_SIGN_IN_ROWS,
    )
    # Person rows: one done row per linked prospect, done over the last 30 days.
    run(
        "outbox: person, done",
        """INSERT INTO integrations_outboxitem (connection_id, prospect_id, kind, dedupe_key, payload, state,
               attempts, next_attempt_at, last_error, last_error_kind, hold_reason, claimed_by, run_id, created_at,
               updated_at, done_at, result)
           SELECT %(c)s, %(p0)s + g, 'person', 'person:' || (%(p0)s + g), '{}', 'done', 1, t.created, '', '', '', '',
                  %(r0)s + g %% (%(R)s - 1) + 1, t.created, t.created + interval '20 seconds',
                  t.created + interval '20 seconds',
                  CASE g %% 3 WHEN 0 THEN 'created' WHEN 1 THEN 'updated' ELSE 'unchanged' END
           FROM generate_series(%(lo)s::bigint, %(hi)s) g
           CROSS JOIN LATERAL (SELECT %(now)s - ((g * 7919) %% 2592000) * interval '1 second' AS created) t
           WHERE g %% 10 <> 0 AND g %% 1000 <> 999""",
        P,
    )
    # Activity rows for the newest events that belong to a prospect (about a month of them).
    na = sizes.activity_rows
    run(
        "outbox: activity, done",
        """INSERT INTO integrations_outboxitem (connection_id, prospect_id, event_id, kind, dedupe_key, payload,
               state, attempts, next_attempt_at, last_error, last_error_kind, hold_reason, claimed_by, run_id,
               created_at, updated_at, done_at, result)
           SELECT %(c)s, %(p0)s + g %% %(P)s + 1, %(e0)s + g, 'activity', 'activity:' || (%(e0)s + g), '{}', 'done',
                  1, t.created, '', '', '', '', %(r0)s + g %% (%(R)s - 1) + 1, t.created,
                  t.created + interval '15 seconds', t.created + interval '15 seconds', 'created'
           FROM generate_series((%(E)s - %(NA)s + %(lo)s)::bigint, %(E)s - %(NA)s + %(hi)s) g
           CROSS JOIN LATERAL (SELECT %(now)s - ((%(E)s - g) * (interval '365 days' / %(E)s)) AS created) t
           WHERE g %% 20 <> 0""",
        na,
        NA=na,
    )
    # Failed rows: what needs a person. Activities of older events (their own dedupe keys), and person
    # rows; eleven kinds of CRM answer, failed over the last 30 days.
    kinds = _text_array(kind for kind, _ in FAILURES)
    messages = _text_array(message for _, message in FAILURES)
    run(
        "outbox: failed",
        f"""INSERT INTO integrations_outboxitem (connection_id, prospect_id, event_id, kind, dedupe_key, payload,
               state, attempts, next_attempt_at, last_error, last_error_kind, hold_reason, claimed_by, run_id,
               created_at, updated_at, done_at, result)
           SELECT %(c)s, %(p0)s + (g * 20 + 1) %% %(P)s + 1,
                  CASE WHEN g %% 3 = 0 THEN NULL ELSE %(e0)s + g * 20 + 1 END,
                  CASE WHEN g %% 3 = 0 THEN 'person' ELSE 'activity' END,
                  CASE WHEN g %% 3 = 0 THEN 'person:' || (%(p0)s + (g * 20 + 1) %% %(P)s + 1)
                       ELSE 'activity:' || (%(e0)s + g * 20 + 1) END,
                  '{{}}', 'failed', 1 + g %% 8, t.failed_at,
                  replace(({messages})[g %% {len(FAILURES)} + 1], '{{n}}', g::text),
                  ({kinds})[g %% {len(FAILURES)} + 1], '', '', %(r0)s + g %% (%(R)s - 1) + 1,
                  t.failed_at - interval '10 minutes', t.failed_at, NULL, ''
           FROM generate_series(1::bigint, %(F)s) g
           CROSS JOIN LATERAL (SELECT %(now)s - ((g * 104729) %% 2592000) * interval '1 second' AS failed_at) t""",
        F=sizes.failed,
    )
    # Open and finished-but-not-done rows: open person rows on distinct prospects (one open row each).
    open_rows = [
        ("pending", sizes.scaled(2_000, 50), 0, "interval '0'"),
        ("retry", sizes.scaled(500, 20), 1, "interval '3 minutes'"),
        ("held", sizes.scaled(3_000, 50), 2, "interval '0'"),
        ("in_flight", 20, 3, "interval '0'"),
        ("skipped", sizes.scaled(1_000, 20), 4, "interval '0'"),
    ]
    holds = _text_array(HOLD_REASONS)
    for state, count, band, delay in open_rows:
        run(
            f"outbox: {state}",
            f"""INSERT INTO integrations_outboxitem (connection_id, prospect_id, kind, dedupe_key, payload, state,
                   attempts, next_attempt_at, last_error, last_error_kind, hold_reason, claimed_by, lease_until,
                   run_id, created_at, updated_at, done_at, result)
               SELECT %(c)s, %(p0)s + pg.n, 'person', 'person:' || (%(p0)s + pg.n), '{{}}', %(state)s,
                      CASE WHEN %(state)s = 'retry' THEN 1 + g %% 4 ELSE 0 END,
                      %(now)s + {delay},
                      CASE WHEN %(state)s = 'retry' THEN 'HubSpot 429: You have reached your secondly limit'
                           ELSE '' END,
                      CASE WHEN %(state)s = 'retry' THEN 'retryable' ELSE '' END,
                      CASE WHEN %(state)s = 'held' THEN ({holds})[g %% 3 + 1] ELSE '' END,
                      CASE WHEN %(state)s = 'in_flight' THEN 'worker-1' ELSE '' END,
                      CASE WHEN %(state)s = 'in_flight' THEN %(now)s + interval '90 seconds' END,
                      NULL, %(now)s - (g * interval '7 seconds'), %(now)s - (g * interval '7 seconds'), NULL, ''
               FROM generate_series(1::bigint, %(n)s) g
               CROSS JOIN LATERAL (SELECT %(band)s * (%(P)s / 5) + g AS n) pg""",
            state=state,
            n=count,
            band=band,
        )
    run(
        "audit entries",
        """INSERT INTO crmsync_auditentry (account_id, actor_id, actor_label, action, object_type, object_id,
               object_repr, changes, ip_address, user_agent, created_at)
           SELECT %(a)s, NULL,
                  CASE WHEN g %% 3 = 0 THEN 'system' WHEN g %% 3 = 1 THEN 'bench-pages-owner@example.com'
                       ELSE 'api-key csk_AbC' END,
                  (ARRAY['sync.retry', 'sync.skip', 'connection.changed', 'api_key.created', 'prospect.erased',
                         'sync.now', 'mapping.changed', 'webhook.replayed'])[g %% 8 + 1],
                  (ARRAY['outboxitem', 'outboxitem', 'connection', 'apikey', 'prospect', 'connection', 'fieldmapping',
                         'webhookdelivery'])[g %% 8 + 1],
                  g::text, 'object ' || g, jsonb_build_object('n', g),
                  CASE WHEN g %% 3 = 1 THEN '203.0.113.7'::inet END,
                  CASE WHEN g %% 3 = 1 THEN 'Mozilla/5.0' ELSE '' END,
                  %(now)s - ((g * 7) %% 31536000) * interval '1 second'
           FROM generate_series(1::bigint, %(n)s) g""",
        n=sizes.audit_entries,
    )
    run(
        "inbound events",
        """INSERT INTO integrations_inboundevent (id, connection_id, event_id, via, object_kind, crm_id, change,
               properties, source, merged_into, occurred_at, received_at, state, reason, error, attempts,
               next_attempt_at, processed_at)
           SELECT %(i0)s + g, %(c)s, 'hs-' || g, CASE WHEN g %% 5 = 0 THEN 'poll' ELSE 'webhook' END, 'contact',
                  (100000000 + g %% %(P)s + 1)::text, CASE WHEN g %% 50 = 0 THEN 'deleted' ELSE 'property' END,
                  jsonb_build_object('lifecyclestage', 'lead'), 'CRM_UI', '',
                  %(now)s - (g * interval '13 seconds'), %(now)s - (g * interval '13 seconds') + interval '2 seconds',
                  CASE WHEN g %% 100 = 0 THEN 'failed' WHEN g %% 3 = 0 THEN 'ignored' ELSE 'processed' END,
                  CASE WHEN g %% 3 = 0 AND g %% 100 <> 0 THEN 'echo' ELSE '' END,
                  CASE WHEN g %% 100 = 0 THEN 'unknown property' ELSE '' END, 1,
                  %(now)s - (g * interval '13 seconds'), %(now)s - (g * interval '13 seconds') + interval '3 seconds'
           FROM generate_series(1::bigint, %(n)s) g""",
        n=sizes.inbound_events,
    )
    run(
        "sync conflicts",
        """INSERT INTO integrations_syncconflict (connection_id, prospect_id, inbound_event_id, source_key, crm_field,
               capsule_value, crm_value, policy, winner, at)
           SELECT %(c)s, %(p0)s + g * 10 %% %(P)s + 1, %(i0)s + g * 10, 'prospect.job_title', 'jobtitle',
                  '"CTO"', '"Chief Technology Officer"', 'crm_wins', 'crm', %(now)s - (g * interval '130 seconds')
           FROM generate_series(1::bigint, %(n)s) g""",
        n=sizes.inbound_events // 10,
    )
    run(
        "webhook deliveries",
        """INSERT INTO integrations_webhookdelivery (subscription_id, account_id, message_id, event_type,
               idempotency_key, payload, state, attempts, next_attempt_at, last_status, last_error,
               response_excerpt, claimed_by, created_at, updated_at, last_attempt_at, delivered_at)
           SELECT (%(subs)s)[g %% 2 + 1], %(a)s, gen_random_uuid(),
                  (ARRAY['prospect.identified', 'prospect.grade_changed', 'event.received'])[g %% 3 + 1],
                  'event:' || g, jsonb_build_object('type', 'event.received', 'data', jsonb_build_object('id', g)),
                  CASE WHEN g %% 200 = 0 THEN 'failed' WHEN g %% 97 = 0 THEN 'retry' ELSE 'delivered' END,
                  CASE WHEN g %% 200 = 0 THEN 8 ELSE 1 END, %(now)s - (g * interval '5 seconds'),
                  CASE WHEN g %% 200 = 0 THEN 410 WHEN g %% 97 = 0 THEN 503 ELSE 200 END,
                  CASE WHEN g %% 200 = 0 THEN 'HTTP 410 Gone' WHEN g %% 97 = 0 THEN 'HTTP 503' ELSE '' END,
                  '{"status": "success"}', '', %(now)s - (g * interval '5 seconds'),
                  %(now)s - (g * interval '5 seconds') + interval '1 second',
                  %(now)s - (g * interval '5 seconds') + interval '1 second',
                  CASE WHEN g %% 200 <> 0 AND g %% 97 <> 0 THEN %(now)s - (g * interval '5 seconds') END
           FROM generate_series(1::bigint, %(n)s) g""",
        n=sizes.deliveries,
        subs=subscriptions,
    )
    run(
        "prospect scores",
        """INSERT INTO scoring_prospectscore (prospect_id, account_id, score, grade, breakdown, top_contributors,
               computed_at)
           SELECT %(p0)s + g, %(a)s, g %% 120,
                  CASE WHEN g %% 120 >= 80 THEN 'Hot' WHEN g %% 120 >= 40 THEN 'Warm' ELSE 'Cold' END,
                  '{}', 'Viewed a capsule', %(now)s - ((g %% 720) * interval '1 hour')
           FROM generate_series(%(lo)s::bigint, %(hi)s) g""",
        P,
    )
    run(
        "grade changes",
        """INSERT INTO scoring_gradechange (account_id, prospect_id, from_grade, to_grade, score, reason, at)
           SELECT %(a)s, %(p0)s + g * 5 %% %(P)s + 1, 'Cold', CASE WHEN g %% 2 = 0 THEN 'Warm' ELSE 'Hot' END,
                  40 + g %% 60, 'ingest', %(now)s - (g * interval '31 seconds')
           FROM generate_series(1::bigint, %(n)s) g""",
        n=sizes.scaled(200_000, 1_000),
    )
    run(
        "trigger firings",
        """INSERT INTO scoring_triggerfiring (rule_id, account_id, prospect_id, event_id, key, condition_type,
               fired_at, actions)
           SELECT %(rule)s, %(a)s, %(p0)s + g %% %(P)s + 1, %(e0)s + %(E)s - g, 'rule:' || %(rule)s || ':' || g,
                  'capsule_viewed', %(now)s - (g * interval '29 seconds'), '[]'
           FROM generate_series(1::bigint, %(n)s) g WHERE (%(E)s - g) %% 20 <> 0""",
        n=sizes.scaled(100_000, 500),
        rule=rule,
    )
