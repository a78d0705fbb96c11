"""``manage.py requeue_pending``: send pending and stuck uploads to the workers again (e.g. after a broker outage),
and with ``--failed`` the uploads that gave up (e.g. after a model outage)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from phoneapp.models import Upload
from phoneapp.services.classification import uploads_requeue_stale, uploads_retry_failed


class Command(BaseCommand):
    help = (
        "Queue again every upload left pending because the broker was down when it was sent, or stuck in "
        "processing because its worker died (no live worker lists it after ORPHAN_AFTER_SECONDS; without worker "
        "heartbeats, after PROCESSING_TIMEOUT_SECONDS). With --all, also the pending uploads that "
        "did reach the broker (after a Redis restart that lost its queue); with --failed, also the uploads that "
        "gave up (the model was unavailable, a worker died on them), once the cause is mended. Safe to run at any "
        "time: classification is idempotent. Without a broker configured the uploads are classified here."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=float,
            default=0.0,
            metavar="SECONDS",
            help="Leave alone uploads never sent to the broker and never tried that were created less than this long "
            "ago (default 0: none is left); uploads tried before, held by a stopped worker, or sent longer ago than "
            "PROCESSING_TIMEOUT_SECONDS are sent whatever their age.",
        )
        parser.add_argument(
            "--all",
            action="store_true",
            dest="resend_all",
            help="Also re-send pending uploads whose task reached the broker (their message may have been lost).",
        )

        parser.add_argument(
            "--failed",
            action="store_true",
            help="Also send again every failed upload, as if just uploaded (after mending what made them fail).",
        )

    def handle(self, *args: Any, older_than: float, resend_all: bool, failed: bool, **options: Any) -> None:
        sent = uploads_requeue_stale(
            pending_older_than=timedelta(seconds=older_than), resend_queued_after=timedelta(0) if resend_all else None
        )
        self.stdout.write(f"{sent} upload(s) queued for classification.")
        if failed:
            retried = uploads_retry_failed(uploads=Upload.objects.all())
            self.stdout.write(f"{retried} failed upload(s) queued again.")
