"""Users and groups in the Django admin: Django's, except that one's own password is changed on the account page
and a search term holding NUL finds nothing."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group, User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from phoneapp.admin.search import NulFindsNothingSearch


class UserAdmin(NulFindsNothingSearch, DjangoUserAdmin):
    """Django's, except for one's own password: its form there sets a new one without the old one and without the
    login throttle, so a borrowed administrator's session could take the account over. It leads to the account's
    own page, where the old password is asked and counted like a sign-in (as ``/admin/password_change/`` does)."""

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        if str(request.user.pk) == str(id):
            return redirect("account-password")
        return super().user_change_password(request, id, form_url)


class GroupAdmin(NulFindsNothingSearch, DjangoGroupAdmin):
    """Django's, searched like every other admin list (see :class:`NulFindsNothingSearch`)."""


admin.site.unregister(User)
admin.site.register(User, UserAdmin)
admin.site.unregister(Group)
admin.site.register(Group, GroupAdmin)
