from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('phoneapp', '0003_upload_queued_at'),
    ]

    operations = [
        migrations.AddField(
            model_name='upload',
            name='predicted_boxes',
            field=models.JSONField(blank=True, default=list),
        ),
    ]
