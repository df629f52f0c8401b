// Drives the web UI's own script (served by the gateway, pushgateway.js) in jsdom against a
// real gateway whose store is large enough for the compact page (group headers as JSON,
// series loaded when a group is opened), and prints what happened as JSON on stdout:
//
//   node open_group.js <page url> <job to open> <job deleted behind the page's back>
//
// Every request the page's script makes goes through the window's `fetch`, which this driver
// wraps to record it (method and absolute URL) before passing it on to Node's fetch.
'use strict';

const { JSDOM, VirtualConsole } = require('jsdom');

const [pageUrl, openJob, goneJob] = process.argv.slice(2);
if (!goneJob) {
  console.error('usage: node open_group.js <page url> <job to open> <job deleted meanwhile>');
  process.exit(2);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Waits (bounded) until `cond()` is true.
async function until(what, cond, ms = 10000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return;
    await sleep(10);
  }
  throw new Error('timed out waiting for ' + what);
}

async function main() {
  const requests = [];
  const errors = [];
  const virtualConsole = new VirtualConsole();
  virtualConsole.on('jsdomError', (e) => errors.push(String(e && e.stack ? e.stack : e)));
  virtualConsole.on('error', (e) => errors.push(String(e)));
  const dom = await JSDOM.fromURL(pageUrl, {
    runScripts: 'dangerously',
    resources: 'usable',
    pretendToBeVisual: true,
    virtualConsole,
    beforeParse(window) {
      // What jsdom lacks and browsers have.
      window.TextEncoder = TextEncoder;
      window.fetch = (url, opts = {}) => {
        const abs = new URL(url, window.location.href).href;
        requests.push({ method: opts.method || 'GET', url: abs });
        return fetch(abs, { method: opts.method || 'GET' });
      };
      window.confirm = () => true;
      window.alert = (m) => errors.push('alert: ' + m);
    },
  });
  const { window } = dom;
  const doc = window.document;
  await until('the page script', () => doc.documentElement.classList.contains('js'));
  const out = { requests, errors };
  out.compact = !!doc.querySelector('#groups.lazy-groups');

  // Narrows the list to one job with the page's filter and returns its panel.
  async function panelOf(job) {
    const input = doc.getElementById('filter');
    input.value = 'job="' + job + '"';
    input.dispatchEvent(new window.Event('input', { bubbles: true }));
    let panel = null;
    await until('the panel of ' + job, () => {
      const ps = doc.querySelectorAll('#groups > details.group');
      panel = ps.length === 1 ? ps[0] : null;
      return panel && panel.textContent.includes('job="' + job + '"');
    });
    return panel;
  }

  async function open(panel) {
    panel.open = true; // fires 'toggle', as a click on the summary does
    const holder = () => panel.querySelector(':scope > .group-body > div:last-child');
    await until('the series', () => {
      const h = holder();
      return h && (h.getAttribute('data-state') === 'done' || h.className === 'note');
    });
    const h = holder();
    return {
      state: h.getAttribute('data-state'),
      note: h.className === 'note' ? h.textContent : null,
      families: Array.from(h.querySelectorAll('details.fam .fname')).map((e) => e.textContent),
      rows: h.querySelectorAll('details.fam > .fam-body > table.tbl > tbody > tr').length,
      text: h.textContent,
    };
  }

  const before = requests.length;
  const a = await panelOf(openJob);
  out.path = a.getAttribute('data-path');
  out.opened = await open(a);
  out.afterOpen = requests.slice(before);

  // Closing and opening it again loads nothing more.
  a.open = false;
  await sleep(50);
  a.open = true;
  await sleep(100);
  out.afterReopen = requests.length - before;

  // A group deleted by someone else after the page was loaded.
  const g = await panelOf(goneJob);
  const del = await fetch(new URL(g.getAttribute('data-path'), pageUrl), { method: 'DELETE' });
  out.deletedMeanwhile = del.status;
  out.gone = await open(g);

  // The Delete Group button of the opened group.
  const a2 = await panelOf(openJob);
  const n = requests.length;
  a2.querySelector('button.del').click();
  await until('the panel to go', () => !a2.isConnected);
  out.deleteRequests = requests.slice(n);
  out.countText = doc.getElementById('group-count').textContent;
  window.close();
  return out;
}

const timer = setTimeout(() => {
  console.error('open_group.js: overall timeout');
  process.exit(3);
}, 60000);
main().then(
  (out) => {
    clearTimeout(timer);
    process.stdout.write(JSON.stringify(out) + '\n');
    process.exit(0);
  },
  (e) => {
    clearTimeout(timer);
    console.error(e && e.stack ? e.stack : e);
    process.exit(1);
  }
);
