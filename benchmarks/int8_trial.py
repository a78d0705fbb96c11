"""``python benchmarks/int8_trial.py [--model NAME] [--calibration 100]``: is int8 worth it? (It was not.)

Post-training static int8 quantization of the exported graph with ONNX Runtime (per-channel weights, MinMax
calibration on labelled pictures, convolutions only so the head stays fp32), in two variants: plain u8s8, and
``reduce_range`` (7-bit weights, which avoids the u8s8 saturation of AVX2 CPUs without VNNI). Prints accuracy on
the labelled set, verdicts changed against fp32, and CPU milliseconds per picture on one thread. The calibration
pictures are the first ``--calibration`` of a seeded shuffle; accuracy is over all pictures.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from benchmarks.pictures import labelled_files  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/int8_trial.py", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--calibration", type=int, default=100)
    args = parser.parse_args(argv)

    import numpy as np
    import onnxruntime
    import torch
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from inference.acceleration import export_onnx, probe_pictures
    from inference.images import open_image
    from inference.loader import load_classifier, resolve_model_dir

    torch.set_num_threads(1)
    classifier = load_classifier(resolve_model_dir(args.model))
    files = labelled_files()
    draft = classifier.manifest.preprocessing.draft_size
    batches = [classifier.preprocess([open_image(path, draft_size=draft)]).numpy() for path, _ in files]
    labels = np.array([label == "phone" for _, label in files])
    order = list(range(len(files)))
    random.Random(0).shuffle(order)
    workdir = Path(tempfile.mkdtemp(prefix="int8-trial-"))
    fp32_path = workdir / "fp32.onnx"
    fp32_path.write_bytes(export_onnx(classifier, classifier.preprocess(probe_pictures())))
    quant_pre_process(str(fp32_path), str(workdir / "pre.onnx"))

    class Calibration(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(order[: args.calibration])

        def get_next(self) -> dict | None:
            index = next(self.items, None)
            return None if index is None else {"images": batches[index]}

    def evaluate(path: Path) -> tuple[np.ndarray, float]:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        logits = np.concatenate([session.run(None, {"images": batch})[0] for batch in batches])
        cpu = []
        for batch in batches[:60]:
            started = time.process_time()
            session.run(None, {"images": batch})
            cpu.append((time.process_time() - started) * 1000)
        return logits, float(np.median(cpu))

    threshold = classifier.manifest.threshold
    temperature = classifier.manifest.temperature

    def verdicts(logits: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-logits / temperature)) >= threshold

    reference, reference_cpu = evaluate(fp32_path)
    print(f"model {classifier.version}, {len(files)} pictures, calibration {args.calibration}")
    print(f"fp32               accuracy {100 * (verdicts(reference) == labels).mean():.2f}  cpu ms {reference_cpu:.1f}")
    for name, options in (("int8 u8s8", {}), ("int8 reduce_range", {"reduce_range": True})):
        path = workdir / f"{name.replace(' ', '-')}.onnx"
        quantize_static(
            str(workdir / "pre.onnx"),
            str(path),
            Calibration(),
            quant_format=QuantFormat.QOperator,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            calibrate_method=CalibrationMethod.MinMax,
            op_types_to_quantize=["Conv"],
            **options,
        )
        logits, cpu = evaluate(path)
        changed = int((verdicts(logits) != verdicts(reference)).sum())
        print(
            f"{name:18} accuracy {100 * (verdicts(logits) == labels).mean():.2f}  cpu ms {cpu:.1f}  "
            f"verdicts changed {changed} ({100 * changed / len(files):.1f}%)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
