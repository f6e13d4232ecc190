"""Result sinks: files, callbacks, MQTT and the live view behind one interface."""

from leukedge.sinks.base import CallbackSink, Sink, SinkSet
from leukedge.sinks.files import JsonlSink

__all__ = ["CallbackSink", "JsonlSink", "Sink", "SinkSet"]
