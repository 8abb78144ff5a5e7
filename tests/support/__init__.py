"""What the tests share: the harness, fakes, helpers that run our processes, and plugins those
processes load. No tests and no fixtures live here (fixtures are in the `conftest.py` files)."""
