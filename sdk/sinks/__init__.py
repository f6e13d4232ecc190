"""Result sinks: files, callbacks, MQTT and the live view behind one interface.

``MqttSink`` (``leukedge.sinks.mqtt``) and ``LiveViewSink``
(``leukedge.liveview``) are imported from their modules; paho-mqtt loads
only when an MQTT sink opens.  The command-line side (``sink_options``,
``build_sinks``) is in ``leukedge.sinks.options``, which needs click.
"""

from __future__ import annotations

from leukedge.sinks.base import CallbackSink, Sink, SinkSet
from leukedge.sinks.files import CsvSink, JsonlSink
from leukedge.sinks.summary import RunningSummary, SummarySink

__all__ = [
    "CallbackSink",
    "CsvSink",
    "JsonlSink",
    "RunningSummary",
    "Sink",
    "SinkSet",
    "SummarySink",
]
