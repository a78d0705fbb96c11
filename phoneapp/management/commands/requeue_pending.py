"""``manage.py requeue_pending``: send pending and stuck uploads to the workers again (e.g. after a broker outage)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from phoneapp.services.classification import uploads_requeue_stale


class Command(BaseCommand):
    help = (
        "Queue again every upload left pending (the broker was down when it was sent) or stuck in processing "
        "past PROCESSING_TIMEOUT_SECONDS (its worker died). Safe to run at any time: classification is "
        "idempotent. Without a broker configured the uploads are classified here, in this process."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=float,
            default=0.0,
            metavar="SECONDS",
            help="Only pending uploads created at least this long ago (default 0: all of them).",
        )

    def handle(self, *args: Any, older_than: float, **options: Any) -> None:
        sent = uploads_requeue_stale(pending_older_than=timedelta(seconds=older_than))
        self.stdout.write(f"{sent} upload(s) queued for classification.")
