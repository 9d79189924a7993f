// js-team-router: a tocsin plugin in JavaScript, built with componentize-js (see plugins/README.md).
//
// - Alerts whose `alertname` matches the regex in config `quiet` are dropped. The regex is matched by
//   tocsin (`regexMatch`), so it means what it means in tocsin's routes and silences, not what
//   JavaScript's RegExp would make of it.
// - Otherwise the alert's `team` label is looked up in table `team_rooms`: a known team routes to its
//   room, tagged `team:<name>`; critical alerts also mention `here`.
// - Anything else passes.
import { config, log, lookup, regexMatch } from 'tocsin:plugin/host@0.1.0';

// Labels arrive as a list of [key, value] pairs, sorted by key.
function label(event, key) {
  const pair = event.labels.find(([k]) => k === key);
  return pair === undefined ? undefined : pair[1];
}

// The world's `handle` export. Returning a value is `ok`; throwing a string is `err` (a plugin
// failure: tocsin logs it and goes on as if the plugin had passed).
export function handle(event) {
  const alertname = label(event, 'alertname') ?? '';
  const quiet = config('quiet');
  if (quiet !== undefined) {
    let hit;
    try {
      hit = regexMatch(quiet, alertname);
    } catch (e) {
      // An `err` from the host arrives as an exception whose `payload` is the message.
      throw `config quiet: ${e.payload ?? e}`;
    }
    if (hit) {
      return { tag: 'drop', val: `quiet: ${alertname}` };
    }
  }

  const team = label(event, 'team');
  const room = team === undefined ? undefined : lookup('team_rooms', team);
  if (room === undefined) {
    log('debug', `no room for team ${team ?? '(none)'}`);
    return { tag: 'pass' };
  }
  return {
    tag: 'route',
    val: {
      ticket: { tags: [`team:${team}`] },
      addLabels: [],
      rooms: [room],
      mentions: event.severity === 'critical' && event.status === 'firing' ? ['here'] : [],
    },
  };
}
