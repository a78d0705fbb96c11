"""``manage.py draw_heatmaps``: ask for the "where is the phone" overlays that are missing."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from phoneapp.services.errors import NoActiveModel
from phoneapp.services.heatmaps import uploads_heatmap_enqueue_missing


class Command(BaseCommand):
    help = (
        "Queue a heat map for every classified upload without one whose verdict came from the active model "
        "version, newest first (on the low-priority 'heatmaps' queue; drawn here when no broker is configured). "
        "Uploads whose verdict stored its evidence are left out: theirs is drawn when first asked for."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, default=1000, help="At most this many uploads (default 1000).")

    def handle(self, *args: Any, limit: int, **options: Any) -> None:
        if limit < 0:
            raise CommandError("--limit must be 0 or more.")
        try:
            count = uploads_heatmap_enqueue_missing(limit=limit)
        except NoActiveModel as error:
            raise CommandError(error.message) from error
        self.stdout.write(f"Asked for {count} heat map(s).")
