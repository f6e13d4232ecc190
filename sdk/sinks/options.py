"""Command-line options that choose sinks, shared by ``screen`` (and anything else that streams results).

``@sink_options`` adds the options to a click command; ``build_sinks`` turns
their values into a :class:`SinkSet`: results files (``--out``, .jsonl or
.csv), flagged-cell crops (``--save-crops``), MQTT (``--mqtt``), the live
view (``--serve``), and always a ``SummarySink`` for the end-of-run summary
(:func:`leukedge.report.screen_summary`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import click

from leukedge.errors import InvalidInputError
from leukedge.manifest import Manifest
from leukedge.sinks.base import Sink, SinkSet
from leukedge.sinks.crops import DEFAULT_MAX_CROPS, CropStore, crops_dir_for
from leukedge.sinks.files import CsvSink, JsonlSink
from leukedge.sinks.summary import RunningSummary, SummarySink
from leukedge.tally import DEFAULT_MIN_CELLS

FILE_SINKS: Dict[str, Any] = {".jsonl": JsonlSink, ".csv": CsvSink}
FILE_SUFFIXES = tuple(FILE_SINKS)


def sink_options(f: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option(
            "--out",
            "outs",
            multiple=True,
            type=click.Path(dir_okay=False, path_type=Path),
            help="Results file, one row per cell (.jsonl or .csv). Repeatable. An existing file is refused.",
        ),
        click.option("--overwrite", is_flag=True, help="Replace --out files that already exist."),
        click.option(
            "--save-crops",
            is_flag=True,
            help="Save flagged cells (ALL or indeterminate) as PNG beside the first --out file, for the report.",
        ),
        click.option(
            "--max-crops", type=click.IntRange(min=0), default=DEFAULT_MAX_CROPS, show_default=True, hidden=True
        ),
        click.option(
            "--min-cells",
            type=click.IntRange(min=1),
            default=DEFAULT_MIN_CELLS,
            show_default=True,
            help="Cells needed for an adequate count (summary, live view, MQTT).",
        ),
        click.option("--serve", metavar="HOST:PORT", help="Serve the live view, e.g. 127.0.0.1:8080."),
        click.option(
            "--token",
            envvar="LEUKEDGE_TOKEN",
            help="Live-view access token (env LEUKEDGE_TOKEN); required when --serve is not a loopback address. "
            "On the command line it shows in the process list: prefer the variable or --token-file.",
        ),
        click.option(
            "--token-file",
            envvar="LEUKEDGE_TOKEN_FILE",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Read the live-view token from this file (env LEUKEDGE_TOKEN_FILE); its first line is the token.",
        ),
        click.option(
            "--serve-fps",
            type=click.FloatRange(min=0.5, max=60),
            default=10.0,
            show_default=True,
            help="Most frames per second the live view shows.",
        ),
        click.option(
            "--mqtt", metavar="URL", help="Publish to an MQTT broker: mqtt://host[:1883] or mqtts://host[:8883]."
        ),
        click.option("--mqtt-device-id", help="Topic level for this device [default: host name]."),
        click.option("--mqtt-user", help="MQTT user name."),
        click.option(
            "--mqtt-password", envvar="LEUKEDGE_MQTT_PASSWORD", help="MQTT password (env LEUKEDGE_MQTT_PASSWORD)."
        ),
        click.option(
            "--mqtt-ca", type=click.Path(exists=True, dir_okay=False), help="CA certificate for mqtts:// (PEM)."
        ),
        click.option("--mqtt-cert", type=click.Path(exists=True, dir_okay=False), help="Client certificate (PEM)."),
        click.option("--mqtt-key", type=click.Path(exists=True, dir_okay=False), help="Client key (PEM)."),
        click.option(
            "--mqtt-buffer",
            type=click.IntRange(min=1),
            default=10_000,
            show_default=True,
            help="Frames kept while the broker is unreachable; the oldest are dropped beyond this.",
        ),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


@dataclass(frozen=True)
class SinkOptions:
    """What ``@sink_options`` parses, as one value: the sinks a run writes to (see :func:`build_sinks`).

    :meth:`of` builds it from keyword arguments and refuses a name it does
    not have, so a misspelt option is an error, not silently ignored.
    """

    outs: Tuple[Path, ...] = ()
    overwrite: bool = False
    save_crops: bool = False
    max_crops: int = DEFAULT_MAX_CROPS
    min_cells: int = DEFAULT_MIN_CELLS
    serve: Optional[str] = None
    token: Optional[str] = None
    token_file: Optional[Path] = None
    serve_fps: float = 10.0
    mqtt: Optional[str] = None
    mqtt_device_id: Optional[str] = None
    mqtt_user: Optional[str] = None
    mqtt_password: Optional[str] = None
    mqtt_ca: Optional[str] = None
    mqtt_cert: Optional[str] = None
    mqtt_key: Optional[str] = None
    mqtt_buffer: int = 10_000

    @classmethod
    def of(cls, **options: Any) -> SinkOptions:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise InvalidInputError(
                f"unknown sink option(s) {', '.join(unknown)}; the sink options are {', '.join(sorted(known))}",
                hint="check the spelling (they are the keyword forms of leukedge screen's output flags)",
            )
        outs = options.get("outs", ())
        return cls(**{**options, "outs": tuple(Path(o) for o in outs)})


def build_sinks(model_id: str, manifest: Manifest, options: Optional[SinkOptions] = None, **kw: Any) -> SinkSet:
    """The sinks ``options`` (or the same as keywords, ``outs=…``) ask for, nothing opened yet; every option
    is checked here, before screening starts."""
    if options is not None and kw:
        raise InvalidInputError(f"build_sinks: give a SinkOptions or keywords, not both (keywords {', '.join(kw)})")
    o = options if options is not None else SinkOptions.of(**kw)
    outs, min_cells = o.outs, o.min_cells
    band = manifest.decision.indeterminate
    sinks = SinkSet([SummarySink(RunningSummary(band=band, min_cells=min_cells, model=model_id))])
    crops = None
    if o.save_crops:
        if not outs:
            raise InvalidInputError(
                "--save-crops needs a results file to save the crops beside (no --out given)",
                hint="add --out cells.jsonl",
            )
        crops = CropStore(crops_dir_for(outs[0]), band, max_crops=o.max_crops)
    for out in outs:
        cls = FILE_SINKS.get(out.suffix.lower())
        if cls is None:
            raise InvalidInputError(
                f"--out {out}: unknown results format {out.suffix!r}, expected one of {', '.join(FILE_SUFFIXES)}",
                hint="name the file cells.jsonl or cells.csv",
            )
        sinks.add(cls(out, model_id, crops=crops, refuse_existing=not o.overwrite))
    if o.mqtt:
        sinks.add(_mqtt_sink(o, model_id, band))
    elif o.mqtt_user or o.mqtt_ca or o.mqtt_cert or o.mqtt_key or o.mqtt_device_id:
        raise InvalidInputError("MQTT options were given without --mqtt URL", hint="add --mqtt mqtt://broker:1883")
    if o.serve:
        sinks.add(_live_view(o.serve, read_token(o.token, o.token_file), model_id, band, min_cells, o.serve_fps, sinks))
    elif o.token_file:
        raise InvalidInputError("--token-file was given without --serve", hint="add --serve 127.0.0.1:8080")
    return sinks


def read_token(token: Optional[str], token_file: Optional[Path]) -> Optional[str]:
    """The live-view token from --token/LEUKEDGE_TOKEN or from a file (kept out of the process list)."""
    if token_file is None:
        return token
    if token:
        raise InvalidInputError("--token and --token-file both given", hint="give the token one way")
    try:
        lines = Path(token_file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"--token-file {token_file}: cannot be read ({exc})") from None
    first = lines[0].strip() if lines else ""
    if not first:
        raise InvalidInputError(f"--token-file {token_file}: the file is empty; its first line should be the token")
    return first


def _mqtt_sink(o: SinkOptions, model_id: str, band: Tuple[float, float]) -> Sink:
    url, device_id, user, password = str(o.mqtt), o.mqtt_device_id, o.mqtt_user, o.mqtt_password
    ca, cert, key, min_cells = o.mqtt_ca, o.mqtt_cert, o.mqtt_key, o.min_cells
    from leukedge.sinks.mqtt import MqttSettings, MqttSink, check_device_id, default_device_id, parse_mqtt_url

    tls, host, port = parse_mqtt_url(url)
    if (ca or cert or key) and not tls:
        raise InvalidInputError(
            f"--mqtt {url}: certificates were given but the URL is plain mqtt://",
            hint=f"use mqtts://{host}:8883 to connect with TLS",
        )
    if bool(cert) != bool(key):
        raise InvalidInputError("--mqtt-cert and --mqtt-key go together (one was given)", hint="give both, or neither")
    if password and not user:
        raise InvalidInputError("an MQTT password was given without --mqtt-user", hint="add --mqtt-user NAME")
    settings = MqttSettings(
        host=host,
        port=port,
        device_id=check_device_id(device_id) if device_id else default_device_id(),
        tls=tls,
        ca_certs=ca,
        certfile=cert,
        keyfile=key,
        username=user,
        password=password,
        buffer=o.mqtt_buffer,
    )
    return MqttSink(settings, model=model_id, summary=RunningSummary(band=band, min_cells=min_cells, model=model_id))


def _live_view(
    serve: str,
    token: Optional[str],
    model_id: str,
    band: Tuple[float, float],
    min_cells: int,
    serve_fps: float,
    sinks: SinkSet,
) -> Sink:
    from leukedge.liveview import LiveViewSink, parse_bind

    host, port = parse_bind(serve)
    return LiveViewSink(
        host,
        port,
        token=token or None,
        model=model_id,
        band=band,
        min_cells=min_cells,
        max_fps=serve_fps,
        health_extra=sinks.stats,
    )


def first_out(outs: Tuple[Path, ...]) -> Optional[Path]:
    return outs[0] if outs else None
