// {{name}}: a tocsin plugin in JavaScript. Drops the Watchdog heartbeat and sends critical alerts to
// the room named in config `critical_room`; everything else passes to the next plugin unchanged.
import { config, log } from 'tocsin:plugin/host@0.1.0';

// Labels arrive as a list of [key, value] pairs, sorted by key.
function label(event, key) {
  const pair = event.labels.find(([k]) => k === key);
  return pair === undefined ? undefined : pair[1];
}

// Returning a decision is the WIT `ok`; throwing a string is `err`: a plugin failure, after which
// tocsin goes on as if the plugin had passed (fail open).
export function handle(event) {
  // Alertmanager's always-firing heartbeat: proof the pipeline works, not a problem.
  if (label(event, 'alertname') === 'Watchdog') {
    return { tag: 'drop', val: 'watchdog heartbeat' };
  }

  if (event.severity === 'critical') {
    const room = config('critical_room');
    if (room === undefined) {
      throw 'config critical_room is not set';
    }
    log('info', `critical ${JSON.stringify(event.title)} goes to ${room}`);
    return {
      tag: 'route',
      val: { ticket: { tags: ['critical'] }, addLabels: [], rooms: [room], mentions: [] },
    };
  }

  return { tag: 'pass' };
}
