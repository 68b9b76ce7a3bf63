"""The scheduler's timetable (``python manage.py run_scheduler``, built on RQ's cron).

Every entry is safe to run twice at once (two schedulers): the sweep is idempotent and batch
windows are claimed atomically in the database (integrations.sync.jobs.claim_batch_window).
"""

from rq import cron

from integrations.sync import jobs

# Safety net for real-time sync: reap dead workers' leases, kick connections with due work.
cron.register(jobs.sweep, "default", interval=15)
# Start hourly/daily batch runs whose window opened.
cron.register(jobs.dispatch_due_batches, "default", interval=60)
