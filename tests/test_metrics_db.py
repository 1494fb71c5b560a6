"""Database-side metrics (django-prometheus's PostgreSQL backend, on Django's psycopg pool)
through a real ``manage.py serve``, in single-process and multiprocess mode, checked by
``promtool check metrics``."""

from __future__ import annotations

import pytest
import requests
from django.conf import settings
from django.db import connection, connections
from prometheus_client.parser import text_string_to_metric_families

from gtvision.metrics import exposition
from tests.factories import CameraFactory, UserFactory
from tests.live_web import bearer, running_web
from tests.test_metrics import promtool_check_metrics

pytestmark = pytest.mark.django_db(transaction=True)


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of an exposition: (name, labels) -> value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict[tuple[str, frozenset], float], name: str, **labels: str) -> float:
    wanted = {"vendor": "postgresql", **labels}
    return sum(
        v for (n, lab), v in found.items() if n == name and wanted.items() <= dict(lab).items()
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["single-process", "multiprocess"])
def test_served_metrics_count_real_database_work(mode, tmp_path):
    user = UserFactory()
    camera = CameraFactory(prefeitura=user.prefeitura)
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)} if mode == "multiprocess" else {}
    with running_web(**env) as (url, _web):
        headers = bearer(user)
        for path in ("/api/cameras/", f"/api/cameras/{camera.pk}/", "/api/cameras/"):
            assert requests.get(f"{url}{path}", headers=headers, timeout=10).status_code == 200
        first = requests.get(f"{url}/metrics", timeout=10)
        assert first.status_code == 200
        checked = promtool_check_metrics(first.content)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        before = samples(first.text)
        executed = value(before, "django_db_execute_total", alias="default")
        assert executed > 0
        # With the pool, a "new connection" is a borrow from it: at least one per request.
        assert value(before, "django_db_new_connections_total", alias="default") >= 3
        assert value(before, "django_db_query_duration_seconds_count", alias="default") > 0
        assert value(before, "django_db_query_duration_seconds_sum", alias="default") > 0
        assert value(before, "django_db_new_connection_errors_total", alias="default") == 0
        # The pool's own statistics: physical connections, fewer than the borrows.
        opened = before[
            ("gtvision_db_pool_connections_opened_total", frozenset({("alias", "default")}))
        ]
        assert 1 <= opened < value(before, "django_db_new_connections_total", alias="default")
        size = before[("gtvision_db_pool_size", frozenset({("alias", "default")}))]
        assert size >= 1
        assert before[("gtvision_db_pool_max_size", frozenset({("alias", "default")}))] == (
            settings.DB_POOL_MAX_SIZE
        )
        # The route-labelled HTTP histogram is still ours (no django-prometheus middleware).
        assert "gtvision_http_request_duration_seconds_count" in first.text
        assert "django_http_" not in first.text

        # More API requests: more statements.
        for _ in range(3):
            requests.get(f"{url}/api/cameras/", headers=headers, timeout=10)
        after = samples(requests.get(f"{url}/metrics", timeout=10).text)
        assert value(after, "django_db_execute_total", alias="default") > executed


def test_database_errors_are_counted_by_type():
    def errors() -> float:
        found = samples(exposition().decode())
        return value(found, "django_db_errors_total", alias="default", type="UndefinedTable")

    before = errors()
    with pytest.raises(Exception, match="no_such_table"), connection.cursor() as cursor:
        cursor.execute("SELECT * FROM no_such_table")
    assert errors() == before + 1


@pytest.mark.django_db(transaction=True, databases=["default", "channels_postgres"])
def test_both_aliases_use_the_instrumented_pooled_backend():
    for alias in ("default", "channels_postgres"):
        wrapper = connections[alias]
        assert type(wrapper).__module__ == "django_prometheus.db.backends.postgresql.base"
        assert wrapper.pool is not None  # Django's psycopg pool, from gtvision/db_pool.py
    with connections["channels_postgres"].cursor() as cursor:
        cursor.execute("SELECT 1")  # borrows a connection: its set-up statements count too
        found = samples(exposition().decode())
        cursor.execute("SELECT 1")
    after = samples(exposition().decode())
    assert value(after, "django_db_execute_total", alias="channels_postgres") == (
        value(found, "django_db_execute_total", alias="channels_postgres") + 1
    )
