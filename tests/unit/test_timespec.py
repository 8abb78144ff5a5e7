"""Durations and moments as people type them (`hitl snooze --until`, `"until"` over HTTP)."""

import pytest

from hitl.service.timespec import parse_moment

NOW = 1_800_000_000.0


def test_a_moment_is_a_duration_from_now_or_an_iso_time() -> None:
    assert parse_moment("2h", NOW) == NOW + 7200
    assert parse_moment("2027-01-15T08:00:00Z", NOW) == 1_800_000_000.0


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_an_iso_time_with_no_date_in_utc_is_refused_as_a_moment(text: str) -> None:
    with pytest.raises(ValueError, match="has no date in UTC"):
        parse_moment(text, NOW)
