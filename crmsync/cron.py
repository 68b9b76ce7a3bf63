"""The scheduler's timetable (``python manage.py run_scheduler``, built on RQ's cron).

Every entry is safe to run twice at once (two schedulers): the sweep is idempotent, batch windows
and poll windows are claimed atomically in the database, deliveries are claimed with SKIP LOCKED.
Without Redis, ``serve_local`` runs the same TIMETABLE on a thread.
"""

from rq import cron

from integrations import dashboard
from integrations.inbound import jobs as inbound_jobs
from integrations.providers.zoho import channels as zoho_channels
from integrations.sync import digest, jobs
from integrations.webhooks_out import jobs as webhook_jobs
from scoring.triggers import jobs as trigger_jobs

# (job, queue, seconds between runs)
TIMETABLE = (
    # Safety net for real-time sync: reap dead workers' leases, kick connections with due work.
    (jobs.sweep, "default", 15),
    # Start hourly/daily batch runs whose window opened.
    (jobs.dispatch_due_batches, "default", 60),
    # One e-mail per account about records that failed since the last one.
    (digest.send_failure_digests, "default", 3600),
    # Low-engagement workflow triggers.
    (trigger_jobs.evaluate_low_engagement, "default", 3600),
    # Outgoing webhooks: due retries and lost kicks.
    (webhook_jobs.deliver_due, "default", 15),
    # Inbound CRM changes: due polls and lost kicks.
    (inbound_jobs.tick, "default", 60),
    # Status pages: count settled hours into the cache so no page view counts a month of rows.
    (dashboard.warm_figures, "default", 300),
    # Zoho notification channels expire within a day: renew them well before.
    (zoho_channels.renew_due_channels, "default", 3600),
)

for job, queue, every in TIMETABLE:
    cron.register(job, queue, interval=every)
