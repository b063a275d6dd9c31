"""The django_dbos workflows the ``comm`` benchmark times (imported after ``django.setup()``).

``dbos_comm.py`` defines the same two workflows for the dbos package, body for body:

- ``receiver`` says it is about to call ``recv`` (``READY``), calls it, and returns the
  ``perf_counter_ns()`` taken right after ``recv`` returned, with the message;
- ``setter`` waits until the benchmark opens its gate (``GATES``), then returns the
  ``perf_counter_ns()`` taken right before ``set_event`` and the one right after it.

The benchmark runs in the same process as the workflows, so these clocks compare with its own.
``READY`` and ``GATES`` are keyed by workflow ID: a workflow's arguments are serialized, so an
in-process ``threading.Event`` cannot be passed to it.
"""

from __future__ import annotations

import threading
import time

from django_dbos import DBOS

TOPIC = "bench"
MESSAGE = "ping"
KEY = "bench"
VALUE = "pong"
#: How long anything in the benchmark waits before it gives up (recv, get_event, the gate).
WAIT_SECONDS = 30.0

READY: dict[str, threading.Event] = {}
GATES: dict[str, threading.Event] = {}


@DBOS.workflow(name="bench.comm.receiver")
def receiver() -> list:
    READY[str(DBOS.workflow_id)].set()
    message = DBOS.recv(TOPIC, timeout_seconds=WAIT_SECONDS)
    received_at = time.perf_counter_ns()
    return [received_at, message]


@DBOS.workflow(name="bench.comm.setter")
def setter() -> list:
    if not GATES[str(DBOS.workflow_id)].wait(WAIT_SECONDS):
        return [0, 0]
    started = time.perf_counter_ns()
    DBOS.set_event(KEY, VALUE)
    return [started, time.perf_counter_ns()]
