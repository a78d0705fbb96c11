"""Reading JSON a client sent: every failure is a ``ValueError``, nesting too deep included.

Python's parser answers JSON nested deeper than the interpreter's recursion limit (``[`` 100,000 times: 200 kB,
well under the request size limits) with ``RecursionError``, not ``ValueError``, so code that caught what bad JSON
raises turned such a body into a 500 with an ERROR traceback: ``POST /api/token/`` did for anyone, not signed in.
Shared by the login throttle, the API's JSON parser and the review queue's boxes (none imports the others' edge).
"""

from __future__ import annotations

import json
from typing import Any

TOO_DEEP = "the JSON is nested too deeply"


def client_json_loads(text: str | bytes) -> Any:
    """``json.loads(text)``; raises :class:`json.JSONDecodeError` (a ``ValueError``) for anything it cannot read,
    JSON nested deeper than the parser can follow included."""
    try:
        return json.loads(text)
    except RecursionError as error:
        raise json.JSONDecodeError(TOO_DEEP, "", 0) from error
