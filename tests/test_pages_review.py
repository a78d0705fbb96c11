"""The staff review queue outside the admin: order, navigation, decisions saved at once, permissions."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from phoneapp.models import Upload, UploadStatus
from tests.factories import make_upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(reviewer: User) -> Client:
    client = Client()
    client.force_login(reviewer)
    return client


def walk_queue(client: Client) -> list[int]:
    """Follow "next" from the start of the queue, as the right-arrow key does."""
    seen = []
    response = client.get("/review/")
    url = response["Location"]
    while url:
        page = client.get(url)
        seen.append(page.context["upload"].pk)
        next_id = page.context["place"].next_id
        url = f"/review/{next_id}/" if next_id else ""
    return seen


def test_queue_starts_with_the_most_uncertain_and_walks_outwards(staff_client: Client, alice: User) -> None:
    sure_phone = make_upload(alice, probability=0.95)
    coin_flip = make_upload(alice, probability=0.52)
    sure_not = make_upload(alice, probability=0.2)
    leaning_not = make_upload(alice, probability=0.45)
    assert walk_queue(staff_client) == [coin_flip.pk, leaning_not.pk, sure_not.pk, sure_phone.pk]


def test_phone_verdicts_whose_place_is_a_guess_come_right_after_the_unsure_ones(
    staff_client: Client, alice: User
) -> None:
    guessed_place = make_upload(alice, probability=0.97, boxes=[{"box": [0.1, 0.1, 0.2, 0.2], "score": 0.3}])
    sure_place = make_upload(alice, probability=0.96, boxes=[{"box": [0.5, 0.5, 0.6, 0.7], "score": 0.9}])
    sure_not = make_upload(alice, probability=0.2)
    coin_flip = make_upload(alice, probability=0.52)
    # By the verdict's uncertainty alone the guessed place (0.97, the surest phone) would come last.
    assert walk_queue(staff_client) == [coin_flip.pk, guessed_place.pk, sure_not.pk, sure_place.pk]
    guessed_page = staff_client.get(f"/review/{guessed_place.pk}/").content.decode()
    assert 'id="unsure-place-note"' in guessed_page and "2 of 4 left" in guessed_page
    assert 'id="unsure-place-note"' not in staff_client.get(f"/review/{sure_place.pk}/").content.decode()
    # "Previous" from the picture after it walks back to it, as for any passed-over picture.
    assert staff_client.get(f"/review/{sure_not.pk}/").context["place"].previous_id == guessed_place.pk
    # Once a reviewer has drawn its boxes, the page no longer asks for them.
    Upload.objects.filter(pk=guessed_place.pk).update(reviewed_boxes=[{"box": [0.3, 0.3, 0.4, 0.5]}])
    assert 'id="unsure-place-note"' not in staff_client.get(f"/review/{guessed_place.pk}/").content.decode()


def test_queue_leaves_out_reviewed_and_unfinished_uploads(staff_client: Client, alice: User, reviewer: User) -> None:
    waiting = make_upload(alice, status=UploadStatus.PENDING)
    failed = make_upload(alice, status=UploadStatus.FAILED)
    reviewed = make_upload(alice, probability=0.5, reviewed="phone", reviewer=reviewer)
    open_one = make_upload(alice, probability=0.9)
    assert walk_queue(staff_client) == [open_one.pk]
    assert staff_client.get(f"/review/{waiting.pk}/").status_code == 404
    assert staff_client.get(f"/review/{failed.pk}/").status_code == 404
    # A reviewed picture can still be opened (to change one's mind), and says so.
    page = staff_client.get(f"/review/{reviewed.pk}/").content.decode()
    assert "Reviewed as <strong>phone</strong>" in page


def test_empty_queue_says_there_is_nothing_to_review(staff_client: Client) -> None:
    response = staff_client.get("/review/")
    assert response.status_code == 200
    assert "Nothing left to review" in response.content.decode()


def test_the_empty_queue_after_a_decision_offers_back_and_undo_in_valid_markup(
    staff_client: Client, alice: User
) -> None:
    """Its undo form sat inside a <p>: browsers close the paragraph at the form, so the button fell out of it and an
    empty paragraph followed."""
    from html.parser import HTMLParser

    upload = make_upload(alice, probability=0.5)
    staff_client.post(f"/review/{upload.pk}/decide", {"decision": "phone"})

    class FormsInParagraphs(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.open_paragraphs = 0
            self.forms_inside = 0

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.open_paragraphs += tag == "p"
            self.forms_inside += tag == "form" and self.open_paragraphs > 0

        def handle_endtag(self, tag: str) -> None:
            self.open_paragraphs -= tag == "p"

    page = staff_client.get("/review/").content.decode()
    assert "Nothing left to review" in page and f'href="/review/{upload.pk}/" rel="prev"' in page
    parser = FormsInParagraphs()
    parser.feed(page[page.index("<main") :])
    assert parser.forms_inside == 0


def test_phone_key_decision_is_saved_and_answers_with_the_next_picture(
    staff_client: Client, alice: User, reviewer: User
) -> None:
    first = make_upload(alice, probability=0.5)
    second = make_upload(alice, probability=0.6)
    response = staff_client.post(
        f"/review/{first.pk}/decide", {"decision": "not_phone"}, headers={"Accept": "application/json"}
    )
    assert response.status_code == 200
    assert response.json() == {
        "id": first.pk,
        "reviewed_label": "not_phone",
        "labelled": 1,
        "next_id": second.pk,
        "next_url": f"/review/{second.pk}/",
    }
    first.refresh_from_db()
    assert (first.reviewed_label, first.reviewed_by) == ("not_phone", reviewer)
    assert first.reviewed_at is not None
    # The next picture, opened by review.js, says what was saved; undoing says so too.
    assert (
        "Saved: picture.jpg is not a phone. Undo last takes it back."
        in staff_client.get(f"/review/{second.pk}/").content.decode()
    )
    staff_client.post("/review/undo", headers={"Accept": "application/json"})
    assert "Undone: the picture is back" in staff_client.get(f"/review/{first.pk}/").content.decode()


def test_confirm_keeps_the_models_verdict(staff_client: Client, alice: User) -> None:
    upload = make_upload(alice, probability=0.2)
    response = staff_client.post(f"/review/{upload.pk}/decide", {"decision": "confirm"})
    upload.refresh_from_db()
    assert upload.reviewed_label == "not_phone"
    # The last picture reviewed: back to the queue's start, which now says it is empty.
    assert response.status_code == 302
    assert response["Location"] == "/review/"


def test_form_post_without_javascript_moves_to_the_next_picture(staff_client: Client, alice: User) -> None:
    first = make_upload(alice, probability=0.5, name="first.jpg")
    second = make_upload(alice, probability=0.7)
    response = staff_client.post(f"/review/{first.pk}/decide", {"decision": "phone"}, follow=True)
    assert response.redirect_chain == [(f"/review/{second.pk}/", 302)]
    assert "Saved: first.jpg is a phone." in response.content.decode()


def test_skipping_without_javascript_says_so_and_moves_on(staff_client: Client, alice: User) -> None:
    first = make_upload(alice, probability=0.5, name="first.jpg")
    second = make_upload(alice, probability=0.7)
    response = staff_client.post(f"/review/{first.pk}/skip", follow=True)
    assert response.redirect_chain == [(f"/review/{second.pk}/", 302)]
    assert "Skipped first.jpg: it comes back after the rest of the queue." in response.content.decode()


def test_deciding_on_a_skipped_picture_returns_to_the_one_skipped_first(staff_client: Client, alice: User) -> None:
    first = make_upload(alice, probability=0.5)
    last = make_upload(alice, probability=0.99)
    response = staff_client.post(
        f"/review/{last.pk}/decide", {"decision": "phone"}, headers={"Accept": "application/json"}
    )
    assert response.json()["next_id"] == first.pk


def test_unknown_decision_is_refused_and_nothing_saved(staff_client: Client, alice: User) -> None:
    upload = make_upload(alice, probability=0.5)
    response = staff_client.post(
        f"/review/{upload.pk}/decide", {"decision": "maybe"}, headers={"Accept": "application/json"}
    )
    assert response.status_code == 400
    upload.refresh_from_db()
    assert upload.reviewed_label == ""


def test_decisions_need_a_csrf_token(reviewer: User, alice: User) -> None:
    upload = make_upload(alice, probability=0.5)
    client = Client(enforce_csrf_checks=True)
    client.force_login(reviewer)
    assert client.post(f"/review/{upload.pk}/decide", {"decision": "phone"}).status_code == 403
    upload.refresh_from_db()
    assert upload.reviewed_label == ""


def test_review_pages_are_for_staff_only(alice_client: Client, alice: User) -> None:
    upload = make_upload(alice, probability=0.5)
    for url in ["/review/", f"/review/{upload.pk}/"]:
        response = alice_client.get(url)
        # The app's own "not open to you" page, not the admin's login form.
        assert response.status_code == 403
        assert "This page is not open to you" in response.content.decode()
    alice_client.post(f"/review/{upload.pk}/decide", {"decision": "phone"})
    upload.refresh_from_db()
    assert upload.reviewed_label == ""


def test_review_page_shows_picture_verdict_keys_and_position(staff_client: Client, alice: User) -> None:
    make_upload(alice, probability=0.9)
    upload = make_upload(alice, probability=0.55, name="desk.jpg")
    page = staff_client.get(f"/review/{upload.pk}/").content.decode()
    assert f'src="/uploads/{upload.pk}/image"' in page
    assert "Unsure" in page and "55% chance of a phone" in page
    assert "1 of 2 left" in page
    for key in ("P", "N", "S", "Z"):
        assert f'aria-keyshortcuts="{key}"' in page
    # The model is unsure: there is no verdict to confirm, the reviewer has to choose.
    assert 'aria-keyshortcuts="C"' not in page
    assert "The model is unsure about this picture" in page


def decide(client: Client, upload_id: int, decision: str) -> dict:
    response = client.post(
        f"/review/{upload_id}/decide", {"decision": decision}, headers={"Accept": "application/json"}
    )
    return response.json() | {"status": response.status_code}


def test_confirm_on_an_unsure_picture_is_refused_and_nothing_saved(staff_client: Client, alice: User) -> None:
    upload = make_upload(alice, probability=0.55)
    answer = decide(staff_client, upload.pk, "confirm")
    assert answer["status"] == 400 and "choose phone or not a phone" in answer["error"]
    upload.refresh_from_db()
    assert upload.reviewed_label == ""


def test_previous_goes_back_to_the_picture_just_decided(staff_client: Client, alice: User) -> None:
    first = make_upload(alice, probability=0.5)
    second = make_upload(alice, probability=0.6)
    answer = decide(staff_client, first.pk, "phone")
    page = staff_client.get(answer["next_url"])
    assert page.context["upload"].pk == second.pk
    assert page.context["place"].previous_id == first.pk
    assert f'href="/review/{first.pk}/" rel="prev"' in page.content.decode()


def previous_of(client: Client, upload_id: int) -> int | None:
    """Where ← leads from the picture's page."""
    return client.get(f"/review/{upload_id}/").context["place"].previous_id


