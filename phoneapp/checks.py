"""System checks (``manage.py check``, and every ``runserver`` / ``migrate``): settings this version no longer reads,
and settings that contradict each other.

An operator's environment or ``.env`` outlives the code: a retired variable would otherwise be ignored silently.
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

# Variable -> what to set instead (the release that dropped it explains why in its commit).
RETIRED_VARIABLES = {
    "TORCH_THREADS": "INFERENCE_THREADS sets the threads of every process that loads the model in the app "
    "(workers, evaluation, the retrain's scoring); PHONECHECK_TORCH_THREADS those of python -m inference; training "
    "takes --threads",
}


@register(Tags.compatibility)
def retired_variables(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A warning per retired variable still set (``.env`` is read into the environment by settings.py)."""
    return [
        Warning(f"{name} is set but no longer read.", hint=instead, id="phoneapp.W001")
        for name, instead in RETIRED_VARIABLES.items()
        if name in os.environ
    ]


@register(Tags.compatibility)
def upload_limits_agree(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A batch of ``UPLOAD_MAX_FILES`` pictures must fit in ``UPLOAD_RATE_LIMIT``: each picture counts, so a
    larger batch than the whole budget is refused with 429 however long the client waits."""
    from phoneapp.throttling import UploadRateThrottle

    try:
        budget = UploadRateThrottle().num_requests  # parsed from the rate as the throttle is made
    except (ValueError, KeyError, IndexError):  # DRF's parsing of "N/period"
        return [
            Error(
                f"UPLOAD_RATE_LIMIT ({settings.UPLOAD_RATE_LIMIT!r}) is not a rate: every upload would fail.",
                hint="Write it as pictures/period, e.g. 120/minute (second, minute, hour or day).",
                id="phoneapp.E001",
            )
        ]
    if budget is None or budget >= settings.UPLOAD_MAX_FILES:
        return []
    return [
        Warning(
            f"UPLOAD_RATE_LIMIT ({settings.UPLOAD_RATE_LIMIT}) is below UPLOAD_MAX_FILES ({settings.UPLOAD_MAX_FILES}):"
            f" a request with more than {budget} pictures is accepted as valid but can never fit the rate limit.",
            hint="Raise UPLOAD_RATE_LIMIT or lower UPLOAD_MAX_FILES.",
            id="phoneapp.W002",
        )
    ]
