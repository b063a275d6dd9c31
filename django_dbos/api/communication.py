"""``DBOS`` methods for workflow communication: messages, events, streams, waiting."""

from __future__ import annotations


class CommunicationAPI:
    pass