def test_previous_after_a_skip_goes_to_the_picture_just_decided_not_the_skipped_one(
    staff_client: Client, alice: User
) -> None:
    """← is where the reviewer has been: the queue's order put the skipped picture before the one a decision handed
    out, and ← went there, past the picture just decided (a keyboard walkthrough: S, →, P, ←)."""
    first, second, third = (make_upload(alice, probability=p).pk for p in (0.5, 0.55, 0.6))
    skip = staff_client.post(f"/review/{first}/skip", headers={"Accept": "application/json"}).json()
    assert skip["next_id"] == second and previous_of(staff_client, second) == first  # back to what was skipped
    assert staff_client.get(f"/review/{second}/").context["place"].next_id == third  # → passes over the second
    assert decide(staff_client, third, "phone")["next_id"] == second
    assert previous_of(staff_client, second) == third  # it said the skipped first
    # Deciding on the picture a skip handed out: ← from the next one is that decision too.
    assert decide(staff_client, second, "phone")["next_id"] == first
    assert previous_of(staff_client, first) == second


def test_previous_after_passing_over_and_deciding_goes_to_the_decision(staff_client: Client, alice: User) -> None:
    """→ past the first picture, a decision on the second: ← from the third is the second, just decided (it said
    the first, passed over before the decision)."""
    first, second, third = (make_upload(alice, probability=p).pk for p in (0.5, 0.55, 0.6))
    assert staff_client.get(f"/review/{first}/").context["place"].next_id == second
    assert decide(staff_client, second, "phone")["next_id"] == third
    assert previous_of(staff_client, third) == second


