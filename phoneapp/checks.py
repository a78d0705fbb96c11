"""System checks (``manage.py check``, and every ``runserver`` / ``migrate``): settings this version no longer reads.

An operator's environment or ``.env`` outlives the code: a retired variable would otherwise be ignored silently.
"""

from __future__ import annotations

import os
from typing import Any

from django.core.checks import CheckMessage, Tags, Warning, register

# Variable -> what to set instead (the release that dropped it explains why in its commit).
RETIRED_VARIABLES = {
    "TORCH_THREADS": "INFERENCE_THREADS sets a serving process's threads; PHONECHECK_TORCH_THREADS those of "
    "models loaded outside serving (python -m inference, evaluation); training takes --threads",
}


@register(Tags.compatibility)
def retired_variables(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A warning per retired variable still set (``.env`` is read into the environment by settings.py)."""
    return [
        Warning(f"{name} is set but no longer read.", hint=instead, id="phoneapp.W001")
        for name, instead in RETIRED_VARIABLES.items()
        if name in os.environ
    ]
