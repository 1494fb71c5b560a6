"""The one way to write the LGPD audit log, and the check of its hash chains.

Every entry belongs to one chain: its prefeitura's (``chain`` = the prefeitura's id) or the
platform's (``chain`` = 0, entries without a prefeitura). Entry ``seq`` of a chain stores
``prev_hash``, the hash of entry ``seq - 1``, and ``hash``, the SHA-256 of its own canonical
serialization (``canonical``), which covers every field and ``prev_hash``. An append locks
the chain's head row (``AuditChainHead``) until its transaction ends, so concurrent writers
take turns and the chain never forks. ``verify`` walks the chains and names the first entry
that was changed, deleted or inserted out of order; ``manage.py verify_audit`` runs it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.http import HttpRequest
from django.utils import timezone

from admin_ctx.models import AuditChainHead, AuditEntry, User
from gtvision import login_guard

PLATFORM_CHAIN = 0
HASHED_FIELDS = (
    "chain", "seq", "prev_hash", "at", "actor_id", "actor_username", "action",
    "prefeitura_id", "target_type", "target_id", "ip", "details",
)  # fmt: skip


def client_ip(request: HttpRequest | None) -> str | None:
    """The real client address (X-Forwarded-For only from settings.TRUSTED_PROXIES)."""
    return login_guard.client_ip(request)


def chain_of(prefeitura_id: int | None) -> int:
    return prefeitura_id or PLATFORM_CHAIN


def canonical(fields: dict[str, Any]) -> bytes:
    """The bytes an entry's hash covers: ``HASHED_FIELDS`` as JSON with sorted keys, no
    whitespace, UTF-8; ``at`` in UTC with microseconds, ``ip`` in its compressed form."""
    values = {name: fields[name] for name in HASHED_FIELDS}
    at = values["at"]
    if isinstance(at, datetime):
        values["at"] = at.astimezone(UTC).isoformat(timespec="microseconds")
    if values["ip"]:
        values["ip"] = ipaddress.ip_address(values["ip"]).compressed
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(fields: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(fields)).hexdigest()


def _lock_head(chain: int) -> tuple[int, str]:
    """Lock the chain's head row until the transaction ends; its (seq, hash)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO admin_ctx_auditchainhead (chain, seq, hash) VALUES (%s, 0, '') "
            "ON CONFLICT (chain) DO NOTHING",
            [chain],
        )
        cursor.execute(
            "SELECT seq, hash FROM admin_ctx_auditchainhead WHERE chain = %s FOR UPDATE", [chain]
        )
        seq, head_hash = cursor.fetchone()
    return seq, head_hash


def record(
    action: str,
    *,
    actor: User | None = None,
    request: HttpRequest | None = None,
    prefeitura_id: int | None = None,
    target: models.Model | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append an audit entry. ``prefeitura_id`` defaults to the target's, then the actor's."""
    if actor is not None and not actor.is_authenticated:
        actor = None
    if prefeitura_id is None and target is not None:
        prefeitura_id = getattr(target, "prefeitura_id", None)
    if prefeitura_id is None and actor is not None:
        prefeitura_id = actor.prefeitura_id
    # stored as jsonb: hash what the database gives back (plain JSON values)
    details = json.loads(json.dumps(details or {}, cls=DjangoJSONEncoder))
    chain = chain_of(prefeitura_id)
    with transaction.atomic():
        seq, prev_hash = _lock_head(chain)
        entry = AuditEntry(
            at=timezone.now(),
            actor=actor,
            actor_username=actor.get_username() if actor else "",
            action=action,
            prefeitura_id=prefeitura_id,
            target_type=target._meta.model_name if target is not None else "",
            target_id=str(target.pk) if target is not None else "",
            ip=client_ip(request),
            details=details,
            chain=chain,
            seq=seq + 1,
            prev_hash=prev_hash,
        )
        entry.hash = entry_hash(vars(entry))
        entry.save()
        AuditChainHead.objects.filter(chain=chain).update(seq=entry.seq, hash=entry.hash)
    return entry


# -- verification ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """The first inconsistency of one chain."""

    chain: int
    entry_id: int | None
    kind: str  # changed | deleted | out_of_order | unchained
    message: str

    def __str__(self) -> str:
        name = "platform" if self.chain == PLATFORM_CHAIN else f"prefeitura {self.chain}"
        return f"chain {self.chain} ({name}): {self.message}"


def _rows(chain: int) -> Iterator[dict[str, Any]]:
    fields = ("id", *(f for f in HASHED_FIELDS), "hash")
    return (
        AuditEntry.objects.filter(chain=chain)
        .order_by("seq")
        .values(*fields)
        .iterator(chunk_size=2000)
    )


def verify_chain(chain: int, head: tuple[int, str] | None) -> Problem | None:
    """The first problem of one chain, walking it from its first entry; None when intact."""
    expected_seq, prev_hash, prev_id = 1, "", 0
    for row in _rows(chain):
        entry_id, seq = row["id"], row["seq"]
        if seq > expected_seq:
            message = f"entries #{expected_seq}..{seq - 1} were deleted before entry id {entry_id}"
            return Problem(chain, entry_id, "deleted", message)
        if entry_hash(row) != row["hash"] or chain_of(row["prefeitura_id"]) != chain:
            message = (
                f"entry id {entry_id} (#{seq}) was changed: its content does not match its hash"
            )
            return Problem(chain, entry_id, "changed", message)
        if row["prev_hash"] != prev_hash or entry_id <= prev_id:
            message = (
                f"entry id {entry_id} (#{seq}) was inserted out of order or the entry before "
                "it was replaced: it does not follow the previous entry"
            )
            return Problem(chain, entry_id, "out_of_order", message)
        expected_seq, prev_hash, prev_id = seq + 1, row["hash"], entry_id
    head_seq, head_hash = head or (0, "")
    if head_seq >= expected_seq:
        message = (
            f"entries #{expected_seq}..{head_seq} at the end of the chain were deleted "
            f"(after entry id {prev_id or '-'})"
        )
        return Problem(chain, None, "deleted", message)
    if head_seq != expected_seq - 1 or head_hash != prev_hash:
        message = f"the chain's last entry (id {prev_id}) is not the one its head records"
        return Problem(chain, prev_id or None, "out_of_order", message)
    return None


def verify() -> list[Problem]:
    """Every chain's first problem (an empty list: the whole log is intact)."""
    problems = []
    unchained = (
        AuditEntry.objects.filter(models.Q(chain=None) | models.Q(seq=None))
        .order_by("id")
        .values("id", "prefeitura_id")
        .first()
    )
    if unchained is not None:
        entry_id = unchained["id"]
        message = f"entry id {entry_id} is in no chain: it was inserted outside the audit writer"
        problems.append(
            Problem(chain_of(unchained["prefeitura_id"]), entry_id, "unchained", message)
        )
    heads = dict(
        (chain, (seq, head_hash))
        for chain, seq, head_hash in AuditChainHead.objects.values_list("chain", "seq", "hash")
    )
    chains = set(heads) | set(
        AuditEntry.objects.exclude(chain=None).values_list("chain", flat=True).distinct()
    )
    for chain in sorted(chains):
        problem = verify_chain(chain, heads.get(chain))
        if problem is not None:
            problems.append(problem)
    return problems
