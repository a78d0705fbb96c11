"""A box table gives phone boxes to pictures whose own folder has none (the video frames of ``phone-images``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_training.scene.data import SceneSample, read_box_table, with_box_table

REPO_ROOT = Path(__file__).resolve().parent.parent


def write_table(path: Path, *rows: str) -> Path:
    path.write_text("\n".join(["folder,file,phone_boxes,annotation", *rows]) + "\n")
    return path


def samples_in(root: Path) -> list[SceneSample]:
    return [
        SceneSample(path=str(root / "frames" / "phone" / "a.jpg"), label="phone", source="video"),
        SceneSample(path=str(root / "frames" / "phone" / "b.jpg"), label="phone", source="video"),
        SceneSample(path=str(root / "frames" / "not_phone" / "c.jpg"), label="not_phone", source="video"),
    ]


def test_the_table_boxes_the_pictures_it_names_and_leaves_the_rest(tmp_path: Path) -> None:
    table = write_table(
        tmp_path / "boxes.csv",
        "frames,phone/a.jpg,0.1 0.2 0.3 0.4;0.5 0.5 0.6 0.7,somewhere.xml",
        "other-folder,phone/a.jpg,0.0 0.0 0.5 0.5,elsewhere.xml",
    )
    boxed = with_box_table(samples_in(tmp_path), read_box_table(table))
    assert boxed[0].boxes == ((0.1, 0.2, 0.3, 0.4), (0.5, 0.5, 0.6, 0.7))
    assert [sample.boxes for sample in boxed[1:]] == [(), ()]
    assert [sample.path for sample in boxed] == [sample.path for sample in samples_in(tmp_path)]


def test_a_table_putting_a_phone_in_a_phone_free_picture_is_refused(tmp_path: Path) -> None:
    table = write_table(tmp_path / "boxes.csv", "frames,not_phone/c.jpg,0.1 0.2 0.3 0.4,x.xml")
    with pytest.raises(ValueError, match="labelled not_phone"):
        with_box_table(samples_in(tmp_path), read_box_table(table))


@pytest.mark.parametrize(("boxes", "message"), [("0.5 0.2 0.3 0.4", "not inside the picture"), ("", "no box")])
def test_a_bad_or_empty_box_is_refused_naming_the_picture(tmp_path: Path, boxes: str, message: str) -> None:
    table = write_table(tmp_path / "boxes.csv", f"frames,phone/a.jpg,{boxes},x.xml")
    with pytest.raises(ValueError, match=message) as refused:
        read_box_table(table)
    assert "phone/a.jpg" in str(refused.value)


def test_the_shipped_table_boxes_every_video_frame_of_phone_images() -> None:
    """The table the model card's training command uses: one row per video frame, each box inside its picture."""
    table = read_box_table(REPO_ROOT / "ml_training" / "annotations" / "phone-usage-video-boxes.csv")
    assert len(table) == 24
    assert {folder for folder, _ in table} == {"phone-images"}
    assert all(file.startswith("phone/phone-usage-video-") for _, file in table)
