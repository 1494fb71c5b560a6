"""Changes a stream's status on request, as the media supervisor does (a separate process).

``python -m bench.publisher --stream-id ID`` (Django set up from the environment, so
``REDIS_URL`` selects channels_redis). For each tag read from stdin it commits
``streaming.services.set_stream_status(ID, "ERROR", tag)`` — the supervisor's call, whose
event is published after commit — and prints ``tag <time.monotonic() at commit>``.
``--mode pg`` (``NOTIFY``) and ``--mode redis`` (``PUBLISH``) are the baselines' senders.
"""

from __future__ import annotations

import argparse
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["django", "pg", "redis"], default="django")
    parser.add_argument("--stream-id", type=int)
    parser.add_argument("--target", help="pg: conninfo|channel; redis: url|channel")
    args = parser.parse_args()
    send = _django(args.stream_id) if args.mode == "django" else _raw(args.mode, args.target)
    print("READY", flush=True)
    for line in sys.stdin:
        tag = line.strip()
        if not tag:
            continue
        if tag == "DONE":
            break
        at = send(tag)
        print(f"{tag} {at:.6f}", flush=True)


def _django(stream_id: int):
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gtvision.settings")
    django.setup()
    from django.db import transaction

    from gtvision import events
    from streaming import services

    events.send_now  # noqa: B018 - imported before the first send

    def send(tag: str) -> float:
        marks = []
        with transaction.atomic():
            transaction.on_commit(lambda: marks.append(time.monotonic()))  # runs first
            services.set_stream_status(stream_id, "ERROR", tag)
        return marks[0] if marks else float("nan")

    return send


def _raw(mode: str, target: str):
    address, channel = target.rsplit("|", 1)
    if mode == "pg":
        import psycopg

        conn = psycopg.connect(address, autocommit=True)

        def send(tag: str) -> float:
            conn.execute("SELECT pg_notify(%s, %s)", [channel, tag])
            return time.monotonic()

        return send
    import redis

    client = redis.Redis.from_url(address)

    def send(tag: str) -> float:
        client.publish(channel, tag)
        return time.monotonic()

    return send


if __name__ == "__main__":
    main()
