"""What a screen reader is told of a page's form field: whether it is marked invalid, and why
(tests/test_account_deletion.py, tests/test_api_tokens_and_docs.py)."""

from __future__ import annotations

import html
import re


def password_field_invalid_because(page: str) -> str:
    """What a screen reader says the page's password field is wrong about: the text of the elements its
    ``aria-describedby`` names, when it is marked ``aria-invalid`` ("" when it is not marked)."""
    [field] = re.findall(r'<input[^>]*\bname="password"[^>]*>', page)
    attributes = dict(re.findall(r'([\w-]+)="([^"]*)"', field))
    if attributes.get("aria-invalid") != "true":
        return ""
    said = []
    for described_by in attributes.get("aria-describedby", "").split():
        [text] = re.findall(rf'<(\w+)[^>]*\bid="{re.escape(described_by)}"[^>]*>(.*?)</\1>', page, flags=re.S)
        said.append(html.unescape(re.sub(r"<[^>]+>", "", text[1])).strip())
    return " ".join(said)
