"""``manage.py verify_audit``: walk every audit hash chain; exit 1 naming the first entry of
each chain that was changed, deleted or inserted out of order."""

from django.core.management.base import BaseCommand, CommandError

from admin_ctx import audit
from admin_ctx.models import AuditChainHead


class Command(BaseCommand):
    help = "Verify the hash chains of the LGPD audit log."

    def handle(self, *args, **options) -> None:
        problems = audit.verify()
        for problem in problems:
            self.stderr.write(f"TAMPERED {problem}")
        if problems:
            raise CommandError(f"{len(problems)} audit chain(s) failed verification")
        for chain, seq, head_hash in AuditChainHead.objects.order_by("chain").values_list(
            "chain", "seq", "hash"
        ):
            self.stdout.write(f"chain {chain}: {seq} entries, head {head_hash}")
        self.stdout.write("audit log intact")
