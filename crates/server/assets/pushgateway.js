// Pushgateway web UI: tabs, group filter, group deletion, wipe, and (for very large stores)
// loading a group's series only when its panel is expanded. Plain JavaScript, no libraries.
// Every URL is relative to the page, so the UI works under any --web.route-prefix.
(function () {
  'use strict';

  var doc = document;
  var root = doc.documentElement;

  function byId(id) {
    return doc.getElementById(id);
  }

  function el(tag, cls, text) {
    var e = doc.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  // ---- Tabs -------------------------------------------------------------------------------

  function currentTab() {
    if (location.hash === '#status') return 'status';
    if (location.hash === '#metrics') return 'metrics';
    return /\/status$/.test(location.pathname) ? 'status' : 'metrics';
  }

  function showTab() {
    var status = currentTab() === 'status';
    root.classList.add('js');
    root.classList.toggle('show-status', status);
    var m = byId('metrics-tab');
    var s = byId('status-tab');
    if (m) m.classList.toggle('active', !status);
    if (s) s.classList.toggle('active', status);
  }

  window.addEventListener('hashchange', showTab);

  // ---- Messages and confirmation -----------------------------------------------------------

  function showError(msg) {
    var e = byId('error');
    if (!e) {
      window.alert(msg);
      return;
    }
    e.textContent = msg;
    e.hidden = false;
  }

  function clearError() {
    var e = byId('error');
    if (e) e.hidden = true;
  }

  // Resolves to true if the user confirmed.
  function confirmAction(message, okLabel) {
    var dlg = byId('confirm');
    if (!dlg || typeof dlg.showModal !== 'function') {
      return Promise.resolve(window.confirm(message));
    }
    byId('confirm-msg').textContent = message;
    byId('confirm-ok').textContent = okLabel;
    return new Promise(function (resolve) {
      function onClose() {
        dlg.removeEventListener('close', onClose);
        resolve(dlg.returnValue === 'ok');
      }
      dlg.returnValue = '';
      dlg.addEventListener('close', onClose);
      dlg.showModal();
      byId('confirm-cancel').focus();
    });
  }

  // ---- Requests ----------------------------------------------------------------------------

  // Sends a request to a page-relative path and resolves if the gateway answered 202.
  function send(method, path) {
    return fetch(path, { method: method, credentials: 'same-origin', cache: 'no-store' }).then(
      function (r) {
        if (r.status === 202) return;
        return r.text().then(function (t) {
          throw new Error(r.status + ' ' + r.statusText + (t ? ': ' + t.trim() : ''));
        });
      }
    );
  }

  // ---- Groups ------------------------------------------------------------------------------
  //
  // Normally every group is a server-rendered <details class="group"> panel. For very large
  // stores the server embeds the group headers as JSON instead (#group-data); then `big` holds
  // them and only the first PAGE matching groups are rendered ("Show more" renders more).

  var PAGE = 200;
  var big = null; // { items: [{e, text, panel, gone}], total, matches, shown }
  var index = null; // [[panel, lower-cased label text], ...] for the filter (normal mode)

  function groupPanels() {
    return doc.querySelectorAll('#groups > details.group');
  }

  function totalGroups() {
    return big ? big.total : groupPanels().length;
  }

  function updateCounts() {
    index = null;
    var n = totalGroups();
    var w = byId('wipe');
    if (w) {
      w.textContent = 'Delete All ' + n + ' Groups';
      w.disabled = n === 0;
    }
    var e = byId('empty');
    if (e) e.hidden = n !== 0;
    if (big) showCount();
    else applyFilter();
  }

  function filterTerms() {
    var input = byId('filter');
    return input ? input.value.toLowerCase().split(/\s+/).filter(Boolean) : [];
  }

  function matchesAll(text, terms) {
    for (var i = 0; i < terms.length; i++) if (text.indexOf(terms[i]) < 0) return false;
    return true;
  }

  function showCount() {
    var count = byId('group-count');
    var total = totalGroups();
    var matched = total;
    if (big) {
      matched = big.matches ? big.matches.filter(function (it) { return !it.gone; }).length : total;
      var bar = byId('more-bar');
      var shown = doc.querySelectorAll('#groups > details.group').length;
      if (bar) {
        bar.hidden = shown >= matched;
        byId('shown-count').textContent = 'Showing ' + shown + ' of ' + matched + ' groups.';
        byId('show-more').textContent = 'Show ' + Math.min(PAGE, matched - shown) + ' more';
      }
    } else if (index) {
      matched = 0;
      index.forEach(function (e) {
        if (!e[0].hidden) matched++;
      });
    }
    if (count) {
      count.textContent = filterTerms().length
        ? matched + ' of ' + total + ' groups'
        : total + (total === 1 ? ' group' : ' groups');
    }
  }

  function labelText(panel) {
    var parts = [];
    panel.querySelectorAll(':scope > summary > .lbl').forEach(function (l) {
      parts.push(l.textContent);
    });
    return parts;
  }

  function removePanel(panel) {
    panel.remove();
    if (big && panel._item && !panel._item.gone) {
      panel._item.gone = true;
      big.total--;
    }
  }

  function deleteGroup(panel) {
    var msg = 'Do you really want to delete all metrics of group {' + labelText(panel).join(', ') + '}?';
    confirmAction(msg, 'Delete')
      .then(function (ok) {
        if (!ok) return;
        clearError();
        return send('DELETE', panel.getAttribute('data-path')).then(function () {
          removePanel(panel);
          updateCounts();
        });
      })
      .catch(function (e) {
        showError('Deleting metric group failed: ' + e.message);
      });
  }

  function wipe() {
    var n = totalGroups();
    var msg =
      'Do you really want to delete all ' + n + ' metric groups? ' +
      'Groups pushed after this page was loaded are deleted too.';
    confirmAction(msg, 'Delete All')
      .then(function (ok) {
        if (!ok) return;
        clearError();
        return send('PUT', 'api/v1/admin/wipe').then(function () {
          groupPanels().forEach(function (p) {
            p.remove();
          });
          if (big) {
            big.items.forEach(function (it) {
              it.gone = true;
            });
            big.total = 0;
          }
          updateCounts();
        });
      })
      .catch(function (e) {
        showError('Deleting all metric groups failed: ' + e.message);
      });
  }

  // ---- Filter ------------------------------------------------------------------------------

  function applyFilter() {
    var terms = filterTerms();
    if (big) {
      big.matches = big.items.filter(function (it) {
        return !it.gone && matchesAll(it.text, terms);
      });
      byId('groups').textContent = '';
      big.shown = 0;
      showMore();
      return;
    }
    if (!index) {
      index = Array.prototype.map.call(groupPanels(), function (p) {
        return [p, labelText(p).join(' ').toLowerCase()];
      });
    }
    index.forEach(function (e) {
      var ok = matchesAll(e[1], terms);
      if (e[0].hidden === ok) e[0].hidden = !ok;
    });
    showCount();
  }

  var filterTimer = 0;
  function scheduleFilter() {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(applyFilter, totalGroups() > 2000 ? 150 : 30);
  }

  function setAllOpen(open) {
    groupPanels().forEach(function (p) {
      if (p.hidden) return;
      p.open = open;
      p.querySelectorAll('details.fam').forEach(function (f) {
        f.open = open;
      });
    });
  }

  // ---- Large stores: group headers rendered from the embedded JSON --------------------------

  // Mirrors the server's group panel markup (see ui.rs `group_panel`).
  function groupPanel(item) {
    // [[name, value, ...], push, failure, lastPushed, failed, failedAt, families, age, ttl, stale]
    var e = item.e;
    var labels = {};
    var d = el('details', 'group');
    var s = el('summary');
    for (var i = 0; i + 1 < e[0].length; i += 2) {
      labels[e[0][i]] = e[0][i + 1];
      s.appendChild(labelBadge(e[0][i], e[0][i + 1]));
      s.appendChild(doc.createTextNode(' '));
    }
    d.setAttribute('data-path', groupPath(labels));
    s.appendChild(el('span', 'meta', 'last pushed: ' + e[3]));
    if (e[7]) {
      s.appendChild(doc.createTextNode(' '));
      s.appendChild(el('span', 'meta age', e[7]));
    }
    if (e[8]) {
      s.appendChild(doc.createTextNode(' '));
      s.appendChild(el('span', 'meta ttl', e[8]));
    }
    if (e[9]) {
      s.appendChild(doc.createTextNode(' '));
      s.appendChild(el('span', 'badge-stale', 'Stale'));
    }
    if (e[4]) {
      var f = el('span', 'badge-fail', 'Last push failed!');
      f.title = 'last failed push: ' + e[5];
      s.appendChild(doc.createTextNode(' '));
      s.appendChild(f);
    }
    var b = el('button', 'btn danger xs del push-right', 'Delete Group');
    b.type = 'button';
    s.appendChild(doc.createTextNode(' '));
    s.appendChild(b);
    d.appendChild(s);
    var body = el('div', 'group-body');
    var times = el('div', 'times');
    [['push_time_seconds', e[1]], ['push_failure_time_seconds', e[2]]].forEach(function (t) {
      var sp = el('span');
      sp.appendChild(el('code', null, t[0]));
      sp.appendChild(doc.createTextNode(' ' + t[1]));
      times.appendChild(sp);
    });
    times.appendChild(el('span', null, e[6] + ' metric families'));
    body.appendChild(times);
    body.appendChild(el('div', 'lazy'));
    d.appendChild(body);
    d._item = item;
    item.panel = d;
    return d;
  }

  function showMore() {
    var list = byId('groups');
    var frag = doc.createDocumentFragment();
    var added = 0;
    while (big.shown < big.matches.length && added < PAGE) {
      var it = big.matches[big.shown++];
      if (it.gone) continue;
      frag.appendChild(it.panel || groupPanel(it));
      added++;
    }
    list.appendChild(frag);
    showCount();
  }

  function initBig() {
    var data = byId('group-data');
    if (!data) return;
    var entries = JSON.parse(data.textContent);
    data.remove();
    big = {
      items: entries.map(function (e) {
        var parts = [];
        for (var i = 0; i + 1 < e[0].length; i += 2) parts.push(e[0][i] + '="' + e[0][i + 1] + '"');
        return { e: e, text: parts.join(' ').toLowerCase(), panel: null, gone: false };
      }),
      total: entries.length,
      matches: null,
      shown: 0,
    };
    applyFilter();
  }

  // ---- On-demand series (large stores) -----------------------------------------------------

  // base64url of the UTF-8 bytes, padding stripped, plus one '=' (so that "" becomes "=").
  function b64(s) {
    var bytes = new TextEncoder().encode(s);
    var bin = '';
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '') + '=';
  }

  // The relative delete path of a group, exactly as the server writes it into data-path.
  function groupPath(labels) {
    var p = 'metrics/job@base64/' + b64(labels.job || '');
    Object.keys(labels)
      .filter(function (k) {
        return k !== 'job';
      })
      .sort()
      .forEach(function (k) {
        p += '/' + encodeURIComponent(k) + '@base64/' + b64(labels[k]);
      });
    return p;
  }

  // One group as /api/v1/metrics shows it, from the one-group endpoint under the page
  // (`api/v1/` + the group's path): resolves to the group, or null if it no longer exists.
  // Not cached: a panel loads its series once, when it is first opened.
  function loadGroup(path) {
    return fetch('api/v1/' + path, { credentials: 'same-origin', cache: 'no-store' }).then(function (r) {
      if (r.status === 404) return null;
      if (!r.ok) throw new Error(r.status + ' ' + r.statusText);
      return r.json().then(function (j) {
        return (j.data && j.data[0]) || null;
      });
    });
  }

  function fmt(s) {
    if (s === 'NaN' || s === '+Inf' || s === '-Inf' || typeof s !== 'string') return String(s);
    var v = Number(s);
    return isNaN(v) ? s : String(v);
  }

  function labelBadge(name, value) {
    var cls = name === 'job' ? 'lbl job' : name === 'instance' ? 'lbl inst' : 'lbl';
    return el('span', cls, name + '="' + value + '"');
  }

  function subTable(rows) {
    var t = el('table', 'sub');
    rows.forEach(function (r) {
      var tr = el('tr');
      var th = el('th', null, r[0]);
      th.scope = 'row';
      tr.appendChild(th);
      tr.appendChild(el('td', null, r[1]));
      t.appendChild(tr);
    });
    return t;
  }

  function sortedNumericKeys(o) {
    return Object.keys(o || {}).sort(function (a, b) {
      return Number(a.replace('Inf', 'Infinity')) - Number(b.replace('Inf', 'Infinity'));
    });
  }

  function valueCell(type, m) {
    var td = el('td', 'val');
    if (type === 'SUMMARY') {
      var q = m.quantiles || {};
      var rows = sortedNumericKeys(q).map(function (k) {
        return ['Quantile ' + k, fmt(q[k])];
      });
      rows.push(['Sample Count', fmt(m.count)]);
      rows.push(['Sample Sum', fmt(m.sum)]);
      td.appendChild(subTable(rows));
    } else if (type === 'HISTOGRAM' || type === 'GAUGE_HISTOGRAM') {
      var b = m.buckets || {};
      var hrows = sortedNumericKeys(b).map(function (k) {
        return ['Sample values \u2264 ' + fmt(k), fmt(b[k])];
      });
      hrows.push(['Total sample Count', fmt(m.count)]);
      hrows.push(['Sample Sum', fmt(m.sum)]);
      td.appendChild(subTable(hrows));
    } else {
      td.textContent = fmt(m.value);
    }
    return td;
  }

  function renderFamilies(holder, g) {
    var frag = doc.createDocumentFragment();
    Object.keys(g)
      .filter(function (k) {
        // Families are the objects beside `labels` (not the flags, TTL and expiry strings).
        return k !== 'labels' && g[k] !== null && typeof g[k] === 'object';
      })
      .sort()
      .forEach(function (name) {
        var f = g[name];
        var d = el('details', 'fam');
        var s = el('summary');
        s.appendChild(el('span', 'fname', name));
        if (f.help) s.appendChild(el('span', 'help', f.help));
        s.appendChild(el('span', 'type', f.type));
        s.appendChild(el('span', 'meta', 'last pushed: ' + f.time_stamp));
        d.appendChild(s);
        var body = el('div', 'fam-body');
        var t = el('table', 'tbl');
        var head = el('thead');
        var hr = el('tr');
        hr.appendChild(el('th', null, 'Labels'));
        hr.appendChild(el('th', null, 'Value'));
        head.appendChild(hr);
        t.appendChild(head);
        var tb = el('tbody');
        (f.metrics || []).forEach(function (m) {
          var tr = el('tr');
          var ltd = el('td');
          Object.keys(m.labels || {})
            .sort()
            .forEach(function (ln) {
              ltd.appendChild(labelBadge(ln, m.labels[ln]));
              ltd.appendChild(doc.createTextNode(' '));
            });
          tr.appendChild(ltd);
          tr.appendChild(valueCell(f.type, m));
          tb.appendChild(tr);
        });
        t.appendChild(tb);
        body.appendChild(t);
        d.appendChild(body);
        frag.appendChild(d);
      });
    holder.textContent = '';
    holder.className = '';
    holder.appendChild(frag);
  }

  function loadLazy(panel) {
    var holder = panel.querySelector(':scope > .group-body > .lazy');
    if (!holder || holder.getAttribute('data-state')) return;
    holder.setAttribute('data-state', 'loading');
    holder.textContent = 'Loading\u2026';
    loadGroup(panel.getAttribute('data-path'))
      .then(function (g) {
        if (!g) {
          holder.textContent = 'This group no longer exists. Reload the page.';
          holder.className = 'note';
          return;
        }
        renderFamilies(holder, g);
        holder.setAttribute('data-state', 'done');
      })
      .catch(function (e) {
        holder.removeAttribute('data-state');
        holder.textContent = 'Loading the series failed: ' + e.message;
      });
  }

  // ---- Wiring ------------------------------------------------------------------------------

  doc.addEventListener('click', function (ev) {
    var t = ev.target;
    if (!(t instanceof Element)) return;
    var del = t.closest('button.del');
    if (del) {
      // The button sits in the panel's <summary>: don't toggle the panel.
      ev.preventDefault();
      ev.stopPropagation();
      var panel = del.closest('details.group');
      if (panel) deleteGroup(panel);
      return;
    }
    if (t.closest('#wipe')) {
      ev.preventDefault();
      wipe();
    } else if (t.closest('#show-more')) {
      if (big) showMore();
    } else if (t.closest('#expand-all')) {
      setAllOpen(true);
    } else if (t.closest('#collapse-all')) {
      setAllOpen(false);
    } else if (t.closest('#error')) {
      clearError();
    }
  });

  // 'toggle' does not bubble; listen in the capture phase.
  doc.addEventListener(
    'toggle',
    function (ev) {
      var p = ev.target;
      if (p && p.open && p.classList && p.classList.contains('group')) loadLazy(p);
    },
    true
  );

  function init() {
    showTab();
    initBig();
    var input = byId('filter');
    if (input) {
      input.addEventListener('input', scheduleFilter);
      if (input.value) applyFilter();
    }
  }

  if (doc.readyState === 'loading') {
    doc.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
