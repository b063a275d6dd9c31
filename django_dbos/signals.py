"""Django signals about workflows, sent after the change they report has committed.

Receivers get keyword arguments only:
- ``workflow_started(sender, workflow_id, name, recovered)``: an execution began (first run,
  recovery, resume).
- ``workflow_finished(sender, workflow_id, name, status, error)``: the workflow reached a final
  status (``error`` is the exception for ERROR, else None).
- ``step_finished(sender, workflow_id, function_id, name, error)``: a step's checkpoint committed.

``sender`` is the workflow's name (or the step's). A receiver that raises is logged and does not
disturb the workflow (signals are sent with ``send_robust``).
"""

from django.dispatch import Signal

workflow_started = Signal()
workflow_finished = Signal()
step_finished = Signal()
