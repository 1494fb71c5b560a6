"""Recorder nodes share the cameras through leases in PostgreSQL (docs/scaling.md).

Each media supervisor is a node (``RecorderNode``: a unique name, a capacity). A camera that
needs a pull (recorded, watched, read by LPR) is pulled by the node holding its
``CameraLease``; every pass (``SUPERVISOR_INTERVAL_S``) a node:

1. beats (``heartbeat_at``) and renews its leases for ``LEASE_TTL_S``, one UPDATE that
   matches the generation it claimed: a lease it no longer holds (another node claimed it
   after it expired) is *fenced*: that camera's FFmpeg is stopped at once;
2. computes the fair share of every live node (``shares``: the cameras spread evenly over the
   live nodes, each capped by its capacity);
3. gives back a few cameras when a node is below its share and no free camera is left for it
   (``releases_for``: deterministic, so the nodes agree on who gives; bounded churn);
4. claims free leases (never held, given back, or expired) up to its share with
   ``SELECT ... FOR UPDATE SKIP LOCKED``, bumping their generation.

A lease given back is claimable ``HANDOVER_GAP_S`` later: the old owner's FFmpeg has stopped
and its last segment is indexed before it gives a lease back, and the new owner's first
segment cannot be named after the same UTC second (segment names are the second).

A node's name is held by a session advisory lock on its row for as long as it runs: a second
process with the same name refuses to start, and a node started again after a crash (same
name, the old session gone) adopts its own leases at once instead of waiting for the TTL.

Times are the database's (``now()``): the nodes' clocks never matter, except the node's own
monotonic clock to know when its leases lapse without renewal (``deadline``).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection

logger = logging.getLogger(__name__)

NODE_LOCK_CLASS = 0x67746E64  # pg_try_advisory_lock(class, node id): "gtnd"
HANDOVER_GAP_S = 1.0
# Margin under the TTL after which a node that could not renew considers its leases lost.
RENEW_MARGIN_S = 2.0
# A camera claimed less than this ago is given back to rebalance only if nothing else can be.
SETTLE_S = 30.0
# A camera free for this long is claimed by any node under its high share (see ``sync``).
FREE_FOR_ANYONE_S = 10.0
FORGET_NODES_AFTER = "7 days"  # node rows without leases and heartbeat are deleted after this


class NodeNameTaken(Exception):
    """Another running process already uses this node name."""


@dataclass(frozen=True)
class Share:
    low: int  # every node is given at least this (floor of the fair share)
    high: int  # and claims at most this (ceiling), capped by its capacity


@dataclass(frozen=True)
class NodeLoad:
    node_id: int
    name: str
    capacity: int
    live: bool
    held: int


@dataclass
class Sync:
    """What one pass of ``LeaseKeeper.sync`` decided."""

    held: set[int] = field(default_factory=set)  # cameras this node pulls now
    claimed: set[int] = field(default_factory=set)  # of which claimed in this pass
    fenced: set[int] = field(default_factory=set)  # lost to another node: stop at once
    release: set[int] = field(default_factory=set)  # to give back once stopped (rebalance)
    unwanted: set[int] = field(default_factory=set)  # held but no longer needed: give back
    live_nodes: int = 1
    share: Share = Share(0, 0)


def shares(demand: int, capacities: dict[str, int]) -> dict[str, Share]:
    """Each live node's fair share of ``demand`` cameras: ``demand / nodes`` (water-filled
    over the capacities: a node capped by its capacity leaves the rest to the others),
    rounded down (``low``) and up (``high``). The lows add up to at most ``demand`` and the
    highs to at least it (or to the total capacity)."""
    if not capacities:
        return {}
    remaining = float(demand)
    level = math.inf
    ordered = sorted(capacities.values())
    for index, capacity in enumerate(ordered):
        even = remaining / (len(ordered) - index)
        if capacity >= even:
            level = even
            break
        remaining -= capacity
    result = {}
    for name, capacity in capacities.items():
        if level == math.inf:
            result[name] = Share(capacity, capacity)
        else:
            result[name] = Share(min(capacity, math.floor(level)), min(capacity, math.ceil(level)))
    return result


def releases_for(
    me: str, held: dict[str, int], fair: dict[str, Share], free: int, per_tick: int
) -> int:
    """How many cameras ``me`` gives back now so that nodes under their low share get some.

    The deficit (what the nodes under their low share miss) minus the free cameras left is
    spread over the nodes above their low share, the most loaded first then by name, at most
    ``per_tick`` each: every node computes the same plan from the same figures."""
    deficit = sum(max(0, fair[name].low - held.get(name, 0)) for name in fair) - max(0, free)
    if deficit <= 0:
        return 0
    spare = {name: held.get(name, 0) - fair[name].low for name in fair}
    donors = sorted((name for name in fair if spare[name] > 0), key=lambda n: (-spare[n], n))
    given = dict.fromkeys(donors, 0)
    while deficit > 0:
        progressed = False
        for name in donors:
            if deficit > 0 and given[name] < min(per_tick, spare[name]):
                given[name] += 1
                deficit -= 1
                progressed = True
        if not progressed:
            break
    return given.get(me, 0)


def _interval(seconds: float) -> str:
    return f"{float(seconds)} seconds"


class LeaseKeeper:
    """One node's side of the lease protocol, on Django's connection (the supervisor's)."""

    def __init__(
        self,
        name: str | None = None,
        *,
        capacity: int | None = None,
        ttl_s: float | None = None,
        internal_url: str | None = None,
        per_tick: int | None = None,
    ) -> None:
        self.name = name or settings.NODE_NAME
        self.capacity = settings.NODE_CAPACITY if capacity is None else capacity
        self.ttl_s = settings.LEASE_TTL_S if ttl_s is None else ttl_s
        self.internal_url = settings.NODE_INTERNAL_URL if internal_url is None else internal_url
        self.per_tick = settings.LEASE_REBALANCE_PER_TICK if per_tick is None else per_tick
        self.node_id: int | None = None
        self.held: dict[int, int] = {}  # camera -> generation claimed
        self.claimed_at: dict[int, float] = {}  # camera -> monotonic time of the claim
        self.rows: set[int] = set()  # cameras known to have a lease row
        self.renewed_at: float | None = None  # monotonic, sent before the last renewal
        self.alone = True  # no other live node at the last pass
        self.locked_on: object | None = None  # the DB-API connection holding the name lock

    # -- identity -----------------------------------------------------------------------

    def register(self) -> int:
        """Create or refresh this node's row and take its name lock (``NodeNameTaken``)."""
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO streaming_recordernode
                    (name, host, pid, capacity, internal_url, started_at, heartbeat_at, draining)
                VALUES (%s, %s, %s, %s, %s, now(), now(), false)
                ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
                RETURNING id
                """,
                [self.name, socket.gethostname(), os.getpid(), self.capacity, self.internal_url],
            )
            self.node_id = cursor.fetchone()[0]
        self.hold_name()
        with connection.cursor() as cursor:
            cursor.execute(
                """
                UPDATE streaming_recordernode SET host = %s, pid = %s, capacity = %s,
                    internal_url = %s, started_at = now(), heartbeat_at = now(), draining = false
                WHERE id = %s
                """,
                [socket.gethostname(), os.getpid(), self.capacity, self.internal_url,
                 self.node_id],
            )  # fmt: skip
            cursor.execute(
                f"""
                DELETE FROM streaming_recordernode n
                WHERE heartbeat_at < now() - interval '{FORGET_NODES_AFTER}'
                  AND NOT EXISTS (SELECT 1 FROM streaming_cameralease l WHERE l.node_id = n.id)
                """  # noqa: S608 - a constant
            )
        return self.node_id

    def hold_name(self) -> None:
        """Take (again, after a lost connection) the session lock on this node's name."""
        if self.locked_on is not None and self.locked_on is connection.connection:
            return
        if self.node_id is None:
            self.register()
            return
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [NODE_LOCK_CLASS, self.node_id])
            if not cursor.fetchone()[0]:
                self.locked_on = None
                raise NodeNameTaken(
                    f"another media supervisor named {self.name!r} is running (set a unique "
                    "GTV_NODE_NAME for each node)"
                )
        self.locked_on = connection.connection

    # -- the pass -----------------------------------------------------------------------

    def deadline(self) -> float | None:
        """Monotonic time after which this node's leases may be someone else's (None: it
        holds none it renewed). Conservative: counted from before the renewal was sent."""
        if self.renewed_at is None:
            return None
        return self.renewed_at + self.ttl_s - min(RENEW_MARGIN_S, self.ttl_s / 4)

    def sync(self, wanted: set[int]) -> Sync:
        """Beat, renew (fencing), rebalance and claim for the cameras that need a pull."""
        self.hold_name()
        result = Sync()
        sent = time.monotonic()
        self._beat()
        result.fenced = self._renew()
        self.renewed_at = sent
        loads = self._loads(wanted)
        live = {load.name: load.capacity for load in loads if load.live}
        live.setdefault(self.name, self.capacity)
        fair = shares(len(wanted), live)
        held_by = {load.name: load.held for load in loads if load.live}
        mine = {camera for camera in self.held if camera in wanted}
        held_by[self.name] = len(mine)
        free = len(wanted) - sum(held_by.values())
        share = fair[self.name]
        result.live_nodes = len(live)
        result.share = share
        self.alone = len(live) == 1
        result.unwanted = set(self.held) - wanted
        give = releases_for(self.name, held_by, fair, free, self.per_tick)
        give = max(give, len(mine) - self.capacity)
        if give > 0:
            # Settled cameras first (a camera claimed moments ago is still starting: moving it
            # again would restart it twice), the most recently claimed of them first.
            now = time.monotonic()
            fresh = {c for c in mine if now - self.claimed_at.get(c, 0.0) < SETTLE_S}
            order = sorted(mine, key=lambda c: (c in fresh, -self.claimed_at.get(c, 0.0), -c))
            result.release = set(order[:give])
        everyone_at_low = all(held_by.get(name, 0) >= fair[name].low for name in fair)
        target = share.high if everyone_at_low else share.low
        room = target - (len(mine) - len(result.release))
        if room > 0 and free > 0:
            result.claimed = self._claim(wanted - set(self.held), room)
        # A camera left free for long (the node it was left for does not take it): anyone
        # with room up to its high share takes it, so no camera stays unpulled.
        room = share.high - (len(mine) - len(result.release) + len(result.claimed))
        if not everyone_at_low and room > 0 and free > len(result.claimed):
            result.claimed |= self._claim(
                wanted - set(self.held), room, free_for_s=FREE_FOR_ANYONE_S
            )
        result.held = (set(self.held) & wanted) - result.release
        self._forget_lapsed(wanted)
        return result

    def release(self, cameras: set[int]) -> None:
        """Give these leases back (their FFmpeg stopped and their last segment indexed)."""
        cameras = {camera for camera in cameras if camera in self.held}
        if not cameras:
            return
        ids = sorted(cameras)
        with connection.cursor() as cursor:
            cursor.execute(
                """
                UPDATE streaming_cameralease l SET node_id = NULL, expires_at = now()
                FROM unnest(%s::bigint[], %s::bigint[]) AS h(camera_id, generation)
                WHERE l.camera_id = h.camera_id AND l.generation = h.generation
                  AND l.node_id = %s
                """,
                [ids, [self.held[c] for c in ids], self.node_id],
            )
        for camera in ids:
            self.held.pop(camera, None)
            self.claimed_at.pop(camera, None)
        if cameras:
            _wake_nodes()

    def drain(self) -> None:
        """Leaving (SIGTERM, after the FFmpeg stopped): give every lease back at once and
        mark the node draining, then wake the other nodes to claim them."""
        if self.node_id is None:
            return
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE streaming_recordernode SET draining = true, heartbeat_at = now() "
                "WHERE id = %s",
                [self.node_id],
            )
            cursor.execute(
                "UPDATE streaming_cameralease SET node_id = NULL, expires_at = now() "
                "WHERE node_id = %s",
                [self.node_id],
            )
        self.held.clear()
        self.claimed_at.clear()
        self.renewed_at = None
        _wake_nodes()

    def forget(self) -> None:
        """Every lease is lost (the name lock went to another process)."""
        self.held.clear()
        self.claimed_at.clear()
        self.renewed_at = None

    # -- statements ---------------------------------------------------------------------

    def _beat(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE streaming_recordernode SET heartbeat_at = now(), draining = false, "
                "pid = %s WHERE id = %s",
                [os.getpid(), self.node_id],
            )
            if cursor.rowcount == 0:  # the row was deleted by hand: register again
                self.locked_on = None
                self.node_id = None
                self.register()

    def _renew(self) -> set[int]:
        """Renew what this node holds; returns the cameras it lost (fenced)."""
        if not self.held:
            return set()
        ids = sorted(self.held)
        with connection.cursor() as cursor:
            cursor.execute(
                """
                UPDATE streaming_cameralease l SET expires_at = now() + %s::interval
                FROM unnest(%s::bigint[], %s::bigint[]) AS h(camera_id, generation)
                WHERE l.camera_id = h.camera_id AND l.generation = h.generation
                  AND l.node_id = %s
                RETURNING l.camera_id
                """,
                [_interval(self.ttl_s), ids, [self.held[c] for c in ids], self.node_id],
            )
            kept = {row[0] for row in cursor.fetchall()}
        lost = set(ids) - kept
        for camera in lost:
            self.held.pop(camera, None)
            self.claimed_at.pop(camera, None)
        if lost:
            logger.warning(
                "node %s: lost the lease of %d camera(s) to another node: stopping them (%s)",
                self.name,
                len(lost),
                ", ".join(str(c) for c in sorted(lost)[:20]),
            )
        return lost

    def _loads(self, wanted: set[int]) -> list[NodeLoad]:
        """Every node with how many of the wanted cameras it holds unexpired leases on."""
        with connection.cursor() as cursor:
            cursor.execute(
                """
                WITH w AS (SELECT unnest(%s::bigint[]) AS camera_id),
                held AS (
                    SELECT l.node_id, count(*) AS n FROM streaming_cameralease l
                    JOIN w ON w.camera_id = l.camera_id
                    WHERE l.node_id IS NOT NULL AND l.expires_at > now()
                    GROUP BY l.node_id
                )
                SELECT n.id, n.name, n.capacity,
                       n.heartbeat_at > now() - %s::interval AND NOT n.draining,
                       COALESCE(held.n, 0)
                FROM streaming_recordernode n LEFT JOIN held ON held.node_id = n.id
                """,
                [sorted(wanted), _interval(self.ttl_s)],
            )
            return [NodeLoad(*row) for row in cursor.fetchall()]

    def _forget_lapsed(self, wanted: set[int]) -> None:
        """Leases a dead node left on cameras that no longer need a pull: unassigned, so the
        node does not look as if it still had cameras (``/health``)."""
        with connection.cursor() as cursor:
            cursor.execute(
                """
                UPDATE streaming_cameralease SET node_id = NULL
                WHERE node_id IS NOT NULL AND expires_at < now() - %s::interval
                  AND NOT (camera_id = ANY(%s::bigint[]))
                """,
                [_interval(self.ttl_s), sorted(wanted)],
            )

    def _claim(
        self, cameras: set[int], limit: int, *, free_for_s: float = HANDOVER_GAP_S
    ) -> set[int]:
        """Claim up to ``limit`` leases among ``cameras`` free for at least ``free_for_s``
        (rows created as needed)."""
        if not cameras or limit <= 0:
            return set()
        missing = sorted(cameras - self.rows)
        with connection.cursor() as cursor:
            if missing:
                cursor.execute(
                    """
                    INSERT INTO streaming_cameralease (camera_id, node_id, generation, expires_at)
                    SELECT c.id, NULL, 0, '-infinity' FROM cidades_camera c
                    WHERE c.id = ANY(%s::bigint[])
                    ON CONFLICT (camera_id) DO NOTHING
                    """,
                    [missing],
                )
                self.rows.update(missing)
            # Free: given back or expired more than HANDOVER_GAP_S ago (never held:
            # '-infinity'), or this node's own from before a restart (the name lock
            # proves that process is gone).
            cursor.execute(
                """
                WITH free AS (
                    SELECT camera_id FROM streaming_cameralease
                    WHERE camera_id = ANY(%s::bigint[])
                      AND (expires_at < now() - %s::interval OR node_id = %s)
                    ORDER BY camera_id LIMIT %s
                    FOR UPDATE SKIP LOCKED
                )
                UPDATE streaming_cameralease l
                SET node_id = %s, generation = l.generation + 1,
                    expires_at = now() + %s::interval, acquired_at = now()
                FROM free WHERE l.camera_id = free.camera_id
                RETURNING l.camera_id, l.generation
                """,
                [sorted(cameras), _interval(free_for_s), self.node_id, limit,
                 self.node_id, _interval(self.ttl_s)],
            )  # fmt: skip
            claimed = dict(cursor.fetchall())
        now = time.monotonic()
        for camera, generation in claimed.items():
            self.held[camera] = generation
            self.claimed_at[camera] = now
        if claimed:
            logger.info(
                "node %s: claimed %d camera(s): %s",
                self.name,
                len(claimed),
                ", ".join(str(c) for c in sorted(claimed)[:20]),
            )
        return set(claimed)


