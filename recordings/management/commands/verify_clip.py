"""``manage.py verify_clip FILE MANIFEST [--public-key PEM]``: check a clip's custody
manifest signature (Ed25519) and that FILE is the file it describes; exit 1 otherwise."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from recordings import custody


class Command(BaseCommand):
    help = "Verify an exported clip against its signed chain-of-custody manifest."

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", type=Path, help="the clip (MP4) to check")
        parser.add_argument("manifest", type=Path, help="its manifest (JSON)")
        parser.add_argument(
            "--public-key",
            type=Path,
            help="PEM public key to check with (default: this platform's key)",
        )

    def handle(self, *args, file: Path, manifest: Path, public_key: Path | None, **options):
        try:
            document = manifest.read_bytes()
            public_pem = public_key.read_text() if public_key else None
        except OSError as exc:
            raise CommandError(f"cannot read {exc.filename}: {exc.strerror}") from exc
        result = custody.verify(file, document, public_pem)
        if not result.ok:
            raise CommandError(result.message)
        signed = result.manifest or {}
        self.stdout.write(result.message)
        self.stdout.write(
            f"clip {signed.get('clip_id')} of camera {signed['camera']['code']} "
            f"({signed['prefeitura']['name']}), {signed['period']['start']} .. "
            f"{signed['period']['end']}, exported by "
            f"{(signed.get('exported_by') or {}).get('username', '-')}, "
            f"reason: {signed.get('reason') or '-'}"
        )
