"""``python -m benchmarks.model_switch_memory [--switches 8]``: a worker process's memory across model switches.

Loads the active scene model on ONNX Runtime as a worker does, then switches between two shipped versions, each
switch followed by three predictions, and prints the process's resident memory after each: once as the resident
model does it (the dropped model's memory handed back, ``inference.allocator.release_freed_memory``) and once
without that step. Each variant runs in a fresh process with glibc's default allocator settings, as the workers
run (not the 4 GiB thresholds of the training entry points). Exports come from this machine's cache
(``PHONECHECK_CACHE_DIR`` or ``~/.cache/phonecheck``); the first run on a machine converts both versions first.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from inference.contract import Classifier

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS = REPO_ROOT / "trained_models"
PICTURE = REPO_ROOT.parent / "shared" / "datasets" / "phone-scenes" / "phone" / "office-cctv-00e8471a1dfb.jpg"
VERSIONS = ("scene-lite0-v9", "scene-lite0-v10")


def resident_mb() -> int:
    """This process's resident memory in MiB (Linux)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 2**20


def measure(switches: int, *, release: bool) -> list[int]:
    """Resident MiB after the first load and after each switch."""
    from PIL import Image

    from inference.allocator import release_freed_memory
    from inference.export_cache import default_cache_dir
    from inference.loader import load

    picture = Image.open(PICTURE).convert("RGB")

    def loaded(name: str) -> Classifier:
        return load(MODELS / name, engine="onnxruntime", threads=1, cache_dir=default_cache_dir(), models_root=MODELS)

    model = loaded(VERSIONS[1])
    model.predict([picture])
    sizes = [resident_mb()]
    for switch in range(switches):
        model = loaded(VERSIONS[switch % 2])
        if release:
            release_freed_memory()
        for _ in range(3):
            model.predict([picture])
        sizes.append(resident_mb())
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--switches", type=int, default=8)
    parser.add_argument("--variant", choices=("released", "kept"), help=argparse.SUPPRESS)  # the child's part
    args = parser.parse_args(argv)
    if args.variant:
        print(" ".join(str(size) for size in measure(args.switches, release=args.variant == "released")))
        return 0
    environment = {name: value for name, value in os.environ.items() if not name.startswith("MALLOC_")}
    for variant in ("released", "kept"):
        child = [sys.executable, "-m", "benchmarks.model_switch_memory", "--switches", str(args.switches)]
        answer = subprocess.run(
            [*child, "--variant", variant], cwd=REPO_ROOT, env=environment, capture_output=True, text=True, check=True
        )
        print(f"{variant:>8}: resident MiB after the first load, then after each switch: {answer.stdout.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