def test_previous_takes_back_next_around_skipped_pictures(staff_client: Client, alice: User) -> None:
    """ "Next" hands out skipped pictures after the rest; ← from the first skipped one is the last picture not
    skipped (it had none: a skipped picture came first in the queue's own order), and ← from a picture not skipped
    never goes to a skipped one that "Next" hands out later."""
    first, second, third = (make_upload(alice, probability=p).pk for p in (0.5, 0.55, 0.6))
    staff_client.post(f"/review/{first}/skip", headers={"Accept": "application/json"})
    walked = [second]
    while len(walked) < 4:
        walked.append(staff_client.get(f"/review/{walked[-1]}/").context["place"].next_id)
    assert walked == [second, third, first, second]  # → order: skipped last, then round to the first not skipped
    assert previous_of(staff_client, first) == third
    assert previous_of(staff_client, third) == second


def test_undo_restores_the_last_decision_and_returns_to_its_picture(
    staff_client: Client, alice: User, reviewer: User
) -> None:
    first = make_upload(alice, probability=0.5)
    make_upload(alice, probability=0.6)
    decide(staff_client, first.pk, "not_phone")
    assert Upload.objects.get(pk=first.pk).reviewed_label == "not_phone"  # saved, so there is something to undo
    response = staff_client.post("/review/undo", headers={"Accept": "application/json"})
    assert response.json()["url"] == f"/review/{first.pk}/"
    first.refresh_from_db()
    assert (first.reviewed_label, first.reviewed_by, first.reviewed_at) == ("", None, None)
    # Nothing left to undo: said plainly, nothing changed.
    again = staff_client.post("/review/undo", headers={"Accept": "application/json"})
    assert again.status_code == 400


