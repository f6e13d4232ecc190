"""What the result sinks cost the pipeline: JSONL + CSV + MQTT (local broker) + live view (one client).

Usage:
    python benchmarks/sinks_overhead.py [--seconds 20] [--fps 30] [--cells 20] [--save-crops] [--each] [--json OUT.json]

Synthetic frame results (640×480 smear frames, ``--cells`` classified cells
each, with crops) are handed to the sinks at ``--fps``, paced like a live
camera, first to no sink (baseline) and then to all sinks at once through
``SinkSet.write_frame`` (the call the pipeline makes).  Reported per frame:

* inline: wall time of the ``write_frame`` call in the results thread, the
  time the pipeline itself is held up;
* CPU: the process's CPU time (all threads: MQTT sender and network loop,
  live-view JPEG/PNG encoding and HTTP) minus the baseline's, the CPU the
  sinks take from the pipeline on a busy device.

Both are compared with the frame period (33.3 ms at 30 fps).  The live-view
client is a separate process that reads the event stream; Mosquitto runs as
its own process; neither is counted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from leukedge.manifest import Manifest
from leukedge.sinks.options import build_sinks
from leukedge.sinks.synthetic import synthetic_results

CLIENT = r"""
import socket, sys, time
port = int(sys.argv[1]); s = socket.create_connection(("127.0.0.1", port))
s.sendall(("GET /events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port).encode())
n = 0; data = b""
while True:
    chunk = s.recv(1 << 16)
    if not chunk: break
    data = data[-32:] + chunk
    n += chunk.count(b"event: result")
    sys.stdout.write("%d\n" % n); sys.stdout.flush()
"""


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(folder: Path) -> Optional[subprocess.Popen]:
    exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None)
    if not exe:
        return None
    port = free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n" + ("user root\n" if os.geteuid() == 0 else ""))
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc.port = port  # type: ignore[attr-defined]
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    return None


def run_phase(pairs: List[Any], fps: float, sinks: Any) -> Dict[str, float]:
    """Hand every pair to ``sinks`` (or to nothing) at ``fps``; return per-frame figures."""
    period = 1.0 / fps
    inline: List[float] = []
    c0, t0 = cpu_s(), time.perf_counter()
    next_t = t0
    for result, frame in pairs:
        now = time.perf_counter()
        if next_t > now:
            time.sleep(next_t - now)
        next_t += period
        a = time.perf_counter()
        if sinks is not None:
            sinks.write_frame(result, frame)
        inline.append(time.perf_counter() - a)
    wall = time.perf_counter() - t0
    cpu = cpu_s() - c0
    inline.sort()
    n = len(pairs)
    return {
        "frames": n,
        "achieved_fps": n / wall,
        "cpu_ms_per_frame": 1000 * cpu / n,
        "inline_mean_ms": 1000 * sum(inline) / n,
        "inline_p99_ms": 1000 * inline[min(n - 1, int(0.99 * n))],
        "inline_max_ms": 1000 * inline[-1],
    }


def each_sink(pairs: List[Any], fps: float, tmp: Path, broker: Optional[subprocess.Popen]) -> Dict[str, float]:
    """CPU per frame of each sink alone (minus the baseline), in ms."""
    kinds: Dict[str, Dict[str, Any]] = {
        "jsonl": {"outs": (tmp / "e.jsonl",)},
        "csv": {"outs": (tmp / "e.csv",)},
        "liveview, one client": {"serve": "127.0.0.1:0"},
        "jsonl + crops": {"outs": (tmp / "c.jsonl",), "save_crops": True},
    }
    if broker:
        kinds["mqtt"] = {"mqtt": f"mqtt://127.0.0.1:{broker.port}", "mqtt_device_id": "each"}  # type: ignore[attr-defined]
    base = run_phase(pairs, fps, None)["cpu_ms_per_frame"]
    out = {}
    for name, kw in kinds.items():
        sinks = build_sinks("0123456789ab", Manifest(), **kw)
        sinks.open()
        client = None
        if "serve" in kw:
            from leukedge.liveview import LiveViewSink

            live = sinks.find(LiveViewSink)
            client = subprocess.Popen([sys.executable, "-c", CLIENT, str(live.port)], stdout=subprocess.DEVNULL)  # type: ignore[union-attr]
            time.sleep(0.5)
        out[name] = run_phase(pairs, fps, sinks)["cpu_ms_per_frame"] - base
        sinks.close()
        if client:
            client.kill()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--cells", type=int, default=20)
    ap.add_argument("--save-crops", action="store_true", help="also save flagged crops as PNG (opt-in in screen)")
    ap.add_argument("--each", action="store_true", help="also measure each sink alone")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    n = int(args.seconds * args.fps)
    pairs = list(synthetic_results(n, cells=args.cells, seed=1))
    tmp = Path(tempfile.mkdtemp(prefix="leukedge-sinks-bench-"))
    broker = start_broker(tmp)
    load_before = os.getloadavg()
    client = None
    try:
        base = run_phase(pairs, args.fps, None)
        sinks = build_sinks(
            "0123456789ab",
            Manifest(),
            outs=(tmp / "cells.jsonl", tmp / "cells.csv"),
            save_crops=args.save_crops,
            serve="127.0.0.1:0",
            mqtt=f"mqtt://127.0.0.1:{broker.port}" if broker else None,  # type: ignore[attr-defined]
            mqtt_device_id="bench",
        )
        sinks.open()
        from leukedge.liveview import LiveViewSink

        live = sinks.find(LiveViewSink)
        assert isinstance(live, LiveViewSink)
        client = subprocess.Popen([sys.executable, "-c", CLIENT, str(live.port)], stdout=subprocess.PIPE, text=True)
        time.sleep(0.5)
        with_sinks = run_phase(pairs, args.fps, sinks)
        stats = sinks.stats()
        sinks.close()
        client.terminate()
        seen = (client.communicate(timeout=5)[0].split() or ["0"])[-1]
        alone = each_sink(pairs, args.fps, tmp, broker) if args.each else {}
    finally:
        if client and client.poll() is None:
            client.kill()
        if broker:
            broker.terminate()
            broker.wait(5)
    load_after = os.getloadavg()
    frame_ms = 1000.0 / args.fps
    extra_cpu = with_sinks["cpu_ms_per_frame"] - base["cpu_ms_per_frame"]
    report = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.processor() or platform.platform()}",
        "python": platform.python_version(),
        "load_avg_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "fps": args.fps,
        "cells_per_frame": args.cells,
        "frame_ms": frame_ms,
        "sinks": [k for k in stats if k != "errors"],
        "baseline": base,
        "with_sinks": with_sinks,
        "sinks_cpu_ms_per_frame": extra_cpu,
        "sinks_cpu_pct_of_frame": 100 * extra_cpu / frame_ms,
        "inline_pct_of_frame": 100 * with_sinks["inline_mean_ms"] / frame_ms,
        "each_sink_alone_cpu_ms_per_frame": alone,
        "delivered": {
            "jsonl_lines": sum(1 for _ in open(tmp / "cells.jsonl")),
            "mqtt_acked": stats.get("mqtt", {}).get("acked"),
            "mqtt_dropped": stats.get("mqtt", {}).get("dropped"),
            "liveview_results_seen_by_client": int(seen),
            "liveview_dropped": stats["liveview"]["dropped"],
        },
    }
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"{n} frames at {args.fps:g} fps, {args.cells} cells each; sinks: {', '.join(report['sinks'])}")
    print(f"  baseline   CPU {base['cpu_ms_per_frame']:.3f} ms/frame")
    print(
        f"  with sinks CPU {with_sinks['cpu_ms_per_frame']:.3f} ms/frame; inline write_frame mean "
        f"{with_sinks['inline_mean_ms']:.3f} ms, p99 {with_sinks['inline_p99_ms']:.3f} ms, max {with_sinks['inline_max_ms']:.2f} ms"
    )
    print(
        f"  sinks add {extra_cpu:.3f} ms CPU per frame = {report['sinks_cpu_pct_of_frame']:.2f}% of the "
        f"{frame_ms:.1f} ms frame; inline {report['inline_pct_of_frame']:.2f}%"
    )
    print(f"  delivered: {json.dumps(report['delivered'])}")
    for name, ms in alone.items():
        print(f"  alone: {name:22s} {ms:.3f} ms CPU per frame = {100 * ms / frame_ms:.2f}%")
    print(f"  load average before/after: {report['load_avg_before_after']}")
    if not broker:
        print("  (mosquitto not found: MQTT was not measured)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
