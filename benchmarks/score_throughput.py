"""Throughput and memory of ``leukedge score`` on C-NMC-size cells, against the classifier-only bound.

Usage:
    nice -n 10 python benchmarks/score_throughput.py [--bundle DIR] [--precision int8]
        [--count 10000] [--memory-counts 1000,10000] [--workers 1,2] [--data DIR] [--json OUT.json]
    nice -n 10 python benchmarks/score_throughput.py --cluster [--count 2000] [--workers 2] [--repeat 2] ...

``--cluster`` (needs ``leukedge[cluster]``) only compares the process pool with
``score --cluster local`` (Ray on this machine) at the same worker counts on the
same files, alternating runs so that a change in the machine's load hits both.

Draws ``--count`` synthetic 450×450 C-NMC-named cells (``make_cell_image``)
into ``--data`` (kept between runs), then measures, each in a fresh process:

* classifier-only bound: ``runtime.p_all`` on ready-made model inputs (no
  decoding, no preprocessing): the most images/s scoring could reach;
* preprocessing per core: decode + crop + preprocess, inline;
* scoring: ``score_files`` end to end (start-up included) for each worker count;
* memory: peak RSS of the main process and of the largest worker, scoring
  each of ``--memory-counts`` images: flat if the two counts give the same.

Without ``--bundle`` it builds a bundle with ``benchmarks/score_bundle.py``:
the tiny test CNN (scoring is then bound by decoding and preprocessing), or
with ``--vgg13-width 0.25`` an untrained VGG13 of that width (inference
cost like the product's).  Pass the reference bundle (``--bundle
sdk/models/reference``) for the product's figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Dict, List

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = Path(tempfile.gettempdir()) / "leukedge-bench-cells-450"


def _draw(args: tuple) -> None:
    from PIL import Image

    from leukedge.synthetic import make_cell_image

    folder, start, stop = args
    for i in range(start, stop):
        label = "all" if i % 2 else "hem"
        subject = f"{i % 20 + 1}" if label == "all" else f"H{i % 20 + 1}"
        path = Path(folder) / f"UID_{subject}_{i + 1}_1_{label}.png"
        if not path.exists():
            Image.fromarray(make_cell_image(i, label, size=450)).save(path)


def make_cells(folder: Path, count: int, procs: int) -> List[Path]:
    """``count`` synthetic cells in ``folder`` (drawn once, reused)."""
    folder.mkdir(parents=True, exist_ok=True)
    have = len(list(folder.glob("*.png")))
    if have < count:
        t0 = time.monotonic()
        step = 250
        with ProcessPoolExecutor(procs) as ex:
            list(ex.map(_draw, [(str(folder), s, min(s + step, count)) for s in range(0, count, step)]))
        print(f"drew {count - have} cells in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return sorted(folder.glob("*.png"), key=lambda p: int(p.stem.split("_")[2]))[:count]


def subset(files: List[Path], count: int, root: Path) -> Path:
    """A folder of links to the first ``count`` files (scoring resolves links to the real files)."""
    d = root / f"subset-{count}"
    d.mkdir(parents=True, exist_ok=True)
    for f in files[:count]:
        link = d / f.name
        if not link.exists():
            link.symlink_to(f)
    return d


CHILD = r"""
import json, os, resource, sys, threading, time

def rss_mb(pid="self", key="VmRSS"):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0

# Peak RSS by sampling /proc (ru_maxrss would count the forked copy of the parent before exec).
peak = {"workers": 0.0}
def sample():
    me = os.getpid()
    while True:
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    ppid = int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
                if ppid == me:
                    peak["workers"] = max(peak["workers"], rss_mb(d))
        time.sleep(0.25)
threading.Thread(target=sample, daemon=True).start()
args = json.loads(sys.argv[1])
kind = args.pop("kind")
out = {}
if kind == "score":
    from leukedge.device.scoring import score_files
    cluster = None
    if args.get("cluster"):
        # Start Ray first and time it apart: scoring then reuses this connection (and the figure
        # without Ray's start is what a long run on a running cluster sees).
        import logging, ray
        from leukedge.device.scoring.cluster import ClusterOptions
        t0 = time.perf_counter()
        ray.init(num_cpus=args["workers"], include_dashboard=False, object_store_memory=128 << 20,
                 logging_level=logging.ERROR, log_to_driver=False)
        ray_start = time.perf_counter() - t0
        cluster = ClusterOptions("local", workers=args["workers"])
    s = score_files([args["data"]], args["out"], model=args["bundle"], precision=args["precision"],
                    backend="onnxruntime", workers=args["workers"], batch_size=args["batch_size"],
                    mode="cells", progress=False, overwrite=True, cluster=cluster)
    out = {"images": s.scored, "failed": len(s.failed), "seconds": s.seconds, "images_per_s": s.scored / s.seconds}
    if cluster is not None:
        out.update(ray_start_s=ray_start, images_per_s_with_ray_start=s.scored / (s.seconds + ray_start))
        ray.shutdown()
