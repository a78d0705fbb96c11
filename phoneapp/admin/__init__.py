"""The Django admin: one module per model's admin, each registering it when imported.

Django's autodiscovery imports this package, so every admin module is imported here; the names are exported so
``from phoneapp.admin import UploadAdmin`` keeps working as it did when this was one module.
"""

from __future__ import annotations

from django.contrib import admin

from phoneapp.admin.api_tokens import ApiTokenAdmin
from phoneapp.admin.model_versions import FIGURE_COLUMNS, ModelVersionAdmin, VersionScoreInline, figure_rows
from phoneapp.admin.upload_filters import ConfidenceFilter, DisagreementFilter, ReviewedFilter
from phoneapp.admin.uploads import BoxesJSONField, UploadAdmin
from phoneapp.admin.users import UserAdmin

__all__ = [
    "FIGURE_COLUMNS",
    "ApiTokenAdmin",
    "BoxesJSONField",
    "ConfidenceFilter",
    "DisagreementFilter",
    "ModelVersionAdmin",
    "ReviewedFilter",
    "UploadAdmin",
    "UserAdmin",
    "VersionScoreInline",
    "figure_rows",
]

# The admin has no navigation sidebar: at 1366 px it took the room the upload list needs beside its filters (the
# breadcrumbs and the admin's index still lead everywhere).
admin.site.enable_nav_sidebar = False
