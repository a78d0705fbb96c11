"""Uploads whose review an admin cleared before the clearing also took the second review off: "waiting" for a second
opinion on a label that is gone, they came first in the review queue as a second opinion on nothing and counted as
held. They become plain unreviewed uploads, as a clearing now leaves them."""

from django.apps.registry import Apps
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor


def second_reviews_of_cleared_reviews_clear(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    upload_model = apps.get_model("phoneapp", "Upload")
    upload_model.objects.filter(reviewed_label="").exclude(second_review="").update(
        second_review="", second_label="", second_reviewed_by=None
    )


class Migration(migrations.Migration):
    dependencies = [
        ("phoneapp", "0009_upload_request"),
    ]

    operations = [
        migrations.RunPython(second_reviews_of_cleared_reviews_clear, migrations.RunPython.noop),
    ]
