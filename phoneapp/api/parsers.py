"""The API's JSON parser: DRF's, refusing JSON nested too deeply with 400 like any other JSON it cannot read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from phoneapp.client_json import TOO_DEEP


class DepthSafeJSONParser(JSONParser):
    """DRF's ``JSONParser`` caught only ``ValueError``: a body of 100,000 ``[`` raised ``RecursionError`` through
    it and answered 500 (:mod:`phoneapp.client_json`)."""

    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as error:
            raise ParseError(f"JSON parse error - {TOO_DEEP}") from error
