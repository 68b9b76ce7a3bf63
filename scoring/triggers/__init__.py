"""Workflow triggers: rules that watch capsule activity and, when their condition holds, fire actions.

- ``conditions`` / ``action_types``: what a rule may say (registries with per-type option checks);
- ``evaluate``: the pure decision which rules fire for an event, a grade change or a schedule tick;
- ``facts``: the per-event aggregates (total time, score, first view) ``evaluate`` needs, set-based;
- ``firing`` and ``actions``: one ``TriggerFiring`` per firing key and its actions (outbox rows,
  e-mails after commit, outgoing webhooks), all in the caller's transaction;
- ``hooks``: the ingest hook and the grade listener; ``jobs``: the periodic low-engagement check.

docs/TRIGGERS.md describes every condition and action for people.
"""