def test_undo_of_a_changed_mind_puts_back_the_earlier_label(staff_client: Client, alice: User, reviewer: User) -> None:
    upload = make_upload(alice, probability=0.5, reviewed="phone", reviewer=reviewer)
    decide(staff_client, upload.pk, "not_phone")
    assert Upload.objects.get(pk=upload.pk).reviewed_label == "not_phone"  # the mind was changed...
    staff_client.post("/review/undo")
    upload.refresh_from_db()
    assert upload.reviewed_label == "phone"  # ...and changed back


def test_skip_moves_on_and_leaves_the_picture_for_the_end(staff_client: Client, alice: User) -> None:
    first = make_upload(alice, probability=0.5)
    second = make_upload(alice, probability=0.6)
    answer = staff_client.post(f"/review/{first.pk}/skip", headers={"Accept": "application/json"}).json()
    assert answer["next_id"] == second.pk
    assert staff_client.get("/review/")["Location"] == f"/review/{second.pk}/"
    # Its place says what the reviewer sees: first of the two (it said "2 of 2", counting the skipped one ahead),
    # and "Next" walks the same order: on to the skipped one, and from it to the first one not skipped that is left
    # (it led nowhere: a reviewer who went back to a skipped picture was stuck with pictures left to review).
    place = staff_client.get(f"/review/{second.pk}/").context["place"]
    assert (place.position, place.remaining, place.next_id) == (1, 2, first.pk)
    place = staff_client.get(f"/review/{first.pk}/").context["place"]
    assert (place.position, place.next_id) == (2, second.pk)  # skipped: behind the rest, then what is left
    first.refresh_from_db()
    assert first.reviewed_label == ""
    # Once the rest is decided, the skipped picture comes back.
    assert decide(staff_client, second.pk, "phone")["next_id"] == first.pk


