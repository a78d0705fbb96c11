"""gunicorn's configuration, read from the working directory by the web command (Procfile, README): its own log
lines in the app's ``LOG_FORMAT`` (``phoneapp.log_format.gunicorn_logging``). Options stay on the command line."""

import os
from pathlib import Path

from phoneapp.env_file import settings_file_read
from phoneapp.log_format import gunicorn_logging

settings_file_read(Path(__file__).resolve().parent)
logconfig_dict = gunicorn_logging(os.environ.get("LOG_FORMAT", "plain"))
