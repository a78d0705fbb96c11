"""The JSON API: ``/api/uploads/`` (session or token authentication)."""
