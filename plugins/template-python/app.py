"""{{name}}: a tocsin plugin in Python. Drops the Watchdog heartbeat and sends critical alerts to
the room named in config `critical_room`; everything else passes to the next plugin unchanged.

Build: componentize-py -d wit -w plugin componentize app -o {{name}}.wasm
"""

import wit_world
from componentize_py_types import Err
from wit_world.imports import host, types


class WitWorld(wit_world.WitWorld):
    """componentize-py calls `handle` for each alert."""

    def handle(self, event: types.Event) -> types.Decision:
        # Returning a value is the WIT `ok`; raising Err(message) is `err`: a plugin failure, after
        # which tocsin goes on as if the plugin had passed (fail open).
        labels = dict(event.labels)
        # Alertmanager's always-firing heartbeat: proof the pipeline works, not a problem.
        if labels.get("alertname") == "Watchdog":
            return types.Decision_Drop("watchdog heartbeat")

        if event.severity == types.Severity.CRITICAL:
            room = host.config("critical_room")
            if room is None:
                raise Err("config critical_room is not set")
            host.log(host.Level.INFO, f"critical {event.title!r} goes to {room}")
            ticket = types.TicketFields(
                title=None, severity=None, body=None, tags=["critical"], group_key=None
            )
            return types.Decision_Route(
                types.Routed(ticket=ticket, add_labels=[], rooms=[room], mentions=[])
            )

        return types.Decision_Pass()
