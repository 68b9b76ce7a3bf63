"""The Pipedrive pacer: the token's burst window, and the lower one of its search endpoints."""

from __future__ import annotations

import time

from integrations.providers.pipedrive import pacing
from integrations.registry import RateLimitSpec


def test_search_calls_are_recognised():
    assert pacing.is_search("https://x.pipedrive.com/api/v2/persons/search?term=a@b.com")
    assert pacing.is_search("https://x.pipedrive.com/api/v2/itemSearch?term=a")
    assert not pacing.is_search("https://x.pipedrive.com/api/v2/persons/12")


def test_the_search_pacer_is_its_own_and_keeps_ten_per_two_seconds():
    pacing.forget_pacers()
    spec = RateLimitSpec(requests=80, window_seconds=2)
    search = pacing.search_pacer_for("https://x.pipedrive.com", "t" * 40)
    assert search is not pacing.pacer_for("https://x.pipedrive.com", "t" * 40, spec)
    assert search is pacing.search_pacer_for("https://x.pipedrive.com/", "t" * 40)
    assert search.allowed == 10 and search.window == 2.0
    pacing.forget_pacers()


def test_a_call_counts_from_its_answer_so_a_slow_arrival_cannot_earn_a_429():
    pacer = pacing.Pacer(RateLimitSpec(requests=1, window_seconds=0.2, headroom=1.0))
    pacer.acquire()
    time.sleep(0.15)  # the answer comes late: the CRM may have counted the call only now
    pacer.answered()
    time.sleep(0.1)  # 0.25 s after the send, 0.1 s after the answer
    pacer.acquire()
    assert pacer.waited_seconds >= 0.05  # waited for the window measured from the answer, not the send