def _wake_nodes() -> None:
    from streaming import services

    try:
        services.wake_supervisor()
    except Exception:  # noqa: BLE001 - best effort: the others claim at their next pass anyway
        logger.debug("could not wake the other nodes", exc_info=True)


# -- what the web side shows ----------------------------------------------------------------


def node_of_cameras(camera_ids: list[int] | None = None) -> dict[int, str]:
    """Camera -> the name of the node holding its lease now (cameras nobody runs are absent)."""
    from streaming.models import CameraLease

    leases = CameraLease.objects.filter(node__isnull=False, expires_at__gt=_db_now())
    if camera_ids is not None:
        leases = leases.filter(camera_id__in=camera_ids)
    return dict(leases.values_list("camera_id", "node__name"))


def nodes_overview(stale_after_s: float | None = None) -> list[dict]:
    """Every known node: name, host, cameras held, heartbeat age, draining, live, stale."""
    from django.db.models import Count, Q

    from streaming.models import RecorderNode

    now = _db_now()
    stale_after_s = settings.LEASE_TTL_S if stale_after_s is None else stale_after_s
    rows = []
    nodes = RecorderNode.objects.annotate(
        cameras=Count("leases", filter=Q(leases__expires_at__gt=now)),
        assigned=Count("leases"),
    ).order_by("name")
    for node in nodes:
        age = max(0.0, (now - node.heartbeat_at).total_seconds())
        stale = age > stale_after_s
        rows.append(
            {
                "name": node.name,
                "host": node.host,
                "capacity": node.capacity,
                "cameras": node.cameras,
                "heartbeat_age_s": round(age, 1),
                "draining": node.draining,
                "live": not stale and not node.draining,
                # stale while cameras are still assigned to it: they are not pulled
                "orphaned_cameras": node.assigned if stale else 0,
            }
        )
    return rows


def _db_now():
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        return cursor.fetchone()[0]
