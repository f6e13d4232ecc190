"""Aggregate a fleet's MQTT results per device: cells, ALL count and fraction, last seen.

What it shows
    The receiving end of ``--mqtt``: subscribe to ``leukedge/+/cells`` (one
    message per screened frame, schema ``leukedge.mqtt.cells/1``),
    ``leukedge/+/summary`` (each device's retained running summary) and
    ``leukedge/+/status`` (``online``/``offline``, retained; ``offline`` is
    also the will a device leaves when it drops off), count per device, and
    print a table.  The ``summary`` column says whether the device's own
    running totals agree with the frames received here.

What it needs
    paho-mqtt 2 (``pip install 'leukedge[serve]'``) and the broker the
    devices publish to.  It does not need a model or leukedge's runtimes.

How to run (from the repository root)
    python examples/mqtt_aggregate.py --broker mqtt://localhost:1883 --idle 5
    python examples/mqtt_aggregate.py --broker mqtt://localhost:1883 --duration 60 --json fleet.json

Stops after ``--duration`` seconds, after ``--idle`` seconds without a
message (once one came), once ``--until-offline N`` devices have gone
offline while it listened (a fleet that finished its run), or on Ctrl-C;
prints ``subscribed`` when ready.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any, Dict, Optional, Set, Tuple

from leukedge.sinks.mqtt import CELLS_SCHEMA, parse_mqtt_url


class FleetTally:
    """Per-device counts from the messages received; thread-safe (paho calls from its network thread)."""

    def __init__(self) -> None:
        self.devices: Dict[str, Dict[str, Any]] = {}
        self._seen: Dict[str, Set[Tuple[int, float]]] = {}  # QoS 1 may deliver a message twice
        self.lock = threading.Lock()
        self.last_message = 0.0
        self.went_offline: Set[str] = set()

    def _device(self, name: str) -> Dict[str, Any]:
        return self.devices.setdefault(
            name, {"frames": 0, "cells": 0, "all": 0, "last_seen": None, "status": "?", "summary": None}
        )

    def add(self, topic: str, payload: bytes, retained: bool = False) -> None:
        parts = topic.split("/")
        if len(parts) != 3:
            return
        _root, name, leaf = parts
        with self.lock:
            self.last_message = time.time()
            d = self._device(name)
            if leaf == "status":
                d["status"] = payload.decode("utf-8", "replace")
                if d["status"] == "offline" and not retained:  # a retained one is older than this run
                    self.went_offline.add(name)
                return
            try:
                msg = json.loads(payload)
            except ValueError:
                return  # not ours; a real aggregator would log it
            if leaf == "summary":
                d["summary"] = {k: msg.get(k) for k in ("frames", "cells", "all", "all_fraction", "verdict")}
            elif leaf == "cells" and msg.get("schema") == CELLS_SCHEMA:
                key = (int(msg["frame"]), float(msg["t_capture"]))
                if key in self._seen.setdefault(name, set()):
                    return
                self._seen[name].add(key)
                cells = msg.get("cells") or []
                d["frames"] += 1
                d["cells"] += len(cells)
                d["all"] += sum(1 for c in cells if c.get("label") == "all")
                d["last_seen"] = max(d["last_seen"] or 0.0, float(msg["t_result"]))

    def table(self) -> str:
        lines = [
            f"{'device':<12}{'status':>8}{'frames':>8}{'cells':>7}{'ALL':>6}{'ALL %':>8}  {'last seen':<10}summary"
        ]
        with self.lock:
            for name, d in sorted(self.devices.items()):
                share = f"{100.0 * d['all'] / d['cells']:.1f}" if d["cells"] else "-"
                seen = time.strftime("%H:%M:%S", time.localtime(d["last_seen"])) if d["last_seen"] else "-"
                s = d["summary"]
                agree = (
                    "-"
                    if s is None
                    else (
                        "agrees"
                        if (s["frames"], s["cells"], s["all"]) == (d["frames"], d["cells"], d["all"])
                        else f"device says {s['cells']} cells, {s['all']} ALL"
                    )
                )
                lines.append(
                    f"{name:<12}{d['status']:>8}{d['frames']:>8}{d['cells']:>7}{d['all']:>6}{share:>8}  {seen:<10}{agree}"
                )
        return "\n".join(lines)


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--broker", default="mqtt://localhost:1883", help="mqtt://host[:port] (plain; see MqttSink for TLS)"
    )
    ap.add_argument("--duration", type=float, default=0, help="stop after this many seconds (0: no limit)")
    ap.add_argument("--idle", type=float, default=0, help="stop this many seconds after the last message (0: never)")
    ap.add_argument("--until-offline", type=int, default=0, metavar="N", help="stop once N devices went offline")
    ap.add_argument("--json", metavar="FILE", help="write the per-device aggregates to FILE")
    args = ap.parse_args(argv)

    import paho.mqtt.client as mqtt

    _tls, host, port = parse_mqtt_url(args.broker)
    tally = FleetTally()
    subscribed = threading.Event()
    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=f"leukedge-aggregate-{time.time_ns() % 10**9}"
    )
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(
        [(f"leukedge/+/{leaf}", 1) for leaf in ("cells", "summary", "status")]
    )
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_message = lambda c, u, msg: tally.add(msg.topic, bytes(msg.payload), msg.retain)
    client.connect(host, port)
    client.loop_start()
    try:
        if not subscribed.wait(10):
            print(f"Error: could not subscribe at {args.broker} within 10 s", file=sys.stderr)
            return 6
        print("subscribed", flush=True)
        t0 = time.time()
        while True:
            time.sleep(0.1)
            now = time.time()
            if args.duration and now - t0 >= args.duration:
                break
            if args.until_offline and len(tally.went_offline) >= args.until_offline:
                break  # a device says offline after its last frame and summary were acknowledged
            if args.idle and tally.last_message and now - tally.last_message >= args.idle:
                break
    except KeyboardInterrupt:
        pass
    finally:
        client.disconnect()
        client.loop_stop()
    print(tally.table())
    if args.json:
        with open(args.json, "w") as f:
            json.dump(tally.devices, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
