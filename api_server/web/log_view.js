// A run's log in the page: opened at its tail and followed live over the API's follow
// endpoint (fetch + a stream reader: EventSource cannot send the Authorization header),
// earlier lines loaded on demand, and never more than MAX_LINES lines in the page.
//
// ANSI colours are rendered by ansi_up (vendored, api_server/web/vendor), which escapes the
// text; its HTML is then parsed in a document of its own and rebuilt from text nodes and
// spans whose colours are set through the CSSOM (the page's CSP allows no inline style),
// so that nothing in a log line can ever become markup or script in the page.

import { AnsiUp } from './vendor/ansi_up.js';
import { ApiError, get, open, seg, withQuery } from './api.js';
import { el } from './dom.js';

export const TAIL = 1000; // lines the log opens with
export const EARLIER = 500; // lines each "earlier" click loads
export const MAX_LINES = 5000; // lines the page holds at most

// The only styles ansi_up writes, each kept only with a value it could have written.
const STYLES = {
  'color': /^rgb\(\d{1,3},\s*\d{1,3},\s*\d{1,3}\)$/,
  'background-color': /^rgb\(\d{1,3},\s*\d{1,3},\s*\d{1,3}\)$/,
  'font-weight': /^bold$/,
  'font-style': /^italic$/,
  'text-decoration': /^underline$/,
  'opacity': /^0?\.\d+$/,
};

function newAnsi() {
  const ansi = new AnsiUp();
  ansi.escape_html = true; // the default, stated: text is escaped before it is wrapped
  ansi.use_classes = false;
  ansi.url_allowlist = {}; // no links out of a log (OSC 8)
  return ansi;
}

function rebuilt(node) {
  if (node.nodeType === Node.TEXT_NODE) return document.createTextNode(node.data);
  const span = document.createElement('span');
  if (node.nodeType === Node.ELEMENT_NODE) {
    for (const decl of (node.getAttribute('style') || '').split(';')) {
      const at = decl.indexOf(':');
      if (at < 0) continue;
      const prop = decl.slice(0, at).trim();
      const value = decl.slice(at + 1).trim();
      if (STYLES[prop] && STYLES[prop].test(value)) span.style.setProperty(prop, value);
    }
    for (const child of node.childNodes) span.append(rebuilt(child));
  }
  return span;
}

// One log line as page nodes; `ansi` carries colours from line to line.
export function renderLine(ansi, text) {
  const parsed = new DOMParser().parseFromString(
    `<!doctype html><body>${ansi.ansi_to_html(text)}`, 'text/html');
  const line = el('div', { class: 'line' });
  for (const child of parsed.body.childNodes) line.append(rebuilt(child));
  return line;
}

export class LogView {
  constructor(runId, { onEnd } = {}) {
    this.runId = runId;
    this.onEnd = onEnd;
    this.ansi = newAnsi();
    this.first = 0; // log line number of the first line shown
    this.next = 0; // log line number of the next line to come
    this.controller = new AbortController();
    this.lines = el('div', { class: 'log-lines', id: 'log-lines' });
    this.earlier = el('button', {
      type: 'button', class: 'link', id: 'log-earlier', hidden: true,
      onclick: () => this.loadEarlier(),
    }, 'Earlier lines');
    this.state = el('p', { class: 'muted log-state', id: 'log-state' });
    this.box = el('div', { class: 'log', id: 'log', tabindex: 0 }, this.earlier, this.lines);
    this.node = el('section', { class: 'log-section' }, el('h2', { text: 'Log' }), this.box,
      this.state);
  }

  stop() {
    this.controller.abort();
  }

  atBottom() {
    return this.box.scrollHeight - this.box.scrollTop - this.box.clientHeight < 40;
  }

  append(texts) {
    const follow = this.atBottom();
    const frag = document.createDocumentFragment();
    for (const text of texts) {
      const line = renderLine(this.ansi, text);
      line.dataset.n = String(this.next++);
      frag.append(line);
    }
    this.lines.append(frag);
    let extra = this.lines.childElementCount - MAX_LINES;
    while (extra-- > 0) {
      this.lines.firstElementChild.remove();
      this.first++;
    }
    this.showEarlier();
    if (follow) this.box.scrollTop = this.box.scrollHeight;
  }

  showEarlier() {
    const room = MAX_LINES - this.lines.childElementCount;
    this.earlier.hidden = this.first === 0;
    this.earlier.disabled = room <= 0;
    this.earlier.textContent = room > 0
      ? `Earlier lines (${this.first} before these)`
      : `${this.first} earlier lines not shown (the page holds ${MAX_LINES} at most)`;
  }

  // Follows the log from its tail until the run ends (until-end) or the view is left.
  async follow() {
    const path = withQuery(`/pipelines/logs/runs/${seg(this.runId)}`,
      { follow: true, 'until-end': true, tail: TAIL });
    this.state.textContent = 'following…';
    try {
      const res = await open(path, this.controller.signal);
      this.first = this.next = Number(res.headers.get('X-Log-Offset')) || 0;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let rest = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const parts = (rest + value).split('\n');
        rest = parts.pop();
        if (parts.length) this.append(parts);
      }
      if (rest) this.append([rest]);
      this.state.textContent = `end of log (${this.next} lines)`;
      this.box.dataset.ended = 'true';
      if (this.onEnd) this.onEnd();
    } catch (err) {
      if (err.name === 'AbortError') return;
      this.state.textContent = `log: ${err instanceof ApiError ? err.message : err}`;
    }
  }

  async loadEarlier() {
    const room = MAX_LINES - this.lines.childElementCount;
    const count = Math.min(EARLIER, this.first, room);
    if (count <= 0) return;
    const from = this.first - count;
    this.earlier.disabled = true;
    try {
      const { message } = await get(
        `/pipelines/logs/runs/${seg(this.runId)}/offset/${from}/lines/${count}`);
      const ansi = newAnsi(); // colours restart at a window's first line
      const frag = document.createDocumentFragment();
      message.forEach((text, i) => {
        const line = renderLine(ansi, text);
        line.dataset.n = String(from + i);
        frag.append(line);
      });
      const height = this.box.scrollHeight;
      this.lines.prepend(frag);
      this.first = from;
      this.box.scrollTop += this.box.scrollHeight - height; // keep the reader's place
    } catch (err) {
      this.state.textContent = `log: ${err.message}`;
    }
    this.showEarlier();
  }
}
