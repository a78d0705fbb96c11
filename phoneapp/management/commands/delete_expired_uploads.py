"""``manage.py delete_expired_uploads``: the retention sweep by hand (celery beat runs it hourly)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from phoneapp.services.upload_deletion import uploads_delete_expired


class Command(BaseCommand):
    help = (
        "Delete uploads (rows and files) older than RETENTION_DAYS days. Does nothing when RETENTION_DAYS is 0 "
        "(the default). Without a broker there is no beat: run this from cron."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.RETENTION_DAYS <= 0:
            self.stdout.write("RETENTION_DAYS is 0: uploads are kept forever; nothing deleted.")
            return
        deleted = uploads_delete_expired()
        self.stdout.write(f"{deleted} upload(s) older than {settings.RETENTION_DAYS} days deleted.")
