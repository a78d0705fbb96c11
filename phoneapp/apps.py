from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PhoneappConfig(AppConfig):
    name = "phoneapp"
    verbose_name = "Phone check"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_migrate.connect(_register_shipped_models, sender=self)
        # Connects the receiver that counts failed logins (the login throttle), whichever door was used.
        from phoneapp import auth_backends  # noqa: F401


def _register_shipped_models(**_: object) -> None:
    """Deploying runs ``migrate``; that is when models shipped in trained_models/ become known (and the default
    becomes active on a fresh database)."""
    from phoneapp.services.model_versions import model_versions_sync_from_disk

    model_versions_sync_from_disk()