elif kind == "bound":
    import numpy as np
    from leukedge.device.runtimes import open_runtime
    from leukedge.preprocess import preprocess
    from leukedge.synthetic import make_cell_image
    from leukedge.segment import crop_for, Region
    with open_runtime(args["bundle"], backend="onnxruntime", precision=args["precision"]) as rt:
        spec = rt.manifest.preprocessing
        crops = [make_cell_image(i, "all" if i % 2 else "hem", size=spec.input_height) for i in range(args["batch_size"])]
        batch = preprocess(crops, spec)
        rt.p_all(batch)  # warm-up
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < args["seconds"]:
            rt.p_all(batch)
            n += len(batch)
        dt = time.perf_counter() - t0
        out = {"images": n, "seconds": dt, "images_per_s": n / dt, "runtime": rt.describe()}
elif kind == "prepare":
    import cv2
    cv2.setNumThreads(1)
    from pathlib import Path
    from leukedge.device.scoring.work import PrepareOptions, prepare_image
    from leukedge.device.runtimes import resolve_model
    spec = resolve_model(args["bundle"]).manifest.preprocessing
    opts = PrepareOptions(mode="cells", spec=spec)
    files = sorted(Path(args["data"]).glob("*.png"))[: args["count"]]
    t0 = time.perf_counter()
    for i, f in enumerate(files):
        prepare_image(i, str(f), opts)
    dt = time.perf_counter() - t0
    out = {"images": len(files), "seconds": dt, "images_per_s": len(files) / dt}
me, ch = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
out.update(peak_rss_main_mb=rss_mb(key="VmHWM"), peak_rss_worker_mb=peak["workers"])
if out.get("images"):
    # CPU time per image does not depend on what else runs on the machine, unlike images/s.
    out["cpu_ms_per_image_main"] = 1000 * (me.ru_utime + me.ru_stime) / out["images"]
    out["cpu_ms_per_image_workers"] = 1000 * (ch.ru_utime + ch.ru_stime) / out["images"]
