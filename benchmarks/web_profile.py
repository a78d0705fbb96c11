"""``python -m benchmarks.web_profile``: where the web process spends its CPU on ``POST /api/uploads/``.

The e2e benchmark says how much CPU gunicorn spends per upload; this says on what. It runs the production WSGI
application in this process (``DEBUG=0``, the benchmark's database ``phonecheck_bench`` and Redis database 14 as
the broker, nobody consuming), sends distinct labelled pictures through it the way a client would (multipart, token
header), and reports CPU per upload, the same under ``cProfile`` by stage, and the top functions by cumulative time.
CPU time, not wall time: it hardly depends on what else the machine runs. Do not run it while ``benchmarks.run``
uses the same database and Redis database.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import inspect
import io
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
import types
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.e2e_bench import (
    BENCH_REDIS_DB,
    REPO_ROOT,
    _reset_database,
    _reset_redis,
    bench_env,
    multipart_upload,
)
from benchmarks.pictures import sample_pictures

BENCH_BROKER = f"redis://127.0.0.1:6379/{BENCH_REDIS_DB}"

# Stage name -> (module, attribute path) of the functions whose CPU time is that stage's cost (the first that
# exists: the profiler also runs on older code, for A/B). Stages nest (the service holds validation, validation
# holds the decode, ...). Timed by wrapping each function with a CPU clock, in a pass without the profiler:
# cProfile's own cost inflates Python-heavy code (the ORM, DRF) several times more than C-heavy code (Pillow), so
# its cumulative times are only good for the shape.
WEB_STAGES: dict[str, list[tuple[str, str]]] = {
    "whole request (WSGI handler)": [("django.core.handlers.wsgi", "WSGIHandler.__call__")],
    "authentication (token lookup)": [("rest_framework.authentication", "TokenAuthentication.authenticate")],
    "rate limit (cache)": [
        ("phoneapp.throttling", "UploadRateThrottle.allow_request"),
        ("phoneapp.api.throttling", "UploadRateThrottle.allow_request"),
    ],
    "view (POST handler)": [("phoneapp.api.views", "UploadListCreateApi.post")],
    "uploads_create (service)": [("phoneapp.services.uploads", "uploads_create")],
    "validation": [("phoneapp.services.image_validation", "validate_image_file")],
    "validation: decode (open_image)": [("phoneapp.services.image_validation", "open_image")],
    "validation: header read": [("phoneapp.services.image_validation", "_read_header")],
    "validation: thumbnail encode": [("phoneapp.services.image_validation", "_thumbnail_jpeg")],
    "validation: metadata strip": [("phoneapp.services.image_validation", "metadata_stripped")],
    "duplicate lookup": [("phoneapp.services.uploads", "_twin_of")],
    "file writes (storage)": [("phoneapp.services.uploads", "stored_file_write")],
    "row INSERT (Model.save)": [("django.db.models.base", "Model.save")],
    "commit + on_commit hooks": [("django.db.backends.base.base", "BaseDatabaseWrapper.run_and_clear_commit_hooks")],
    "broker send (apply_async)": [("celery.app.task", "Task.apply_async")],
    "queued_at UPDATE": [
        ("phoneapp.services.classification", "_mark_queued"),
        ("phoneapp.services.classification", "_record_queued"),
    ],
    "read back": [("phoneapp.api.views", "uploads_get_many"), ("phoneapp.services.uploads", "_read_back")],
    "response serializer (.data)": [("rest_framework.serializers", "ListSerializer.data")],
    "SQL execute (all statements)": [("django.db.backends.utils", "CursorWrapper._execute")],
}
# The worker's part, ``upload_classify`` called in this process (Celery's own per-task cost is not in it: the
# e2e benchmark's worker CPU per upload minus this is).
WORKER_STAGES: dict[str, list[tuple[str, str]]] = {
    "upload_classify (all)": [("phoneapp.services.classification", "upload_classify")],
    "claim (+ read the row)": [
        ("phoneapp.services.classification", "_claim"),
        ("phoneapp.services.classification", "_claim_pending"),
    ],
    "decode the stored picture": [("phoneapp.services.classification", "stored_picture_for")],
    "model: preprocess + forward pass": [("inference.base", "BaseClassifier.predict_and_explain")],
    "model: preprocess": [("inference.base", "BaseClassifier.preprocess_array")],
    "model: forward pass (ONNX Runtime)": [("inference.onnx_engine", "OnnxClassifier.run")],
    "thumbnail (draw + write)": [("phoneapp.services.classification", "upload_thumbnail_store")],
    "thumbnail: draw": [("phoneapp.services.thumbnails", "thumbnail_jpeg")],
    "thumbnail: write (storage)": [("phoneapp.services.thumbnails", "stored_file_write")],
    "evidence pack": [("phoneapp.services.classification", "evidence_pack")],
    "verdict UPDATE (QuerySet.update)": [("django.db.models.query", "QuerySet.update")],
    "log records": [("logging", "Logger.handle")],
    "heat-map task send (apply_async)": [("celery.app.task", "Task.apply_async")],
    "SQL execute (all statements)": [("django.db.backends.utils", "CursorWrapper._execute")],
}


def _prepare() -> str:
    """A fresh database and broker, migrated, with one user; returns the user's API token."""
    env = bench_env(media=Path(tempfile.mkdtemp(prefix="phonecheck-webprofile-")), broker=BENCH_BROKER)
    _reset_database()
    _reset_redis(env["CELERY_BROKER_URL"])
    os.environ.update(env)
    migrate = [sys.executable, "manage.py", "migrate", "--noinput"]
    subprocess.run(migrate, cwd=REPO_ROOT, check=True, capture_output=True)
    import django

    django.setup()
    from django.contrib.auth.models import User

    from phoneapp.services.api_tokens import api_token_regenerate
    from phoneapp.services.model_versions import model_versions_sync_from_disk

    model_versions_sync_from_disk()
    user = User.objects.create_user("profile", password=uuid.uuid4().hex)
    return api_token_regenerate(user=user)


