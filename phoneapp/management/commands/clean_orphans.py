"""``manage.py clean_orphans``: list (and with ``--delete`` remove) stored files no upload names, uploads whose
picture is gone, and the scratch folders killed retrains left in ``MODELS_DIR``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from phoneapp.services.errors import RetrainError
from phoneapp.services.retrain_folders import retrain_scratch_leftovers, retrain_scratch_leftovers_remove
from phoneapp.services.storage_audit import StorageLooksUnmounted, storage_audit, storage_clean


class Command(BaseCommand):
    help = (
        "Find stored files (pictures, thumbnails, heat maps) that no upload names, uploads whose picture is "
        "missing from storage, and scratch folders killed retrains left in MODELS_DIR (with S3 storage they hold "
        "copies of pictures). Lists them and changes nothing unless --delete is given."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--delete",
            action="store_true",
            help="Remove the orphan files, delete the uploads whose picture is missing (with their other files), and "
            "remove killed retrains' scratch folders (kept while a retrain is running).",
        )
        parser.add_argument(
            "--even-if-most-are-missing",
            action="store_true",
            help="With --delete: delete the uploads without a picture even when they are most uploads (refused "
            "otherwise: that is what unmounted storage looks like).",
        )
        parser.add_argument(
            "--min-age",
            type=float,
            default=60.0,
            metavar="MINUTES",
            help="Only files older than this count as orphans (default 60): an upload being saved writes its "
            "files just before its row.",
        )

    def handle(self, *args: Any, delete: bool, min_age: float, even_if_most_are_missing: bool, **options: Any) -> None:
        audit = storage_audit(min_age=timedelta(minutes=min_age))
        models_root = Path(settings.MODELS_DIR)
        scratch = retrain_scratch_leftovers(models_root=models_root)
        for name in audit.orphan_files:
            self.stdout.write(f"orphan file: {name}")
        for upload_id in audit.uploads_missing_picture:
            self.stdout.write(f"upload without its picture: {upload_id}")
        for path in scratch:
            self.stdout.write(f"retrain scratch folder (a killed retrain's, or a running one's): {path}")
        orphans, missing = len(audit.orphan_files), len(audit.uploads_missing_picture)
        found = f"{orphans} orphan file(s), {missing} upload(s) without a picture"
        if scratch:
            found += f", {len(scratch)} retrain scratch folder(s)"
        if not delete:
            self.stdout.write(f"{found}. Dry run: nothing changed; run with --delete to remove them.")
            return
        try:
            failed = storage_clean(audit=audit, even_if_most_missing=even_if_most_are_missing)
        except StorageLooksUnmounted as error:
            raise CommandError(
                f"{error} Nothing changed. If those pictures really are gone, run again with "
                "--delete --even-if-most-are-missing."
            ) from error
        if scratch:
            try:
                retrain_scratch_leftovers_remove(models_root=models_root)
            except RetrainError:
                self.stderr.write(
                    "A retrain is running: the scratch folders are kept (it removes its own when it ends)."
                )
        self.stdout.write(f"{found}: removed.")
        if failed.orphan_files:
            self.stderr.write(f"{len(failed.orphan_files)} file(s) could not be removed (see the log).")