print(json.dumps(out))
"""


def child(**args: Any) -> Dict[str, Any]:
    res = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"benchmark step {args['kind']} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def machine() -> Dict[str, Any]:
    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "load_before": load}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, help="model bundle (default: build the small INT8 test bundle)")
    ap.add_argument(
        "--vgg13-width", type=float, default=0.0, help="without --bundle: build an untrained VGG13 of this width"
    )
    ap.add_argument("--precision", default="int8")
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--memory-counts", default="1000,10000")
    ap.add_argument("--workers", default="1,2", help="worker counts to compare, e.g. 1,2,4")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="where the synthetic cells are kept")
    ap.add_argument("--json", type=Path, help="write the figures here too")
    ap.add_argument(
        "--cluster",
        action="store_true",
        help="only compare the process pool with local Ray (the same worker counts), --repeat times each",
    )
    ap.add_argument("--repeat", type=int, default=2, help="with --cluster: runs of each, alternating")
    args = ap.parse_args()

    report: Dict[str, Any] = {"machine": machine(), "count": args.count, "precision": args.precision}
    tmp = Path(tempfile.mkdtemp(prefix="leukedge-bench-"))
    bundle = args.bundle
    if bundle is None:
        sys.path.insert(0, str(HERE))
        from score_bundle import build_keras_bundle, build_onnx_bundle

        if args.vgg13_width:
            bundle = build_keras_bundle(tmp / "bundle", vgg13_width=args.vgg13_width).root
            report["bundle"] = f"benchmarks/score_bundle.py untrained VGG13, width {args.vgg13_width}"
        else:
            bundle = build_onnx_bundle(tmp / "bundle").root
            report["bundle"] = "benchmarks/score_bundle.py test bundle (tiny CNN)"
    else:
        report["bundle"] = str(bundle)
    counts = sorted({args.count, *(int(c) for c in args.memory_counts.split(","))})
    files = make_cells(args.data, max(counts), procs=os.cpu_count() or 1)
    common = {"bundle": str(bundle), "precision": args.precision, "batch_size": args.batch_size}

    if args.cluster:
        data = subset(files, args.count, tmp)  # exactly these files, whatever else --data holds
        report["cluster"] = compare_cluster(data, tmp, [int(x) for x in args.workers.split(",")], args.repeat, common)
        report["machine"]["load_after"] = os.getloadavg()
        shutil.rmtree(tmp, ignore_errors=True)
        text = json.dumps(report, indent=2)
        print(text)
        if args.json:
            args.json.write_text(text + "\n")
        return
    report["classifier_only"] = child(kind="bound", seconds=10.0, **common)
    report["prepare_one_core"] = child(kind="prepare", data=str(args.data), count=500, **common)
    data = subset(files, args.count, tmp) if args.count < len(files) else args.data
    report["score"] = {}
    for w in (int(x) for x in args.workers.split(",")):
        r = child(kind="score", data=str(data), out=str(tmp / f"w{w}.csv"), workers=w, **common)
        report["score"][f"workers={w}"] = r
        print(f"workers={w}: {r['images_per_s']:.1f} images/s ({r['images']} in {r['seconds']:.1f} s)", file=sys.stderr)
    w = max(int(x) for x in args.workers.split(","))
    report["memory"] = {}
    for n in counts:
        d = subset(files, n, tmp)
        r = child(kind="score", data=str(d), out=str(tmp / f"m{n}.csv"), workers=w, **common)
        report["memory"][str(n)] = r
    report["machine"]["load_after"] = os.getloadavg()
    shutil.rmtree(tmp, ignore_errors=True)  # the drawn cells in --data are kept for the next run
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    _summary(report)


def compare_cluster(data: Path, tmp: Path, workers: List[int], repeat: int, common: Dict[str, Any]) -> Dict[str, Any]:
    """The process pool and local Ray (``score --cluster local``), same workers and data, alternated."""
    runs: Dict[str, List[Dict[str, Any]]] = {}
    for w in workers:
        for i in range(repeat):
            for name, cluster in (("pool", False), ("ray", True)):
                r = child(
                    kind="score", data=str(data), out=str(tmp / f"{name}{w}.csv"), workers=w, cluster=cluster, **common
                )
                runs.setdefault(f"{name} workers={w}", []).append(r)
                extra = f", Ray start {r['ray_start_s']:.1f} s apart" if cluster else ""
                print(f"{name} workers={w} #{i + 1}: {r['images_per_s']:.1f} images/s{extra}", file=sys.stderr)
    best = {k: max(r["images_per_s"] for r in v) for k, v in runs.items()}
    for w in workers:
        pool, ray = best[f"pool workers={w}"], best[f"ray workers={w}"]
        print(
            f"workers={w}: best pool {pool:.1f}, best Ray {ray:.1f} images/s: Ray overhead "
            f"{100 * (1 - ray / pool):.0f}% (without Ray's own start)",
            file=sys.stderr,
        )
    return {"runs": runs, "best_images_per_s": best}


def _summary(r: Dict[str, Any]) -> None:
    bound = r["classifier_only"]["images_per_s"]
    print(f"\nclassifier-only bound ({r['classifier_only']['runtime']}): {bound:.0f} images/s", file=sys.stderr)
    print(f"decode+preprocess, one core: {r['prepare_one_core']['images_per_s']:.0f} images/s", file=sys.stderr)
    cores = r["machine"]["cores"]
    for k, v in r["score"].items():
        pct = 100 * v["images_per_s"] / bound
        cpu = v["cpu_ms_per_image_main"] + v["cpu_ms_per_image_workers"]
        print(
            f"score {k}: {v['images_per_s']:.0f} images/s ({pct:.0f}% of the bound); CPU "
            f"{v['cpu_ms_per_image_main']:.2f} ms/image main + {v['cpu_ms_per_image_workers']:.2f} workers "
            f"= ceiling {cores * 1000 / cpu:.0f} images/s on {cores} idle cores",
            file=sys.stderr,
        )
    for n, v in r["memory"].items():
        print(
            f"{n} images: peak RSS main {v['peak_rss_main_mb']:.0f} MB, largest worker {v['peak_rss_worker_mb']:.0f} MB",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
