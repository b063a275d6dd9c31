"""``DBOS`` methods that operate workflows: cancel, resume, fork, delete, attributes, retention,
versioning."""

from __future__ import annotations


class ControlAPI:
    pass
