// A run's log in the page: opened at its tail and followed live over the API's follow
// endpoint (fetch + a stream reader: EventSource cannot send the Authorization header),
// earlier lines loaded on demand, and never more than MAX_LINES lines in the page.
//
// ANSI colours: ansi_up (vendored, api_server/web/vendor) parses the escape sequences and
// keeps the colour state from line to line; its HTML is never used. Each run of text it
// finds comes back as a fragment (text, colours, bold…), which becomes a span whose text
// is set as text and whose colours are set through the CSSOM (the page's CSP allows no
// inline style): nothing in a log line can become markup or script in the page.

import { AnsiUp } from './vendor/ansi_up.js';
import { ApiError, get, open, seg, withQuery } from './api.js';
import { el } from './dom.js';

export const TAIL = 1000; // lines the log opens with
export const EARLIER = 500; // lines each "earlier" click loads
export const MAX_LINES = 5000; // lines the page holds at most

// ansi_up 6 turns each fragment into HTML in transform_to_html and each OSC 8 hyperlink
// in process_hyperlink; these collect them instead (tests/api/test_web_page.py checks the
// vendored version still has both).
class AnsiFragments extends AnsiUp {
  constructor() {
    super();
    this.escape_html = true; // its default, stated: would its HTML ever be used
    this.fragments = [];
  }

  transform_to_html(fragment) {
    if (fragment.text) this.fragments.push(fragment);
    return '';
  }

  process_hyperlink(packet) {
    // A link's text, as text: a log line links nowhere.
    this.fragments.push({ ...this.with_state(packet), text: packet.text });
    return '';
  }

  parse(text) {
    this.fragments = [];
    this.ansi_to_html(text);
    return this.fragments;
  }
}

const rgb = (colour) => `rgb(${colour.rgb.map((c) => Number(c) & 255).join(', ')})`;

function span(fragment) {
  const node = document.createElement('span');
  node.textContent = fragment.text;
  if (fragment.fg) node.style.color = rgb(fragment.fg);
  if (fragment.bg) node.style.backgroundColor = rgb(fragment.bg);
  if (fragment.bold) node.style.fontWeight = 'bold';
  if (fragment.faint) node.style.opacity = '0.7';
  if (fragment.italic) node.style.fontStyle = 'italic';
  if (fragment.underline) node.style.textDecoration = 'underline';
  return node;
}

// One log line as page nodes; `ansi` carries colours from line to line.
export function renderLine(ansi, text) {
  const line = el('div', { class: 'line' });
  for (const fragment of ansi.parse(text)) {
    line.append(fragment.fg || fragment.bg || fragment.bold || fragment.faint || fragment.italic
      || fragment.underline ? span(fragment) : fragment.text);
  }
  return line;
}

export class LogView {
  constructor(runId, { onEnd } = {}) {
    this.runId = runId;
    this.onEnd = onEnd;
    this.ansi = new AnsiFragments();
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
      const ansi = new AnsiFragments(); // colours restart at a window's first line
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
