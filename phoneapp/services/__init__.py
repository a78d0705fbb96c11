"""Domain logic shared by the web views, the API, the admin, the Celery tasks and the management commands."""
