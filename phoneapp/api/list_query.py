"""The upload list's query string, checked whole before anything is listed.

A script acts on the list it gets back: answered the whole list to ``?verdic=phone`` (a misspelt name),
``?verdict=bogus&verdict=phone`` (the last of two values) or ``?page=last``, it would take everything for the
filtered part (delete "the phone pictures", and delete them all). So a parameter this list does not take, one given
twice, a page that is not a whole number from 1 and a filter value :class:`UploadFilters` cannot read are each
named in one 400, and nothing is listed.
"""

from __future__ import annotations

from django.http import QueryDict

from phoneapp.selectors.uploads import UploadFilters

FILTER_PARAMETERS = ("label", "status", "reviewed", "verdict", "q", "from", "to")
# ``format`` is DRF's own (``?format=json`` picks the renderer, as the browsable API's links do).
LIST_PARAMETERS = frozenset({"page", "format", *FILTER_PARAMETERS})


def upload_list_query_problems(query: QueryDict) -> list[str]:
    """Each thing in ``query`` the upload list would otherwise ignore or misread, in words; empty when all is
    understood."""
    problems = [
        f"{name} (no such parameter; the list takes page, {', '.join(FILTER_PARAMETERS)})"
        for name in query
        if name not in LIST_PARAMETERS
    ]
    problems += [
        f"{name} given {len(query.getlist(name))} times (give it once)"
        for name in query
        if name in LIST_PARAMETERS and len(query.getlist(name)) > 1
    ]
    page = query.get("page")
    if page is not None and not (page.isascii() and page.isdigit() and int(page) >= 1):
        problems.append(f"page “{page}” (a whole number from 1)")
    problems += [str(unreadable) for unreadable in UploadFilters.unreadable(query)]
    return problems
