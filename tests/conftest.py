"""Shared test fixtures. Areas keep their own fixtures in tests/<area>_fixtures.py or conftest."""
