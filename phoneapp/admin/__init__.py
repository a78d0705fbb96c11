"""The Django admin; Django's autodiscovery imports this package, which imports the module that registers each admin."""

from phoneapp.admin import uploads as uploads
