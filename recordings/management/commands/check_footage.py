from django.core.management.base import BaseCommand

from recordings import footage


class Command(BaseCommand):
    help = (
        "Reconcile footage files and segment rows: report rows whose file is missing and "
        "closed files no row references; with --repair drop those rows and index (or delete) "
        "those files. With object storage configured, the same for the bucket: rows whose "
        "object is missing (dropped), objects no row references (deleted) and local copies of "
        "segments already moved to the bucket (deleted). Never touches a segment still being "
        "written."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--repair", action="store_true", help="drop the rows and index or delete the files"
        )

    def handle(self, *args, repair: bool, **options):
        reports = footage.check(repair=repair)
        clips = footage.check_clips(repair=repair)
        for report in [*reports, clips]:
            for line in report.lines():
                self.stdout.write(line)
        missing = sum(len(r.missing) for r in reports)
        orphans = sum(len(r.orphans) for r in reports)
        summary = f"{missing} rows without a file, {orphans} files without a row"
        if any(r.missing_objects or r.orphan_objects or r.stale_copies for r in reports):
            summary += (
                f"; object storage: {sum(len(r.missing_objects) for r in reports)} rows without "
                f"an object, {sum(len(r.orphan_objects) for r in reports)} objects without a row, "
                f"{sum(len(r.stale_copies) for r in reports)} stale local copies"
            )
        summary += f"; clips: {len(clips.missing)} without a file, {len(clips.orphans)} stray files"
        if repair:
            dropped = sum(r.dropped for r in reports)
            indexed = sum(len(r.indexed) for r in reports)
            removed = sum(len(r.removed) for r in reports)
            removed_objects = sum(len(r.removed_objects) for r in reports)
            summary += f"; repaired: {dropped} rows dropped, {indexed} files indexed, "
            summary += f"{removed} files removed"
            if removed_objects:
                summary += f", {removed_objects} objects removed"
            summary += " (clips: the ones without a file FAILED, the stray files removed)"
        self.stdout.write(summary)
