"""``python -m benchmarks.run [--json]``: every performance figure of issue 6, measured on this machine in one run.

``python -m benchmarks.run load [--uploads N ...]``: the bounded load test instead (``benchmarks/load_test.py``:
thousands of uploads through its own PostgreSQL database, Redis, gunicorn and worker; every upload must end done,
none lost or duplicated); ``... run outage`` the broker-outage count (``broker_outage.py``), ``... run web-profile``
the web process's CPU by stage (``web_profile.py``). Every benchmark runs from the repository root this way; none
patches ``sys.path``.

In-process (``benchmarks/model_bench.py``): one picture on the warm model (decode and preprocessing included),
256 pictures through the batch API, and the prototype's loop that loads the checkpoint for every request.
End to end (``benchmarks/e2e_bench.py``): gunicorn, PostgreSQL (database ``phonecheck_bench``), Redis (database
14) and one real celery worker process: worker start-up, single uploads one after another, and 500 uploads from 8
concurrent clients until every verdict is in.

The machine is shared, so every figure comes with the load average around it; single-picture figures are medians
of hundreds of runs interleaved with the eager fp32 baseline. Results and their history: ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

# As in the web and worker processes (phoneapp/settings.py): must be set before torch loads (nothing here imports
# torch at load time; the figures' modules are imported inside run()).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from benchmarks.pictures import sample_pictures

# name -> (target, "<=" or ">=", unit)
TARGETS: dict[str, tuple[float | None, str, str]] = {
    "model_ms_p50": (12, "<=", "ms"),
    "model_ms_p95": (None, "", "ms"),
    "model_cpu_ms_mean_one_thread": (35, "<=", "ms"),
    "batch_images_per_s": (80, ">=", "img/s"),
    "reference_per_request_load_ms": (None, "", "ms"),
    "speedup_vs_per_request_load": (None, "", "x"),
    "e2e_ms_p50": (100, "<=", "ms"),
    "e2e_ms_p95": (None, "", "ms"),
    "e2e_images_per_s": (50, ">=", "img/s"),
    "worker_rss_mb": (600, "<=", "MB"),
    "worker_ready_s": (5, "<=", "s"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--model", default=None, help="version name under trained_models/ (default: ACTIVE)")
    parser.add_argument("--threads", type=int, default=2, help="threads of the in-process model figures")
    parser.add_argument("--iterations", type=int, default=200, help="single-picture runs per engine")
    parser.add_argument("--skip-e2e", action="store_true", help="only the in-process figures (no services needed)")
    parser.add_argument(
        "--skip-model", action="store_true", help="only the end-to-end figures (A/B runs of the web and worker code)"
    )
    parser.add_argument("--sequential", type=int, default=40, help="single uploads one after another")
    parser.add_argument("--uploads", type=int, default=500, help="uploads sent by the concurrent clients")
    parser.add_argument("--clients", type=int, default=8)
    # Defaults: the Procfile's worker (prefork, two processes of one thread each).
    parser.add_argument("--pool", choices=["solo", "prefork"], default="prefork", help="the worker's celery pool")
    parser.add_argument("--worker-concurrency", type=int, default=2, help="worker processes (prefork pool)")
    parser.add_argument("--worker-threads", type=int, default=1, help="ONNX Runtime threads per worker process")
    parser.add_argument("--worker-nodes", type=int, default=1, help="worker nodes started (e.g. 2 solo nodes)")
    parser.add_argument(
        "--worker-queues",
        default="classify",
        help="queues the workers consume; 'classify,heatmaps' as the Procfile does counts the heat-map tasks' CPU "
        "too (the run then waits for them before reading the CPU clocks)",
    )
    parser.add_argument(
        "--worker-python", default=sys.executable, help="interpreter for the worker (e.g. a venv with CPU-only torch)"
    )
    return parser


# The vector extensions ONNX Runtime's kernels choose between. Machines that all report "AMD EPYC" differ: the same
# model took 31 ms of CPU on one and 61 ms on another with AVX2 but no AVX-512 (docs/experiments.md, "Performance
# runs", Run L), so every figure records them.
SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile")


def cpu_description() -> tuple[str, list[str]]:
    """The CPU's model name and which of :data:`SIMD_FLAGS` it has (``unknown`` and [] off Linux)."""
    cpu, flags = "unknown", set[str]()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return cpu, [flag for flag in SIMD_FLAGS if flag in flags]


