"""A fleet of screening devices publishing their results to one MQTT broker.

What it shows
    Several devices (here: several Screeners in one process, each with its
    own device id and a ``synthetic://`` camera) publish every frame's cells
    on ``leukedge/<device>/cells``, a retained running summary on
    ``leukedge/<device>/summary`` and ``online``/``offline`` on
    ``leukedge/<device>/status``, through ``leukedge.sinks.mqtt.MqttSink``
    (QoS 1, buffered while the broker is away).  On a real fleet each device
    runs ``leukedge screen csi://0 --mqtt mqtt://broker:1883 --mqtt-device-id scope-01``
    instead; ``examples/mqtt_aggregate.py`` is the other end.

What it needs
    leukedge with paho-mqtt 2 (``pip install 'leukedge[serve]'``) and an MQTT
    broker, e.g. Mosquitto (``sudo apt install mosquitto``; it listens on
    localhost:1883 once installed).

How to run (from the repository root; two terminals)
    python examples/mqtt_aggregate.py --broker mqtt://localhost:1883 --idle 5
    python examples/mqtt_fleet.py --broker mqtt://localhost:1883 --devices 3 --frames 10

Prints, per device, what it screened and what the broker acknowledged;
``--json FILE`` writes the same as JSON (the tests compare it with what the
aggregator received).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import Any, Dict, List, Optional

from leukedge import FrameResult, Screener, run_main


def run_device(ref: Any, device_id: str, seed: int, frames: int, broker: str, report: Dict[str, Any]) -> None:
    """One device: a Screener on its own synthetic camera, results to MQTT under its device id."""
    from leukedge.sinks.mqtt import MqttSettings, MqttSink, check_device_id, parse_mqtt_url

    tls, host, port = parse_mqtt_url(broker)
    sink = MqttSink(
        MqttSettings(host=host, port=port, tls=tls, device_id=check_device_id(device_id)), model=ref.identity
    )
    mine = report[device_id] = {"frames": 0, "cells": 0, "all": 0}

    def count(result: FrameResult) -> None:  # what this device screened, counted apart from MQTT
        mine["frames"] += 1
        mine["cells"] += len(result.cells)
        mine["all"] += result.n_all

    camera = f"synthetic://?seed={seed}&frames={frames}&width=640&height=480&cells=6&pool={min(frames, 4)}"
    # These synthetic frames are unrelated fields, not one moving slide: each frame's cells are new
    # cells, so tracking (which counts a cell once it is seen twice) is off and every cell counts.
    with Screener(ref, camera, sinks=[sink], workers=1, tracking=False) as screener:
        screener.on_frame(count)
        screener.run()
    mine["mqtt"] = sink.stats()  # after close: every message sent and acknowledged, or counted as not


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--broker", default="mqtt://localhost:1883", help="mqtt://host[:port] or mqtts://host[:port]")
    ap.add_argument("--devices", type=int, default=3, help="how many devices to simulate")
    ap.add_argument("--frames", type=int, default=10, help="frames each device screens")
    ap.add_argument("--prefix", default="scope-", help="device ids are PREFIX01, PREFIX02, …")
    ap.add_argument("--model", default="reference", help="bundle folder, or 'reference' (the packaged model)")
    ap.add_argument("--json", metavar="FILE", help="write what each device screened and sent to FILE")
    args = ap.parse_args(argv)
    if args.devices < 1 or args.frames < 1:
        ap.error("--devices and --frames must be at least 1")

    from leukedge.device.runtimes import resolve_model

    ref = resolve_model(None if args.model == "reference" else args.model)  # load and check the bundle once
    report: Dict[str, Any] = {}
    errors: List[BaseException] = []

    def device(i: int) -> None:
        try:
            run_device(ref, f"{args.prefix}{i + 1:02d}", 100 * i, args.frames, args.broker, report)
        except BaseException as exc:  # reported below, after the other devices finished
            errors.append(exc)

    threads = [threading.Thread(target=device, args=(i,), name=f"device-{i + 1}") for i in range(args.devices)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]

    print(f"{'device':<12}{'frames':>8}{'cells':>8}{'ALL':>6}{'sent':>7}{'acked':>7}{'dropped':>9}")
    for dev, r in sorted(report.items()):
        m = r["mqtt"]
        print(f"{dev:<12}{r['frames']:>8}{r['cells']:>8}{r['all']:>6}{m['sent']:>7}{m['acked']:>7}{m['dropped']:>9}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    undelivered = [
        d for d, r in report.items() if r["mqtt"]["dropped"] or r["mqtt"]["buffered"] or r["mqtt"]["unacked"]
    ]
    if undelivered:
        print(f"not every frame reached the broker from: {', '.join(sorted(undelivered))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))  # errors as the CLI prints them: Error/Hint, exit code
