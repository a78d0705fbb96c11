"""In-process figures: one picture on the warm model, the batch API, and the prototype's load-per-request loop.

Every single-picture figure starts from the JPEG bytes (decode with Pillow's draft, one resize, tensor, model):
what a worker does for an upload once it has the file. The fast path and eager fp32 torch are timed in alternating
rounds on the same pictures, so both see the same load from whatever else runs on the machine.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks._stats import percentile
from inference.base import BaseClassifier
from inference.contract import Classifier
from inference.export_cache import default_cache_dir
from inference.images import open_image
from inference.loader import load, resolve_model_dir
from inference.runtime import predict_files


def _timed(function: Callable[[], object]) -> tuple[float, float]:
    """(wall ms, CPU ms of this process) for one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000


def classify_bytes(classifier: Classifier, data: bytes) -> None:
    picture = open_image(data, draft_size=classifier.manifest.preprocessing.draft_size)
    classifier.predict([picture])


def _engine(classifier: Classifier) -> BaseClassifier:
    """The engine behind the contract: the model-only figures call its ``preprocess_array`` and ``run`` directly."""
    if not isinstance(classifier, BaseClassifier):
        raise TypeError(f"{type(classifier).__name__} is not an engine of inference.base.BaseClassifier")
    return classifier


def measure_model(
    pictures: list[bytes], *, threads: int, model: str | None = None, iterations: int = 200, rounds: int = 4
) -> dict[str, Any]:
    """Single-picture latency of the fast path and of eager fp32 torch, the batch API, and the per-load loop."""
    torch.set_num_threads(threads)
    model_dir = resolve_model_dir(model)
    started = time.perf_counter()
    reference = load(model_dir, engine="torch", threads=threads)
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    fast = _engine(load(model_dir, threads=threads, cache_dir=default_cache_dir()))
    prepare_s = time.perf_counter() - started
    engines: dict[str, Classifier] = {fast.engine: fast, "torch-fp32": reference}
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in engines}
    for classifier in engines.values():  # warm-up
        for data in pictures[:10]:
            classify_bytes(classifier, data)
    per_round = max(1, iterations // rounds)
    for round_index in range(rounds):
        for name, classifier in engines.items():
            for index in range(per_round):
                data = pictures[(round_index * per_round + index) % len(pictures)]
                samples[name].append(_timed(partial(classify_bytes, classifier, data)))
    fast_name = next(iter(engines))
    result: dict[str, Any] = {
        "model_version": reference.version,
        "engine": fast_name,
        "model_load_s": round(load_s, 3),
        "engine_prepare_s": round(prepare_s, 3),
    }
    for name, values in samples.items():
        walls, cpus = [wall for wall, _ in values], [cpu for _, cpu in values]
        key = "model" if name == fast_name else "torch_fp32"
        result[f"{key}_ms_p50"] = round(percentile(walls, 0.5), 2)
        result[f"{key}_ms_p95"] = round(percentile(walls, 0.95), 2)
        result[f"{key}_cpu_ms_p50"] = round(percentile(cpus, 0.5), 2)
    result.update(_engine_agreement(fast, reference, pictures[:200]))
    result["stages_ms_p50"] = _stages(fast, pictures[:50])
    result.update(_batch(fast, pictures))
    result["batch_sweep_ms_per_image"] = _batch_sweep(fast, pictures)
    result.update(_per_request_load(model_dir, pictures, result["model_ms_p50"]))
    result.update(_model_cpu_one_thread(model_dir, pictures))
    return result


def _engine_agreement(fast: Classifier, reference: Classifier, pictures: list[bytes]) -> dict[str, Any]:
    """Do the serving engine and eager torch give the same verdicts and boxes on the same pictures?"""
    same_label, same_best_box, largest_gap = 0, 0, 0.0
    for data in pictures:
        picture = open_image(data, draft_size=fast.manifest.preprocessing.draft_size)  # one manifest, both engines
        [served], [eager] = fast.predict([picture]), reference.predict([picture])
        same_label += served.label == eager.label
        largest_gap = max(largest_gap, abs(served.probability - eager.probability))
        best = [prediction.boxes[0].rounded_corners() if prediction.boxes else None for prediction in (served, eager)]
        if best[0] is None or best[1] is None:
            same_best_box += best[0] == best[1]
        else:  # within 0.2% of the picture's side: the same box up to float rounding
            same_best_box += max(abs(a - b) for a, b in zip(best[0], best[1], strict=True)) <= 0.002
    return {
        "engines_same_label": f"{same_label}/{len(pictures)}",
        "engines_same_best_box": f"{same_best_box}/{len(pictures)}",
        "engines_largest_probability_gap": round(largest_gap, 5),
    }


def _model_cpu_one_thread(model_dir: Path, pictures: list[bytes]) -> dict[str, float]:
    """Mean CPU ms of the serving engine's forward passes alone, one thread, one picture at a time (issue 13's cost):
    the model's, plus its second opinion's on the pictures it is consulted on (``inference/second_opinion.py``)."""
    classifier = _engine(load(model_dir, threads=1, cache_dir=default_cache_dir()))
    member = _engine(classifier.second_opinion) if classifier.second_opinion is not None else None
    spec = classifier.manifest.second_opinion
    draft = classifier.manifest.preprocessing.draft_size
    images = [open_image(data, draft_size=draft) for data in pictures[:200]]
    classifier.run(classifier.preprocess_array(images[:1]))
    if member is not None:
        member.run(member.preprocess_array(images[:1]))
    cpu, consulted = [], 0
    for image in images:
        batch = classifier.preprocess_array([image])
        started = time.process_time()
        outputs = classifier.run(batch)
        spent = time.process_time() - started
        if member is not None and spec is not None:
            [probability] = classifier.calibrated(outputs.logits)
            if spec.consulted(probability, classifier.manifest.threshold):
                consulted += 1
                member_batch = member.preprocess_array([image])
                started = time.process_time()
                member.run(member_batch)
                spent += time.process_time() - started
        cpu.append(spent * 1000)
    return {
        "model_cpu_ms_mean_one_thread": round(float(np.mean(cpu)), 2),
        "second_opinion_consulted": round(consulted / len(images), 3),
    }


def _stages(classifier: BaseClassifier, pictures: list[bytes]) -> dict[str, float]:
    """Where a single picture's time goes (median ms): decode, resize + tensor, model."""
    draft = classifier.manifest.preprocessing.draft_size
    decode, preprocess, model = [], [], []
    for data in pictures:
        started = time.perf_counter()
        picture = open_image(data, draft_size=draft)
        decoded = time.perf_counter()
        batch = classifier.preprocess_array([picture])
        prepared = time.perf_counter()
        classifier.run(batch)
        done = time.perf_counter()
        decode.append((decoded - started) * 1000)
        preprocess.append((prepared - decoded) * 1000)
        model.append((done - prepared) * 1000)
    return {
        name: round(statistics.median(values), 2)
        for name, values in [("decode", decode), ("preprocess", preprocess), ("model", model)]
    }


def _batch(classifier: Classifier, pictures: list[bytes], *, count: int = 256, repeats: int = 3) -> dict[str, Any]:
    """Pictures per second, JPEG bytes to verdicts, for 256 pictures: the batch API (``predict_files``, two
    threads) and, for comparison, one thread decoding then calling ``predict`` on the list. Medians of ``repeats``.
    """
    chosen = [pictures[index % len(pictures)] for index in range(count)]
    draft = classifier.manifest.preprocessing.draft_size
    rates: dict[str, list[float]] = {"batch_images_per_s": [], "batch_images_per_s_one_thread": []}
    for _ in range(repeats):
        started = time.perf_counter()
        predictions = predict_files(classifier, chosen, workers=2)
        rates["batch_images_per_s"].append(len(predictions) / (time.perf_counter() - started))
        started = time.perf_counter()
        verdicts = classifier.predict([open_image(data, draft_size=draft) for data in chosen])
        rates["batch_images_per_s_one_thread"].append(len(verdicts) / (time.perf_counter() - started))
    return {name: round(statistics.median(values), 1) for name, values in rates.items()}


def _batch_sweep(
    classifier: BaseClassifier, pictures: list[bytes], sizes: tuple[int, ...] = (1, 4, 8, 16, 32)
) -> dict[str, float]:
    """Model-only milliseconds per picture at each batch size: does batching pay on this CPU?"""
    draft = classifier.manifest.preprocessing.draft_size
    arrays = classifier.preprocess_array([open_image(data, draft_size=draft) for data in pictures[:32]])
    sweep = {}
    for size in sizes:
        batch = arrays[:size]  # a leading-axis slice of a contiguous batch is contiguous
        classifier.run(batch)
        times = []
        for _ in range(max(3, 64 // size)):
            started = time.perf_counter()
            classifier.run(batch)
            times.append((time.perf_counter() - started) * 1000 / size)
        sweep[str(size)] = round(statistics.median(times), 2)
    return sweep


def _load_and_classify(model_dir: Path, data: bytes) -> None:
    classify_bytes(load(model_dir, engine="torch"), data)


def _per_request_load(
    model_dir: Path, pictures: list[bytes], resident_ms: float, *, repeats: int = 8
) -> dict[str, Any]:
    """The prototype: read the checkpoint and build the network for every request, then classify in eager fp32."""
    times = []
    for index in range(repeats):
        data = pictures[index % len(pictures)]
        times.append(_timed(partial(_load_and_classify, model_dir, data))[0])
    reference_ms = statistics.median(times)
    return {
        "reference_per_request_load_ms": round(reference_ms, 1),
        "speedup_vs_per_request_load": round(reference_ms / resident_ms, 1),
    }
