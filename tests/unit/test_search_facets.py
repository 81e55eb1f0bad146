"""The facet words that carry `search --channel/--since` inside the SQLite index."""

from __future__ import annotations

import datetime as dt
import random

from ytpiped.store.sqlite_search import channel_facet, facets, since_facets


def test_since_facets_match_exactly_the_dates_on_or_after_since() -> None:
    rng = random.Random(7)
    start = dt.date(2019, 1, 1)
    days = [start + dt.timedelta(days=i) for i in range((dt.date(2027, 1, 1) - start).days)]
    sinces = ["20200101", "20200301", "20201231", "20210115", "20241201", "20190101",
              *(d.strftime("%Y%m%d") for d in rng.sample(days, 40))]
    for since in sinces:
        wanted = set(since_facets(since, last_year=2026))
        for day in days[::3]:
            d = day.strftime("%Y%m%d")
            assert bool(wanted & set(facets(None, d).split())) == (d >= since), (since, d)


def test_since_facets_stay_few() -> None:
    assert since_facets("20240101", 2026) == ["y2024", "y2025", "y2026"]
    assert since_facets("20240301", 2024) == [f"m2024{m:02d}" for m in range(3, 13)]
    assert len(since_facets("20240331", 2026)) == 1 + 9 + 2


def test_a_channel_is_one_word_without_case_and_odd_dates_carry_none() -> None:
    assert channel_facet("Science Hour ") == channel_facet("science hour")
    assert channel_facet("Science Hour") != channel_facet("Science Hours")
    assert channel_facet("x").isalnum()
    assert facets("Ünïcode Ch", "2024-01-05") == channel_facet("ünïcode ch")
    assert facets(None, None) == "" and facets("  ", "2024") == ""
