"""python-tagger: a tocsin plugin in Python (built with componentize-py).

Drops the Watchdog heartbeat (`alertname="Watchdog"`); for everything else adds the ticket tag
`env:<env label>` (when the alert has an `env` label) and the label `tagged_by=python`.

Build (scripts/build-plugins does this):
    componentize-py -d ../../wit -w plugin componentize tagger -o tagger.wasm
The module must not be named like the world (`plugin`), hence `tagger`.
"""

import wit_world
from wit_world.imports import host, types


class WitWorld(wit_world.WitWorld):
    """componentize-py instantiates this class and calls `handle` for each alert."""

    def handle(self, event: types.Event) -> types.Decision:
        # Returning a value is the WIT `ok`; raising componentize_py_types.Err(msg) is `err`.
        labels = dict(event.labels)
        if labels.get("alertname") == "Watchdog":
            return types.Decision_Drop("watchdog heartbeat")

        tags = []
        env = labels.get("env")
        if env:
            tags.append(f"env:{env}")
        else:
            host.log(host.Level.DEBUG, "no env label; tagging without env")

        ticket = types.TicketFields(title=None, severity=None, body=None, tags=tags, group_key=None)
        return types.Decision_Route(
            types.Routed(
                ticket=ticket,
                add_labels=[("tagged_by", "python")],
                rooms=[],
                mentions=[],
            )
        )
