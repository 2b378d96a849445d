"""Retention: what the store forgets, and when.

The policy (``TRIAGE_LEAD_KEEP_PAYLOAD_DAYS``, default 14):

* **Payloads of finished deliveries** (their job is ``done``) are pruned once the delivery was received more
  than the setting's days ago: ``deliveries.payload`` becomes ``'{}'``. The delivery's row stays, with its
  id, event, action, repository and thread: the id is how a redelivery is recognised and answered
  ``duplicate``, forever. GitHub lets a delivery be redelivered for 3 days, so 14 leaves a margin for
  looking into what happened.
* **Payloads of failed jobs are kept** until the job is retried (``/retry``, a redelivery, ``python -m bot
  jobs``) and then finishes; queued and running jobs keep theirs too. There is no way yet to dismiss a
  failed job: one never retried keeps its payload.
* **On PostgreSQL, procrastinate's succeeded jobs** of the bot's queue whose last event is older than the
  same setting are deleted, with their events (``procrastinate_jobs``, ``procrastinate_events``). Failed
  or unfinished procrastinate jobs are kept.
* **A pull request's review findings** (converging reviews) are deleted 90 days after their last save, or
  after the setting's days if that is longer: a pull request quiet for longer is reviewed afresh on its next
  push, its findings reported as new once more. Those of a pull request with a finding still open are kept
  until its merge, however late, files that finding as tech debt; the merge then lets them go. A pull
  request closed without a merge has its close recorded (``pull_findings.closed_at``, cleared if it is
  reopened): its findings go 90 days after the close (or the setting's days if longer), open ones too, since
  the merge that would file them is not coming. Reopened later than that, it is reviewed afresh. A close or
  reopen delivered late (a redelivery, a retried job) never undoes a later one: GitHub's ``updated_at`` orders them
  (``pull_findings.state_at``), and a close processed before any review saved findings is kept on an empty row.
* **Kept for good:** workflow runs and their steps, what the bot posted (markers), model usage, job rows,
  and each budget key's running total (a run waiting weeks for an approval keeps what it spent; settled
  reservations are pruned with payloads, but a cap counts the total, never their sum).

The pass runs at start-up and then every hour, in batches of short transactions, so deliveries arriving
meanwhile never wait behind it. Each pass logs one line with what it pruned. SQLite reuses the freed
pages for new deliveries; the file itself does not shrink (``VACUUM`` it by hand if that matters).
"""

from __future__ import annotations

import logging

from bot.run import periodic
from bot.store import Store, StoreUnavailable

log = logging.getLogger(__name__)

DAY = 86_400.0


async def prune_once(store: Store, *, keep_days: float) -> dict[str, int] | None:
    """One pass; its counts, or None when the store could not be pruned (logged, never raised)."""
    try:
        counts = await store.prune(keep_days * DAY)
    except StoreUnavailable as exc:  # the next pass catches up: nothing is lost by waiting an hour
        log.warning("retention: store unavailable, will try again: %s", exc)
        return None
    except Exception:
        log.exception("retention: pruning failed, will try again")
        return None
    log.info("retention: pruned %s (older than %g days)",
             ", ".join(f"{n} {what}" for what, n in counts.items()) or "nothing", keep_days)
    return counts


async def run_forever(store: Store, *, keep_days: float, every: float = 3600.0) -> None:
    """Prune now and then every ``every`` seconds, until cancelled."""
    await periodic.every(every, "retention", lambda: prune_once(store, keep_days=keep_days), now=True)