def test_the_same_picture_sent_four_times_is_one_item_and_one_decision_labels_all(
    staff_client: Client, alice: User, bob: User
) -> None:
    copies = [make_upload(owner, probability=0.5, sha256="a" * 64) for owner in (alice, alice, bob, alice)]
    other = make_upload(alice, probability=0.6)
    page = staff_client.get(f"/review/{copies[0].pk}/")
    assert page.context["place"].remaining == 2
    assert "Sent 4 times: one decision labels all 4 uploads" in page.content.decode()
    twice = [make_upload(alice, probability=0.7, sha256="c" * 64) for _ in range(2)]
    assert (
        "Sent 2 times: one decision labels both uploads" in staff_client.get(f"/review/{twice[0].pk}/").content.decode()
    )
    answer = decide(staff_client, copies[0].pk, "phone")
    assert answer["labelled"] == 4 and answer["next_id"] == other.pk
    assert {copy.reviewed_label for copy in Upload.objects.filter(sha256="a" * 64)} == {"phone"}
    staff_client.post("/review/undo")
    assert {copy.reviewed_label for copy in Upload.objects.filter(sha256="a" * 64)} == {""}


def test_deciding_again_on_one_copy_of_a_picture_relabels_every_copy(staff_client: Client, alice: User) -> None:
    """Copies of one picture are one item: a second decision on one copy (from the queue's history or the admin)
    relabelled that copy alone, leaving the picture with two labels."""
    copies = [make_upload(alice, probability=0.5, sha256="d" * 64) for _ in range(3)]
    decide(staff_client, copies[0].pk, "phone")
    assert set(Upload.objects.filter(sha256="d" * 64).values_list("reviewed_label", flat=True)) == {"phone"}

    decide(staff_client, copies[1].pk, "not_phone")

    assert set(Upload.objects.filter(sha256="d" * 64).values_list("reviewed_label", flat=True)) == {"not_phone"}


def test_a_picture_sent_again_after_its_review_says_what_was_decided_before(
    staff_client: Client, alice: User, bob: User, reviewer: User
) -> None:
    """The label stays with the upload that was reviewed, so the new one is in the queue again: its page said
    nothing of the earlier decision."""
    make_upload(alice, probability=0.5, sha256="e" * 64, reviewed="phone", reviewer=reviewer)
    sent_again = make_upload(bob, probability=0.5, sha256="e" * 64)

    page = " ".join(staff_client.get(f"/review/{sent_again.pk}/").content.decode().split())

    assert "Reviewed before, on another upload of this picture: <strong>phone</strong> by rita" in page
    assert "Sent 2 times: one decision labels both uploads" in page


def test_ground_truth_needs_the_permission_the_admins_actions_need(alice: User, second_reviewer: User) -> None:
    """Any staff user could mark ground truth in the queue (it decides promotions), while the admin's same actions
    needed the change permission. Refused whole: nothing saved, the switch not offered."""
    from django.contrib.auth.models import Permission

    from tests.factories import client_for

    upload = make_upload(alice, probability=0.5)
    plain_staff = client_for(second_reviewer)
    assert 'id="ground-truth"' not in plain_staff.get(f"/review/{upload.pk}/").content.decode()

    refused = plain_staff.post(
        f"/review/{upload.pk}/decide", {"decision": "phone", "ground_truth": "1"}, HTTP_ACCEPT="application/json"
    )

    assert refused.status_code == 403 and "may mark ground truth" in refused.json()["error"]
    upload.refresh_from_db()
    assert (upload.reviewed_label, upload.ground_truth_label) == ("", "")

    second_reviewer.user_permissions.add(Permission.objects.get(codename="change_upload"))
    allowed = client_for(User.objects.get(pk=second_reviewer.pk))
    assert 'id="ground-truth"' in allowed.get(f"/review/{upload.pk}/").content.decode()
    allowed.post(f"/review/{upload.pk}/decide", {"decision": "phone", "ground_truth": "1"})
    upload.refresh_from_db()
    assert upload.ground_truth_label == "phone"


