"""CUDA LoG kernel against the CPU reference: time per batch and the largest difference, on real cells.

Usage:
    python benchmarks/pipeline_cuda_log.py [CNMC_DIR] [--batches 1,8,32,64] [--repeat 50] [--json OUT]

Crops are cut from the C-NMC sample exactly as the pipeline cuts them
(``leukedge.segment.segment``), or drawn by ``leukedge.synthetic`` when the
folder is absent.  CUDA times are CUDA events around the copies and the
kernels; "end to end" is wall time of ``CudaLog.enhance`` (copy in, three
kernels, copy out, synchronise).  Needs pycuda and a GPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from leukedge.device.cuda_log import TOLERANCE_GREY, CudaLog
from leukedge.manifest import Preprocessing
from leukedge.preprocess import enhance
from leukedge.segment import segment

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cnmc_sample"


def real_crops(folder: Path, n: int = 64) -> np.ndarray:
    from leukedge.images import read_image

    files = sorted(folder.glob("*/*.png"))[:n]
    if not files:
        from leukedge.synthetic import make_cell_image

        print(f"no images under {folder}: using synthetic cells", file=sys.stderr)
        images = [make_cell_image(i, "all" if i % 2 else "hem") for i in range(n)]
    else:
        images = [read_image(f) for f in files]
    return np.stack([segment(im, Preprocessing())[0].crop for im in images])


def main(argv: List[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--batches", default="1,8,32,64")
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    spec = Preprocessing()
    crops = real_crops(args.data)
    sizes = [int(b) for b in args.batches.split(",")]
    rows: List[Dict[str, Any]] = []
    with CudaLog(spec, max_batch=max(sizes)) as k:
        for b in sizes:
            batch = np.concatenate([crops] * (b // len(crops) + 1))[:b]
            ref = enhance(batch, spec)
            got = k.enhance(batch)  # also the warm-up
            err = float(np.abs(got - ref).max() / spec.scale)
            kernel = []
            t0 = time.perf_counter()
            for _ in range(args.repeat):
                k.enhance(batch)
                kernel.append(k.timings["kernel_ms"])
            gpu_ms = (time.perf_counter() - t0) / args.repeat * 1000
            t0 = time.perf_counter()
            reps = max(3, args.repeat // 10)
            for _ in range(reps):
                enhance(batch, spec)
            cpu_ms = (time.perf_counter() - t0) / reps * 1000
            rows.append(
                {
                    "batch": b,
                    "cuda_end_to_end_ms": round(gpu_ms, 3),
                    "cuda_kernels_ms": round(float(np.median(kernel)), 4),
                    "h2d_ms": round(k.timings["h2d_ms"], 4),
                    "d2h_ms": round(k.timings["d2h_ms"], 4),
                    "cpu_reference_ms": round(cpu_ms, 3),
                    "max_abs_diff_grey": err,
                    "within_tolerance": err <= TOLERANCE_GREY,
                }
            )
        info = {"gpu": k.device_name, "compile_s": round(k.compile_s, 2)}
    print(
        f"CUDA LoG on {info['gpu']} (kernel compiled in {info['compile_s']} s); tolerance {TOLERANCE_GREY} grey levels"
    )
    print(
        f"{'batch':>5} {'CUDA e2e ms':>12} {'kernels ms':>11} {'h2d ms':>8} {'d2h ms':>8} {'CPU ref ms':>11} {'max diff':>10}"
    )
    for r in rows:
        print(
            f"{r['batch']:>5} {r['cuda_end_to_end_ms']:>12.3f} {r['cuda_kernels_ms']:>11.4f} {r['h2d_ms']:>8.4f} "
            f"{r['d2h_ms']:>8.4f} {r['cpu_reference_ms']:>11.3f} {r['max_abs_diff_grey']:>10.2e}"
        )
    result = {"rows": rows, **info, "machine": f"{platform.machine()} python {platform.python_version()}"}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if all(r["within_tolerance"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
