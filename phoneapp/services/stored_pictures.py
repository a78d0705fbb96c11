"""Reading an upload's stored picture back for a model, through Django's storage API (local disk or S3 alike)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from PIL import Image

from inference.images import open_image
from phoneapp.models import Upload

if TYPE_CHECKING:
    from inference.contract import Classifier


def stored_picture_for(upload: Upload, classifier: Classifier) -> Image.Image:
    """Decode the stored picture with the upload pixel limit, JPEG-drafted to the classifier's input size.

    Raises :class:`inference.images.ImageError` or :class:`OSError` when the stored file is damaged or gone.
    """
    with upload.image.open("rb") as handle:
        return open_image(
            handle,
            max_pixels=settings.UPLOAD_MAX_PIXELS,
            draft_size=classifier.manifest.preprocessing.draft_size,
        )
