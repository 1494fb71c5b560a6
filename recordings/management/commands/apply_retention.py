from django.core.management.base import BaseCommand

from recordings import retention, services


class Command(BaseCommand):
    help = "Purge footage past retention or under the disk floor, and expired clips."

    def handle(self, *args, **options):
        purges = retention.apply_retention()
        for purge in purges:
            kept = purge.reason == retention.KEPT_BY_LOCK
            self.stdout.write(f"{'kept' if kept else 'purged'} {purge}")
        expired = services.expire_clips()
        total = sum(p.segments for p in purges if p.reason != retention.KEPT_BY_LOCK)
        self.stdout.write(f"{total} segments purged, {expired} expired clips deleted")
