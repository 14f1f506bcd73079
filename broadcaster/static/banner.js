/* Crisis banner embed: <script src="https://status.example/banner.js" data-audience="consumers"
 * data-lang="nl" async></script>. No dependencies, no globals; safe under a strict CSP (no inline
 * styles or scripts, no HTML parsing: every string from the server becomes a text node). */
(function () {
  'use strict';

  // currentScript is only set while the script first runs (also with async/defer).
  var script = document.currentScript || (function () {
    var all = document.querySelectorAll('script[src]');
    for (var i = all.length - 1; i >= 0; i--) {
      if (/\/banner\.js([?#].*)?$/.test(all[i].src)) return all[i];
    }
    return null;
  })();
  if (!script || !window.fetch) return;

  var COLOURS = { critical: '#b00020', major: '#c0392b', minor: '#9a6700', info: '#2e6da4' };
  var ALL_CLEAR = '#2e7d32';
  var MORE = { en: 'More information', nl: 'Meer informatie', da: 'Mere information',
               sv: 'Mer information' };
  var DISMISS = { en: 'Dismiss', nl: 'Sluiten', da: 'Luk', sv: 'Stäng' };
  var STORE = 'broadcaster:dismissed';
  var data = script.dataset;

  // The API lives next to this script, so the embed works from any origin (and any path prefix).
  var url = new URL('banner.json', script.src);
  if (data.audience) url.searchParams.set('audience', data.audience);
  if (data.lang) url.searchParams.set('lang', data.lang);

  var container = null;
  var shown = '';  // what is on screen now: re-render (and re-announce) only on a change
  var every = 30;  // seconds between polls, as the server last asked

  // Dismissed update keys; storage may be blocked (privacy modes, sandboxed iframes).
  function dismissed() {
    try { return JSON.parse(localStorage.getItem(STORE)) || []; } catch (e) { return []; }
  }
  function dismiss(key) {
    var keys = dismissed().filter(function (k) { return k !== key; }).concat([key]);
    try { localStorage.setItem(STORE, JSON.stringify(keys.slice(-50))); } catch (e) { /* ok */ }
  }

  function safeLink(href) {
    try {
      var link = new URL(href, url);
      return link.protocol === 'http:' || link.protocol === 'https:' ? link.href : null;
    } catch (e) { return null; }
  }

  function el(tag, styles, text) {
    var node = document.createElement(tag);
    for (var name in styles) node.style[name] = styles[name];  // CSSOM: allowed by style-src
    if (text) node.appendChild(document.createTextNode(text));
    return node;
  }

  function link(text, href) {
    var a = el('a', { color: '#fff', textDecoration: 'underline', whiteSpace: 'nowrap' }, text);
    a.href = href;
    return a;
  }

  function banner(item, lang) {
    var critical = item.severity === 'critical' && !item.all_clear;
    var box = el('div', {
      display: 'flex', alignItems: 'center', gap: '1em', padding: '0.6em 1em', margin: '0',
      background: item.all_clear ? ALL_CLEAR : (COLOURS[item.severity] || COLOURS.info),
      color: '#fff', font: '15px/1.4 system-ui, sans-serif'
    });
    box.setAttribute('role', critical ? 'alert' : 'status');
    box.setAttribute('data-key', String(item.key));
    box.setAttribute('data-severity', String(item.severity));
    var line = el('span', { flex: '1' });
    if (item.correction) {  // a correction says which update it corrects
      line.appendChild(el('strong', {}, String(item.correction)));
      line.appendChild(document.createTextNode(' '));
    }
    line.appendChild(document.createTextNode(String(item.text)));
    box.appendChild(line);
    var more = item.more && safeLink(item.more.link);
    if (more) {  // the other open incidents: the status page lists them
      box.appendChild(link(String(item.more.label), more))
        .setAttribute('data-more', String(item.more.count));
    }
    var href = safeLink(item.link);  // javascript:, data: and the like are dropped
    if (href) box.appendChild(link(data.moreLabel || MORE[lang] || MORE.en, href));
    var close = el('button', {
      background: 'transparent', color: '#fff', border: '1px solid rgba(255,255,255,.7)',
      borderRadius: '3px', cursor: 'pointer', font: 'inherit', padding: '0 .5em'
    }, '\u00d7');
    close.type = 'button';
    close.setAttribute('aria-label', DISMISS[lang] || DISMISS.en);
    close.addEventListener('click', function () {
      dismiss(item.key);
      if (box.parentNode) box.parentNode.removeChild(box);
      if (container && !container.firstChild) remove();
    });
    box.appendChild(close);
    return box;
  }

  function remove() {
    if (container && container.parentNode) container.parentNode.removeChild(container);
    container = null;
  }

  function render(body) {
    var hidden = dismissed();
    // One banner at most: the server sends the most pressing; a dismissed one stays away.
    var items = (body.banners || []).slice(0, 1)
      .filter(function (b) { return hidden.indexOf(b.key) < 0; });
    var state = JSON.stringify(items.map(function (b) {
      return [b.key, b.text, b.link, b.correction, b.more && b.more.count];
    }));
    if (state === shown && (container || !items.length)) return;
    shown = state;
    if (!items.length) return remove();
    if (!container) {
      container = el('div', { margin: '0', padding: '0' });
      container.setAttribute('data-broadcaster-banner', '');
      var target = data.target && document.getElementById(data.target);
      if (target) target.appendChild(container);
      else document.body.insertBefore(container, document.body.firstChild);
    }
    while (container.firstChild) container.removeChild(container.firstChild);
    items.forEach(function (item) { container.appendChild(banner(item, body.locale)); });
  }

  function poll() {
    // no-cache: revalidate with If-None-Match each time (cheap 304s), never show a stale crisis.
    fetch(url.href, { cache: 'no-cache', credentials: 'omit' })
      .then(function (response) {
        if (!response.ok) throw new Error('banner.json: HTTP ' + response.status);
        return response.json();
      })
      .then(function (body) {
        every = Math.max(10, Number(body.poll) || 30);
        render(body);
      })
      .catch(function () { /* keep what is shown; try again later */ })
      .then(function () {
        var override = Number(data.poll);  // data-poll: for tests and demos only
        setTimeout(poll, 1000 * (override > 0 ? override : every));
      });
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', poll);
  else poll();
})();
