"""Backends: tests taking the `db` fixture run on SQLite and on PostgreSQL, except those
marked `sqlite_only` (they read the SQLite file itself)."""

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skipped = [
        item
        for item in items
        if item.get_closest_marker("sqlite_only") and "postgres" in _params(item)
    ]
    if skipped:
        config.hook.pytest_deselected(items=skipped)
        items[:] = [item for item in items if item not in skipped]


def _params(item: pytest.Item) -> set[str]:
    callspec = getattr(item, "callspec", None)
    return {str(v) for v in callspec.params.values()} if callspec else set()