def machine() -> dict[str, Any]:
    cpu, simd = cpu_description()
    import torch

    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = None
    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "host": platform.node(),
        "cpu": cpu,
        "cpu_simd": simd,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": ort_version,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.model_bench import measure_model

    count = 1 + args.sequential + args.uploads
    pictures, source = sample_pictures(max(count, 300))
    context: dict[str, Any] = {**machine(), "pictures": source, "threads": args.threads}
    context["loadavg_before"] = [round(value, 2) for value in os.getloadavg()]
    figures: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    if not args.skip_model:
        model = measure_model(pictures, threads=args.threads, model=args.model, iterations=args.iterations)
        context["loadavg_after_model"] = [round(value, 2) for value in os.getloadavg()]
        for name in (
            "model_ms_p50",
            "model_ms_p95",
            "model_cpu_ms_mean_one_thread",
            "batch_images_per_s",
            "reference_per_request_load_ms",
        ):
            figures[name] = model.pop(name)
        figures["speedup_vs_per_request_load"] = model.pop("speedup_vs_per_request_load")
        extra.update(model)
    if not args.skip_e2e:
        from benchmarks.e2e_bench import measure_e2e

        e2e = measure_e2e(
            pictures,
            sequential=args.sequential,
            concurrent=args.uploads,
            clients=args.clients,
            pool=args.pool,
            worker_python=args.worker_python,
            model=args.model,
            concurrency=args.worker_concurrency,
            worker_threads=args.worker_threads,
            worker_nodes=args.worker_nodes,
            worker_queues=args.worker_queues,
        )
        for name in ("e2e_ms_p50", "e2e_ms_p95", "e2e_images_per_s", "worker_rss_mb", "worker_ready_s"):
            figures[name] = e2e.pop(name)
        extra.update(e2e)
        context["loadavg_after_e2e"] = [round(value, 2) for value in os.getloadavg()]
    return {**figures, "extra": extra, "context": context}


def verdict(name: str, value: Any) -> str:
    target, relation, _ = TARGETS[name]
    if target is None or value is None:
        return ""
    met = value <= target if relation == "<=" else value >= target
    return "ok" if met else "MISSED"


def print_table(result: dict[str, Any]) -> None:
    print(f"{'figure':32} {'value':>10}  {'target':>10}  ")
    for name, (target, relation, unit) in TARGETS.items():
        if name not in result:
            continue
        wanted = f"{relation} {target:g}" if target is not None else ""
        print(f"{name:32} {result[name]:>10} {unit:5} {wanted:>8}  {verdict(name, result[name])}")
    extra, context = result["extra"], result["context"]
    print()
    if "engine" in extra:
        print(
            f"engine {extra['engine']} vs eager fp32 torch, one picture: {result['model_ms_p50']} vs "
            f"{extra['torch_fp32_ms_p50']} ms wall, {extra['model_cpu_ms_p50']} vs "
            f"{extra['torch_fp32_cpu_ms_p50']} ms CPU"
        )
        one_thread = extra["batch_images_per_s_one_thread"]
        print(f"batch API (predict_files, 2 threads): {result['batch_images_per_s']} img/s; one thread: {one_thread}")
        print(
            f"stages (ms, median): {extra['stages_ms_p50']}; "
            f"batch sweep (model ms/picture): {extra['batch_sweep_ms_per_image']}"
        )
    if "e2e_uploads_sent" in extra:
        print(
            f"concurrent: {extra['e2e_uploads_done']}/{extra['e2e_uploads_sent']} done, {extra['e2e_uploads_failed']} "
            f"failed, {extra['e2e_uploads_lost']} lost; worker PSS {extra['worker_pss_mb']} MB, "
            f"peak RSS {extra['worker_peak_rss_mb']} MB ({extra['worker_pool']} pool)"
        )
        print(f"CPU ms per upload (load-independent): {extra['e2e_cpu_ms_per_upload']}")
        print(
            f"worker CPU ms per upload: model (decode, preprocessing, forward pass) "
            f"{extra['worker_model_cpu_ms_per_upload']}, beyond it {extra['worker_overhead_cpu_ms_per_upload']}"
        )
    print(
        f"model {extra.get('model_version', 'ACTIVE')}; {context['date_utc']} UTC on {context['host']} "
        f"({context['cpu']}, {context['cores']} cores), torch {context['torch']}, "
        f"onnxruntime {context['onnxruntime']}, {context['threads']} threads; "
        f"load average before {context['loadavg_before']}, after model {context.get('loadavg_after_model')}"
        + (f", after e2e {context['loadavg_after_e2e']}" if "loadavg_after_e2e" in context else "")
    )


# ``python -m benchmarks.run NAME ...``: the measurements that are not figures of the table, each its own module.
SUBCOMMANDS = {
    "load": "benchmarks.load_test",  # the bounded load test and the knee (docs/reliability.md)
    "outage": "benchmarks.broker_outage",  # Redis outages with the kombu work-around off and on
    "web-profile": "benchmarks.web_profile",  # the web process's CPU per upload by stage
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0] in SUBCOMMANDS:
        module = importlib.import_module(SUBCOMMANDS[argv[0]])
        return int(module.main(argv[1:]))
    args = build_parser().parse_args(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    from inference.allocator import ensure_allocator_settings

    ensure_allocator_settings()  # eager torch on these VMs: see inference/allocator.py
    sys.exit(main())
