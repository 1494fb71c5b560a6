from django.core.management.base import BaseCommand

from recordings import footage


class Command(BaseCommand):
    help = (
        "Reconcile footage files and segment rows: report rows whose file is missing and "
        "closed files no row references; with --repair drop those rows and index (or delete) "
        "those files. Never touches a segment still being written."
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
        summary += f"; clips: {len(clips.missing)} without a file, {len(clips.orphans)} stray files"
        if repair:
            dropped = sum(r.dropped for r in reports)
            indexed = sum(len(r.indexed) for r in reports)
            removed = sum(len(r.removed) for r in reports)
            summary += f"; repaired: {dropped} rows dropped, {indexed} files indexed, "
            summary += f"{removed} files removed (clips: the ones without a file FAILED, "
            summary += "the stray files removed)"
        self.stdout.write(summary)
