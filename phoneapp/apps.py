from django.apps import AppConfig


class PhoneappConfig(AppConfig):
    name = "phoneapp"
    verbose_name = "Phone check"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Shipped models are registered by `manage.py sync_models` (deploys run it after `migrate`), not by a
        # signal: a flush between tests no longer registers models behind the tests' back.
        # Connects the receivers: failed logins logged, whichever door was used (auth_backends); a deleted user's
        # uploads deleted with their files (receivers). Registers the system checks (checks).
        from phoneapp import auth_backends, checks, receivers  # noqa: F401
