"""The web process's database connection pools (Django's psycopg pool, gtvision/db_pool.py).

django-prometheus's ``django_db_new_connections_total`` counts borrows from the pool (Django's
``get_new_connection`` takes one from it); the physical connections, the idle ones and the
borrowers waiting come from ``psycopg_pool``'s own statistics, read at scrape time. Process-local:
the pools of the process answering the scrape (each process has its own).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.db import connections
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

# (metric, psycopg_pool statistic, help); a statistic that never happened is absent (0).
_GAUGES = (
    ("gtvision_db_pool_size", "pool_size", "Open connections of the pool (in use and idle)."),
    ("gtvision_db_pool_idle", "pool_available", "Idle connections ready to be borrowed."),
    ("gtvision_db_pool_max_size", "pool_max", "Most connections the pool opens."),
    ("gtvision_db_pool_waiting", "requests_waiting", "Borrowers waiting for a connection."),
)
_COUNTERS = (
    ("gtvision_db_pool_connections_opened", "connections_num", "Connections the pool opened."),
    (
        "gtvision_db_pool_connection_errors",
        "connections_errors",
        "Failed attempts of the pool to open a connection.",
    ),
    (
        "gtvision_db_pool_request_errors",
        "requests_errors",
        "Borrows that failed (timed out waiting for a connection, or the pool was closed).",
    ),
)


class PoolCollector:
    """``psycopg_pool`` statistics of every pooled database alias of this process."""

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        gauges = [GaugeMetricFamily(name, text, labels=["alias"]) for name, _key, text in _GAUGES]
        counters = [
            CounterMetricFamily(name, text, labels=["alias"]) for name, _key, text in _COUNTERS
        ]
        for alias, config in settings.DATABASES.items():
            if not config.get("OPTIONS", {}).get("pool"):
                continue
            pool = connections[alias].pool  # created (not opened) on first use: no query
            if pool is None:
                continue
            stats = pool.get_stats()
            for family, (_name, key, _text) in zip(
                gauges + counters, _GAUGES + _COUNTERS, strict=True
            ):
                family.add_metric([alias], stats.get(key, 0))
        yield from gauges
        yield from counters


POOL_COLLECTOR = PoolCollector()