def _environ(data: bytes, name: str, token: str) -> dict[str, Any]:
    content_type, body = multipart_upload(data, name)
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/api/uploads/",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_AUTHORIZATION": f"Token {token}",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


def _send_all(application: Callable[..., Any], pictures: list[bytes], token: str, tag: str) -> None:
    statuses: list[str] = []
    for index, data in enumerate(pictures):
        result = application(_environ(data, f"{tag}-{index}.jpg", token), lambda s, h, e=None: statuses.append(s))
        b"".join(result)
        result.close()  # request_finished: what gunicorn does after each response (closes old connections, ...)
        if not statuses[-1].startswith("201"):
            raise RuntimeError(f"upload refused: {statuses[-1]}")


def _timed_stages(stages: dict[str, list[tuple[str, str]]], run: Callable[[], None], count: int) -> dict[str, float]:
    """CPU ms per upload in each stage while ``run`` handles ``count`` uploads; stages this code lacks are left
    out."""
    spent: dict[str, float] = {}
    restore: list[tuple[object, str, object]] = []

    def wrap(stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                spent[stage] += time.process_time() - started

        return timed

    for stage, candidates in stages.items():
        found = _find(candidates)
        if found is None:
            continue
        owner, attribute = found
        spent[stage] = 0.0
        original = inspect.getattr_static(owner, attribute)
        restore.append((owner, attribute, original))
        if isinstance(original, property):
            replacement: object = property(wrap(stage, original.fget))  # type: ignore[arg-type]
        else:
            replacement = wrap(stage, getattr(owner, attribute))
        setattr(owner, attribute, replacement)
        if isinstance(owner, types.ModuleType):  # a module's function: also where other modules imported it by name
            for module in list(sys.modules.values()):
                for name, value in list(vars(module).items()) if module is not owner else ():
                    if value is original:
                        restore.append((module, name, original))
                        setattr(module, name, replacement)
    try:
        run()
    finally:
        for owner, attribute, original in reversed(restore):
            setattr(owner, attribute, original)
    return {stage: round(seconds * 1000 / count, 2) for stage, seconds in spent.items()}


def _find(candidates: list[tuple[str, str]]) -> tuple[object, str] | None:
    for module_name, path in candidates:
        owner: object = importlib.import_module(module_name)
        *parents, attribute = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent, None)
        if owner is not None and hasattr(owner, attribute):
            return owner, attribute
    return None


