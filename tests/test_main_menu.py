"""The main menu marks the entry of the page being read (``aria-current``), on every page of that entry."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User

from tests.factories import client_for, make_upload

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("address", "entry"),
    [
        ("/", "Upload"),
        ("/history/", "History"),
        ("/review/{upload}/", "Review"),
        ("/dashboard/", "Dashboard"),
        ("/account/", "Account"),
        ("/account/password/", "Account"),
        ("/account/api-token/", "Account"),
        ("/account/delete-pictures/", "Account"),
        ("/account/delete/", "Account"),
        ("/uploads/{upload}/", None),
    ],
)
def test_the_menu_marks_the_entry_of_the_page_being_read(reviewer: User, address: str, entry: str | None) -> None:
    upload = make_upload(reviewer, probability=0.9)
    page = client_for(reviewer).get(address.format(upload=upload.pk)).content.decode()

    menu = page.partition('<nav aria-label="Main"')[2].partition("</nav>")[0]
    assert re.findall(r'aria-current="page">([^<]+)</a>', menu) == ([entry] if entry else [])
