"""What screen-reader users are told, checked in the HTML (the browser's side is in test_browser_accessibility.py):
a refused sign-in names the fields it refused, links and charts have text, status notes are valid lists."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.factories import client_for, make_upload

pytestmark = pytest.mark.django_db


def input_tag(page: str, name: str) -> str:
    return re.search(rf"<input[^>]*name=\"{name}\"[^>]*>", page).group(0)  # type: ignore[union-attr]


def test_a_refused_sign_in_marks_both_fields_invalid_and_ties_them_to_the_message(alice: User) -> None:
    fresh = Client().get("/accounts/login/").content.decode()
    refused = Client().post("/accounts/login/", {"username": "alice", "password": "wrong"}).content.decode()

    for name in ("username", "password"):
        assert "aria-invalid" not in input_tag(fresh, name)
        field = input_tag(refused, name)
        assert 'aria-invalid="true"' in field and 'aria-describedby="sign-in-error"' in field, field
    assert 'id="sign-in-error"' in refused


def test_the_admin_lists_thumbnail_links_are_named_by_their_picture(alice: User, reviewer: User) -> None:
    upload = make_upload(alice, name="desk-photo.jpg")

    page = client_for(reviewer).get("/admin/phoneapp/upload/").content.decode()

    assert f'alt="Upload {upload.pk}: desk-photo.jpg"' in page
    assert 'class="admin-thumb"' in page and 'alt="" class="admin-thumb"' not in page


def test_the_verdict_split_chart_has_its_numbers_as_a_table(alice: User, reviewer: User) -> None:
    make_upload(alice, probability=0.97)
    make_upload(alice, probability=0.02)

    page = client_for(reviewer).get("/dashboard/").content.decode()
    split = page[page.index('id="h-split"') : page.index('id="h-accuracy"')]

    assert "<summary>Numbers</summary>" in split
    assert re.search(r"<td>Phone</td><td>1</td>", split) and re.search(r"<td>Not a phone</td><td>1</td>", split)


def test_status_notes_are_lists_inside_a_status_region_not_lists_with_the_role(alice_client: Client) -> None:
    """``role=status`` on a ``ul`` takes away its list role, so its items were list items outside any list."""
    page = alice_client.get("/history/", {"verdict": "bogus"}).content.decode()

    assert '<div role="status"><ul class="filters-ignored"' in page
    assert not re.search(r"<ul[^>]*role=", page)