def _classify_all(upload_ids: list[int]) -> None:
    from phoneapp.services.classification import upload_classify

    for upload_id in upload_ids:
        upload = upload_classify(upload_id=upload_id)
        if upload is None or upload.status != "done":
            raise RuntimeError(f"upload {upload_id} not classified")


def profile(uploads: int, *, warmup: int = 20, top: int = 40) -> dict[str, Any]:
    pictures, source = sample_pictures(warmup + 3 * uploads, seed=17)
    os.environ["INFERENCE_THREADS"] = "1"  # as the Procfile's worker processes
    token = _prepare()
    from phoneapp.models import Upload
    from phoneapp.resident_model import resident_model
    from phoneapp.wsgi import application

    _send_all(application, pictures[:warmup], token, "warm")
    plain = pictures[warmup : warmup + uploads]
    started = time.process_time()
    _send_all(application, plain, token, "plain")
    web_cpu_ms = (time.process_time() - started) * 1000 / uploads

    timed = pictures[warmup + uploads : warmup + 2 * uploads]
    stages = _timed_stages(WEB_STAGES, lambda: _send_all(application, timed, token, "timed"), uploads)

    profiler = cProfile.Profile(time.process_time)
    profiled = pictures[warmup + 2 * uploads :]
    profiler.enable()
    _send_all(application, profiled, token, "profiled")
    profiler.disable()
    listing = _listing(profiler, top)

    # The worker's share, on the uploads just stored (their messages wait unconsumed in the broker).
    pending = list(Upload.objects.filter(status="pending").order_by("pk").values_list("pk", flat=True))
    resident_model.current()
    _classify_all(pending[:warmup])
    batches = [pending[warmup + index * uploads : warmup + (index + 1) * uploads] for index in range(2)]
    started = time.process_time()
    _classify_all(batches[0])
    worker_cpu_ms = (time.process_time() - started) * 1000 / len(batches[0])
    worker_stages = _timed_stages(WORKER_STAGES, lambda: _classify_all(batches[1]), len(batches[1]))

    _reset_redis(os.environ["CELERY_BROKER_URL"])
    shutil.rmtree(os.environ["MEDIA_ROOT"], ignore_errors=True)
    return {
        "pictures": source,
        "uploads": uploads,
        "web_cpu_ms_per_upload": round(web_cpu_ms, 2),
        "stages_cpu_ms_per_upload": stages,
        "worker_cpu_ms_per_upload_in_process": round(worker_cpu_ms, 2),
        "worker_stages_cpu_ms_per_upload": worker_stages,
        "top_cumulative": listing,
    }


def _listing(profiler: cProfile.Profile, top: int) -> str:
    stats = pstats.Stats(profiler)
    listing = io.StringIO()
    stats.stream = listing  # type: ignore[attr-defined]
    stats.sort_stats("cumulative").print_stats(top)
    return listing.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.web_profile", description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=200, help="uploads timed (and as many profiled)")
    parser.add_argument("--top", type=int, default=40, help="functions listed by cumulative time")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = profile(args.uploads, top=args.top)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"web CPU per upload (no profiler): {result['web_cpu_ms_per_upload']} ms, {args.uploads} uploads")
    print("CPU ms per upload by stage (stages nest; timed without the profiler):")
    for stage, value in result["stages_cpu_ms_per_upload"].items():
        print(f"  {stage:38} {value:8.2f}")
    print(f"worker (upload_classify in this process): {result['worker_cpu_ms_per_upload_in_process']} ms per upload")
    for stage, value in result["worker_stages_cpu_ms_per_upload"].items():
        print(f"  {stage:38} {value:8.2f}")
    print(result["top_cumulative"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