def test_a_reviewer_who_cannot_change_ground_truth_is_told_their_decision_leaves_it(
    alice: User, second_reviewer: User
) -> None:
    """A reviewer without the permission relabelled a ground-truth picture and was told only "Saved": the ground
    truth (which scores every model version) silently stayed as it was."""
    from tests.factories import client_for

    upload = make_upload(alice, probability=0.5)
    Upload.objects.filter(pk=upload.pk).update(ground_truth_label="phone")
    plain_staff = client_for(second_reviewer)
    page = " ".join(plain_staff.get(f"/review/{upload.pk}/").content.decode().split())
    assert "Your decision does not change it: that needs staff who may change uploads." in page

    decided = plain_staff.post(f"/review/{upload.pk}/decide", {"decision": "not_phone"}, follow=True)

    said = " ".join(decided.content.decode().split())
    assert "Its ground truth stays phone: to change it, ask staff who may change uploads." in said
    upload.refresh_from_db()
    assert (upload.reviewed_label, upload.ground_truth_label) == ("not_phone", "phone")


def test_a_second_opinion_that_agrees_with_the_ground_truth_is_not_told_it_stays(
    alice: User, reviewer: User, second_reviewer: User
) -> None:
    """The note compared the ground truth with the stored label, which after a second opinion is still the first
    reviewer's: a second reviewer agreeing with the ground truth was told "Its ground truth stays phone"."""
    from phoneapp.models import SecondReview
    from tests.factories import client_for

    upload = make_upload(alice, probability=0.99)
    Upload.objects.filter(pk=upload.pk).update(ground_truth_label="phone")
    client_for(reviewer).post(f"/review/{upload.pk}/decide", {"decision": "not_phone"})
    assert Upload.objects.get(pk=upload.pk).second_review == SecondReview.WAITING  # against a confident verdict

    decided = client_for(second_reviewer).post(f"/review/{upload.pk}/decide", {"decision": "phone"}, follow=True)

    said = " ".join(decided.content.decode().split())
    assert "you disagree with rita" in said and "ground truth stays" not in said


def test_a_decision_whose_ground_truth_cannot_be_saved_saves_nothing(
    staff_client: Client, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The review and the ground truth of one decision are one change: they were two transactions, and a failure
    in the second left the review saved, without its ground truth and without the undo entry naming both."""
    from django.db import DatabaseError

    upload = make_upload(alice, probability=0.5)

    def database_gone(**kwargs: object) -> None:
        raise DatabaseError("server closed the connection unexpectedly")

    monkeypatch.setattr("phoneapp.services.ground_truth.uploads_mark_ground_truth", database_gone)
    with pytest.raises(DatabaseError):
        staff_client.post(f"/review/{upload.pk}/decide", {"decision": "phone", "ground_truth": "1"})

    upload.refresh_from_db()
    assert (upload.reviewed_label, upload.ground_truth_label) == ("", "")


def test_undoing_a_decision_on_a_picture_deleted_since_says_so_and_returns_to_the_queue(
    staff_client: Client, alice: User
) -> None:
    """It said another reviewer had decided since, and pointed at the picture's page, which answered 404."""
    from phoneapp.services.upload_deletion import upload_delete

    upload = make_upload(alice, probability=0.5)
    staff_client.post(f"/review/{upload.pk}/decide", {"decision": "phone"})
    upload_delete(upload=upload)

    answer = staff_client.post("/review/undo", HTTP_ACCEPT="application/json")

    assert answer.json()["url"] == "/review/"
    page = staff_client.get("/review/").content.decode()
    assert "Not undone: the picture was deleted since." in page


def test_undoing_a_decision_whose_upload_was_deleted_still_undoes_the_other_copies_and_says_so(
    staff_client: Client, alice: User, bob: User
) -> None:
    from phoneapp.services.upload_deletion import upload_delete

    alices = make_upload(alice, probability=0.5, sha256="c" * 64)
    bobs = make_upload(bob, probability=0.5, sha256="c" * 64)
    staff_client.post(f"/review/{alices.pk}/decide", {"decision": "phone"})
    upload_delete(upload=alices)

    staff_client.post("/review/undo")

    bobs.refresh_from_db()
    assert bobs.reviewed_label == ""
    page = staff_client.get("/review/", follow=True).content.decode()  # the queue opens Bob's copy
    assert "Undone on the other uploads of this picture" in page
