"""Reads: every question the pages, the API, the admin and the commands ask of the database, one module a subject.

Selectors return rows, querysets or plain dataclasses and never write. A row the caller may not see raises a
domain error (:mod:`phoneapp.errors`), which the web and API layers answer with 404.
"""
