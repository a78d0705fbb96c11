from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("phoneapp", "0006_apitoken"),
    ]

    operations = [
        migrations.AddField(
            model_name="upload",
            name="evidence",
            field=models.BinaryField(blank=True, editable=False, null=True),
        ),
    ]
