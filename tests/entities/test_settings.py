"""The entities settings that bound the event journal."""

from __future__ import annotations

import pytest

from bob_common.config import ConfigError, EntitiesSettings


def test_the_journal_keeps_100000_events_unless_told_otherwise():
    assert EntitiesSettings.from_env({}).events_keep == 100_000
    assert EntitiesSettings.from_env({"BOB_EVENTS_KEEP": "500"}).events_keep == 500


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_a_journal_bound_below_one_or_not_a_number_is_refused(value):
    with pytest.raises(ConfigError, match="BOB_EVENTS_KEEP"):
        EntitiesSettings.from_env({"BOB_EVENTS_KEEP": value})
