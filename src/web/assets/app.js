//! tocsin's web UI script: live timelines and room feeds (EventSource on /api/stream), the note
//! composer and ticket actions (fetch to the JSON API with the session's CSRF token), making and
//! expiring silences, retries on the admin page, and presence reports. Data arrives through data- attributes and JSON and only ever
//! reaches the page as text (textContent, createElement), never as HTML.
'use strict';

(() => {
  const body = document.body;
  const csrf = body.dataset.csrf || '';
  const me = body.dataset.member || '';

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  // Calls the JSON API with the session cookie and the CSRF header; rejects with the API's detail.
  async function api(method, url, payload) {
    const init = { method, credentials: 'same-origin', headers: { 'X-CSRF-Token': csrf } };
    if (payload !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(payload);
    }
    const r = await fetch(url, init);
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(data.detail || data.error || 'HTTP ' + r.status);
    return data;
  }

  function timeEl(at) {
    const t = el('time', null, at.slice(0, 10) + ' ' + at.slice(11, 19));
    t.dateTime = at;
    t.title = at;
    return t;
  }

  function actorName(actor) {
    if (actor === 'system') return 'tocsin';
    return actor.replace(/^(member|source):/, '');
  }

  const kindLabel = (kind) => kind.replace(/_/g, ' ');

  function say(id, text, bad) {
    const s = document.getElementById(id);
    if (!s) return;
    s.textContent = text;
    s.classList.toggle('bad', !!bad);
  }

  function live(url, onEntry) {
    const src = new EventSource(url);
    src.addEventListener('entry', (ev) => onEntry(JSON.parse(ev.data)));
    // Too far behind to replay (http.streams.replay_limit): the page is stale, render it anew.
    src.addEventListener('reset', () => window.location.reload());
    src.addEventListener('open', () => body.classList.remove('disconnected'));
    src.addEventListener('error', () => body.classList.add('disconnected'));
    return src;
  }

  // ---- A ticket: its timeline as a chat, the composer, the actions --------------------------------
  const ticket = document.getElementById('ticket');
  if (ticket) {
    const id = ticket.dataset.ticket;
    const base = '/api/tickets/' + encodeURIComponent(id);
    const list = document.getElementById('timeline');
    const seen = new Set();
    list.querySelectorAll('[data-seqs]').forEach((li) =>
      li.dataset.seqs.split(' ').forEach((s) => seen.add(Number(s))));

    const renderEntry = (e) => {
      let li;
      if (e.kind === 'note') {
        const internal = e.visibility === 'internal';
        li = el('li', 'entry note vis-' + e.visibility + (e.actor === 'member:' + me ? ' mine' : ''));
        const bubble = el('div', 'bubble');
        const meta = el('div', 'meta');
        meta.append(el('span', 'author', actorName(e.actor)),
          el('span', 'badge ' + (internal ? 'internal' : 'public'), internal ? 'internal' : 'public'),
          timeEl(e.at));
        bubble.append(meta, el('div', 'text', e.text));
        li.append(bubble);
      } else if (e.kind === 'plugin_decided') {
        // What plugins changed, folded as on the server-rendered page (web/plugin_entries.rs).
        li = el('li', 'entry sys kind-plugin_decided');
        li.dataset.count = '1';
        li.dataset.plugins = (e.data && e.data.plugin) || '?';
        const details = el('details');
        const summary = el('summary');
        summary.append(el('span', 'what', 'plugin decided'),
          el('span', 'text', '1 change by ' + ((e.data && e.data.plugin) || '?')));
        const ul = el('ul', 'decisions');
        ul.append(el('li', null, e.text));
        details.append(summary, ul);
        li.append(details, timeEl(e.at));
      } else {
        li = el('li', 'entry sys kind-' + e.kind);
        // The kind's label, unless the text already starts with it ("Opened by ...").
        if (!e.text.toLowerCase().startsWith(kindLabel(e.kind))) li.append(el('span', 'what', kindLabel(e.kind)));
        const text = el('span', 'text', e.text);
        const logs = e.kind === 'plugin_failed' && e.data && Array.isArray(e.data.logs) ? e.data.logs : [];
        if (logs.length) {
          const details = el('details', 'logs');
          details.append(el('summary', null, 'last log lines'), el('pre', null, logs.join('\n')));
          text.append(details);
        }
        li.append(text, timeEl(e.at));
      }
      li.dataset.seqs = String(e.seq);
      return li;
    };

    // Folds a refired entry into a refired line just before it ("refired ×N").
    const foldRefired = (e) => {
      const last = list.lastElementChild;
      if (e.kind !== 'refired' || !last || !last.classList.contains('kind-refired')) return false;
      const count = Number(last.dataset.count || '1') + 1;
      last.dataset.count = String(count);
      last.dataset.seqs += ' ' + e.seq;
      let c = last.querySelector('.count');
      if (!c) {
        let what = last.querySelector('.what');
        if (!what) {
          what = el('span', 'what', 'refired');
          last.prepend(what);
        }
        c = el('span', 'count');
        what.after(c);
      }
      c.textContent = '×' + count;
      last.querySelector('.text').textContent = e.text;
      last.querySelector('time').replaceWith(timeEl(e.at));
      return true;
    };

    // Folds a plugin_decided entry into the folded line just before it ("N changes by ...").
    const foldDecided = (e) => {
      const last = list.lastElementChild;
      if (e.kind !== 'plugin_decided' || !last || !last.classList.contains('kind-plugin_decided')) return false;
      const count = Number(last.dataset.count || '1') + 1;
      last.dataset.count = String(count);
      last.dataset.seqs += ' ' + e.seq;
      last.querySelector('ul.decisions').append(el('li', null, e.text));
      const plugins = new Set((last.dataset.plugins || '').split(',').filter(Boolean));
      plugins.add((e.data && e.data.plugin) || '?');
      last.dataset.plugins = Array.from(plugins).join(',');
      last.querySelector('summary .text').textContent = count + ' changes by ' + Array.from(plugins).join(', ');
      last.querySelector('time').replaceWith(timeEl(e.at));
      return true;
    };

    const stateChip = document.querySelector('#state .chip');
    const setState = (state) => {
      if (!stateChip) return;
      stateChip.className = 'chip state state-' + state;
      stateChip.textContent = state;
      const ack = document.getElementById('ack');
      const resolve = document.getElementById('resolve');
      if (ack) ack.disabled = state !== 'open';
      if (resolve) resolve.disabled = state === 'resolved';
    };
    const setAssignee = (name) => {
      document.getElementById('assignee').textContent = name || 'nobody';
      const select = document.getElementById('assign-to');
      if (select) select.value = name || '';
    };
    if (stateChip) setState(stateChip.textContent);

    const add = (e) => {
      if (seen.has(e.seq)) return;
      seen.add(e.seq);
      const nearBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 80;
      if (!foldRefired(e) && !foldDecided(e)) list.append(renderEntry(e));
      if (e.kind === 'acked') setState('acked');
      if (e.kind === 'resolved') setState('resolved');
      if (e.kind === 'reopened' || e.kind === 'opened') setState('open');
      if (e.kind === 'assigned' && e.data) setAssignee(e.data.assignee);
      if (nearBottom || e.actor === 'member:' + me) list.lastElementChild.scrollIntoView({ block: 'nearest' });
    };

    live('/api/stream?ticket=' + encodeURIComponent(id) + '&after=' + encodeURIComponent(ticket.dataset.feed),
      (ev) => add(ev.entry));

    const composer = document.getElementById('composer');
    if (composer) {
      const text = document.getElementById('note-text');
      const visibility = document.getElementById('note-visibility');
      const button = composer.querySelector('button[type=submit]');
      composer.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        if (!text.value.trim()) return;
        button.disabled = true;
        say('composer-status', 'Sending…');
        try {
          add(await api('POST', base + '/notes', { text: text.value, visibility: visibility.value }));
          text.value = '';
          say('composer-status', '');
        } catch (err) {
          say('composer-status', err.message, true);
        } finally {
          button.disabled = false;
        }
      });
      text.addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) composer.requestSubmit();
      });
    }

    const act = async (path, payload, doing) => {
      say('action-status', doing + '…');
      try {
        const r = await api('POST', base + path, payload);
        if (r.ticket) {
          setState(r.ticket.state);
          setAssignee(r.ticket.assignee);
        }
        if (r.entry) add(r.entry);
        say('action-status', '');
      } catch (err) {
        say('action-status', err.message, true);
      }
    };
    const on = (buttonId, f) => {
      const b = document.getElementById(buttonId);
      if (b) b.addEventListener('click', f);
    };
    on('ack', () => act('/ack', undefined, 'Acknowledging'));
    on('resolve', () => act('/resolve', undefined, 'Resolving'));
    on('assign', () => act('/assign', { member: document.getElementById('assign-to').value || null }, 'Assigning'));
    on('take', () => act('/assign', { member: me }, 'Taking it'));
    on('mute', async () => {
      const matchers = JSON.parse(ticket.dataset.matchers || '[]');
      say('action-status', 'Muting…');
      try {
        await api('POST', '/api/silences', {
          matchers, duration: '1h', comment: 'Muted from ' + ticket.dataset.key + ' in the web UI',
        });
        say('action-status', 'Muted for an hour.');
      } catch (err) {
        say('action-status', err.message, true);
      }
    });
  }

  // ---- A room's activity, newest first ------------------------------------------------------------
  const feed = document.getElementById('feed');
  if (feed) {
    const seen = new Set();
    feed.querySelectorAll('[data-id]').forEach((li) => seen.add(Number(li.dataset.id)));
    live('/api/stream?room=' + encodeURIComponent(feed.dataset.room) + '&after=' + encodeURIComponent(feed.dataset.feed),
      (ev) => {
        if (seen.has(ev.id)) return;
        seen.add(ev.id);
        const e = ev.entry;
        const li = el('li', 'feed-item kind-' + e.kind + (e.actor === 'member:' + me ? ' mine' : ''));
        li.dataset.id = String(ev.id);
        const key = el('a', 'key', ev.ticket);
        key.href = '/tickets/' + encodeURIComponent(ev.ticket);
        li.append(key, el('span', 'title', ev.title));
        // Notes say who wrote them; other entries' texts already name who did what.
        if (e.kind === 'note') {
          li.append(el('span', 'what', 'note'));
          if (e.visibility === 'internal') li.append(el('span', 'badge internal', 'internal'));
          li.append(el('span', 'author', actorName(e.actor)));
        } else if (!e.text.toLowerCase().startsWith(kindLabel(e.kind))) {
          li.append(el('span', 'what', kindLabel(e.kind)));
        }
        li.append(timeEl(e.at), el('span', 'text', e.text));
        feed.prepend(li);
        const empty = document.getElementById('feed-empty');
        if (empty) empty.remove();
      });
  }

  // ---- Silences: a new one through the API, Expire ------------------------------------------------
  // The matchers box holds matchers one per line or separated by spaces; spaces inside double quotes
  // belong to the value, and `name = value` with spaces around the operator is one matcher.
  const OP_AT_START = /^(=~|!~|!=|=)/;
  const NAME_AND_OP = /^[A-Za-z_][A-Za-z0-9_]*(=~|!~|!=|=)$/;
  const MATCHER_START = /^[A-Za-z_][A-Za-z0-9_]*(=~|!~|!=|=)/;
  const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
  function tokens(line) {
    const out = [];
    let cur = '';
    let quoted = false;
    for (let i = 0; i < line.length; i++) {
      const c = line[i];
      if (quoted && c === '\\' && i + 1 < line.length) {
        cur += c + line[i + 1];
        i++;
        continue;
      }
      if (c === '"') quoted = !quoted;
      if (!quoted && /\s/.test(c)) {
        if (cur) out.push(cur);
        cur = '';
        continue;
      }
      cur += c;
    }
    if (cur) out.push(cur);
    return out;
  }
  function splitMatchers(text) {
    const out = [];
    for (const line of text.split('\n')) {
      const here = [];
      for (const t of tokens(line)) {
        const prev = here[here.length - 1];
        const joins = prev !== undefined &&
          ((NAME.test(prev) && OP_AT_START.test(t)) || (NAME_AND_OP.test(prev) && !MATCHER_START.test(t)));
        if (joins) here[here.length - 1] = prev + t;
        else here.push(t);
      }
      out.push(...here);
    }
    return out;
  }

  const silenceForm = document.getElementById('silence-form');
  if (silenceForm) {
    const matchers = document.getElementById('silence-matchers');
    const duration = document.getElementById('silence-duration');
    const custom = document.getElementById('silence-custom');
    const comment = document.getElementById('silence-comment');
    const error = document.getElementById('silence-error');
    const button = silenceForm.querySelector('button[type=submit]');
    const showError = (text) => {
      error.textContent = text;
      error.hidden = !text;
    };
    duration.addEventListener('change', () => {
      custom.hidden = duration.value !== 'custom';
      if (!custom.hidden) custom.focus();
    });
    silenceForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      showError('');
      button.disabled = true;
      try {
        const r = await api('POST', '/api/silences', {
          matchers: splitMatchers(matchers.value),
          duration: duration.value === 'custom' ? custom.value.trim() : duration.value,
          comment: comment.value,
        });
        location.assign('/silences?created=' + encodeURIComponent(r.silence.id));
      } catch (err) {
        showError(err.message);
        button.disabled = false;
      }
    });
  }

  document.querySelectorAll('button.expire').forEach((b) => b.addEventListener('click', async () => {
    b.disabled = true;
    b.textContent = 'Expiring…';
    try {
      await api('POST', '/api/silences/' + encodeURIComponent(b.dataset.id) + '/expire');
      location.assign('/silences');
    } catch (err) {
      b.disabled = false;
      b.textContent = 'Expire';
      const li = b.closest('li');
      let s = li.querySelector('.status');
      if (!s) {
        s = el('span', 'status bad');
        li.querySelector('.silence-meta').append(s);
      }
      s.textContent = err.message;
    }
  }));

  // ---- Admin: put dead deliveries back in line ----------------------------------------------------
  document.querySelectorAll('button.retry').forEach((b) => b.addEventListener('click', async () => {
    b.disabled = true;
    try {
      await api('POST', '/api/deliveries/' + encodeURIComponent(b.dataset.id) + '/retry');
      b.textContent = 'Queued';
      b.closest('tr').classList.add('done');
    } catch (err) {
      b.disabled = false;
      b.title = err.message;
      b.textContent = 'Retry (failed)';
    }
  }));

  // ---- Admin: retry or delete dead journal rows --------------------------------------------------
  const journalAction = (selector, method, path, doneText) =>
    document.querySelectorAll(selector).forEach((b) => b.addEventListener('click', async () => {
      b.disabled = true;
      try {
        await api(method, '/api/journal/dead/' + encodeURIComponent(b.dataset.id) + path);
        b.textContent = doneText;
        b.closest('tr').classList.add('done');
        b.closest('tr').querySelectorAll('button').forEach((o) => { o.disabled = true; });
      } catch (err) {
        b.disabled = false;
        b.title = err.message;
        b.textContent += ' (failed)';
      }
    }));
  journalAction('button.journal-retry', 'POST', '/retry', 'Queued');
  journalAction('button.journal-delete', 'DELETE', '', 'Deleted');

  // ---- Presence: active while someone is at the keyboard, idle after 5 minutes or when hidden -----
  if (csrf) {
    const IDLE_MS = 5 * 60 * 1000;
    let lastInput = Date.now();
    let reported = null;
    const report = (state) => {
      reported = state;
      fetch('/web/presence', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
        body: JSON.stringify({ state }),
      }).catch(() => {});
    };
    const current = () =>
      document.visibilityState === 'visible' && Date.now() - lastInput < IDLE_MS ? 'active' : 'idle';
    const check = () => {
      const s = current();
      if (s !== reported) report(s);
    };
    const poke = () => {
      lastInput = Date.now();
      check();
    };
    ['mousemove', 'keydown', 'pointerdown', 'wheel'].forEach((t) =>
      window.addEventListener(t, poke, { passive: true }));
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible') lastInput = Date.now();
      check();
    });
    // The heartbeat also notices going idle.
    setInterval(() => report(current()), 60 * 1000);
    // Beacons cannot carry headers: the CSRF token goes in the body.
    window.addEventListener('pagehide', () =>
      navigator.sendBeacon('/web/presence', JSON.stringify({ state: 'offline', csrf })));
    check();
  }
})();
