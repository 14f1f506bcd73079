// Compose page: live preview through POST /api/v1/preview, and channel defaults per severity.
// Announcement text is only ever put on the page with textContent, never parsed as HTML.
(function () {
  'use strict';
  var form = document.getElementById('compose');
  if (!form) { return; }
  var token = document.querySelector('meta[name="csrf-token"]').content;
  var previewUrl = form.getAttribute('data-preview-url');
  var defaults = JSON.parse(form.getAttribute('data-channel-defaults') || '{}');
  var box = document.getElementById('preview');
  var statusLine = document.getElementById('preview-status');
  var errorList = document.getElementById('preview-errors');
  var recipients = document.getElementById('preview-recipients');
  var surfaces = document.getElementById('preview-surfaces');
  var warnings = document.getElementById('preview-warnings');
  var renderings = document.getElementById('preview-renderings');
  var timer = null;
  var asked = 0;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function value(name) {
    var field = form.elements[name];
    return field ? field.value.trim() : '';
  }

  function checked(name) {
    var boxes = form.querySelectorAll('input[name="' + name + '"]:checked');
    return Array.prototype.map.call(boxes, function (b) { return b.value; });
  }

  function payload() {
    var data = {
      title: value('title'), body: value('body'), severity: value('severity'),
      status: value('status'), audiences: checked('audiences'), channels: checked('channels')
    };
    var translations = {};
    form.querySelectorAll('[data-locale]').forEach(function (part) {
      var locale = part.getAttribute('data-locale');
      var title = value('tr_' + locale + '_title');
      var body = value('tr_' + locale + '_body');
      if (title || body) { translations[locale] = { title: title, body: body }; }
    });
    data.translations = translations;
    ['incident_id', 'corrects'].forEach(function (name) {
      if (value(name)) { data[name] = value(name); }
    });
    // "Next update by" in ISO 8601, as promise.js keeps it (empty or resolved: none).
    var promise = form.elements.next_update_at;
    if (promise && !promise.disabled && promise.getAttribute('data-iso')) {
      data.next_update_at = promise.getAttribute('data-iso');
    }
    return data;
  }

  function clear(node) { while (node.firstChild) { node.removeChild(node.firstChild); } }

  function measures(channel, m) {
    var line = el('p', 'measures');
    if (channel === 'sms') {
      var segments = el('strong', 'segments', m.segments + ' SMS segment' + (m.segments === 1 ? '' : 's'));
      segments.setAttribute('data-segments', m.segments);
      line.appendChild(segments);
      line.appendChild(document.createTextNode(
        ' · ' + m.encoding + ' · ' + m.chars + ' characters · at most ' + m.max_segments));
    } else if (channel === 'email') {
      line.textContent = 'Subject ' + m.subject_length + ' of ' + m.subject_limit + ' characters';
    } else if (channel === 'voice') {
      line.textContent = m.length + ' of ' + m.limit + ' characters · read twice: about ' +
        m.seconds + ' s before the keys';
    } else if (m.limit) {
      line.textContent = m.length + ' of ' + m.limit + ' characters';
    }
    if (m.cut) { line.appendChild(el('span', 'warning', ' · cut to fit')); }
    return line;
  }

  function rendering(item, audience) {
    var card = el('article', 'rendering');
    card.setAttribute('data-channel', item.channel);
    card.setAttribute('data-audience', audience);
    card.setAttribute('data-locale', item.locale);
    var heading = audience + ' · ' + item.locale;
    if (item.language !== item.locale) { heading += ' (gets ' + item.language + ')'; }
    card.appendChild(el('h4', null, heading));
    card.appendChild(measures(item.channel, item.measures || {}));
    var content = item.content || {};
    if (content.subject) { card.appendChild(el('p', 'subject', content.subject)); }
    card.appendChild(el('pre', 'message', content.text || ''));
    if (item.channel === 'voice') {  // what follows the message, and what a machine hears
      card.appendChild(el('p', 'prompt', content.prompt || ''));
      card.appendChild(el('p', 'short', 'Answering machine: ' + (content.short || '')));
    }
    return card;
  }

  function group(title, items, audienceOf) {
    var part = el('details', 'channel');
    part.open = true;
    part.appendChild(el('summary', null, title + ' (' + items.length + ')'));
    items.forEach(function (item) { part.appendChild(rendering(item, audienceOf(item))); });
    renderings.appendChild(part);
  }

  // Which public surfaces and webhook targets the draft reaches: an internal one none.
  function showSurfaces(result) {
    var items = result.surfaces || [];
    if (!items.length) { return; }
    surfaces.setAttribute('data-visibility', result.visibility || '');
    surfaces.appendChild(el('h3', null, result.visibility === 'internal'
      ? 'Internal: reaches no public surface' : 'Reaches'));
    var list = el('ul', 'plain surfaces');
    items.forEach(function (s) {
      var line = el('li', s.reaches ? 'reaches' : 'not-reached',
        (s.reaches ? '✓ ' : '✗ ') + s.label + (s.public ? '' : ' (internal)') + ' — ' + s.why);
      line.setAttribute('data-surface', s.surface);
      line.setAttribute('data-reaches', s.reaches ? 'yes' : 'no');
      list.appendChild(line);
    });
    surfaces.appendChild(list);
  }

  function show(result) {
    [errorList, recipients, surfaces, warnings, renderings].forEach(clear);
    var counts = result.recipients || {};
    var channels = Object.keys(counts);
    if (channels.length) {
      var table = el('table', 'recipients');
      var head = el('tr');
      ['Channel', 'Recipients', 'Skipped (opted out)'].forEach(function (t) { head.appendChild(el('th', null, t)); });
      table.appendChild(head);
      channels.forEach(function (channel) {
        var row = el('tr');
        row.setAttribute('data-channel', channel);
        row.appendChild(el('td', null, channel));
        row.appendChild(el('td', 'recipients-count', counts[channel].recipients));
        row.appendChild(el('td', null, counts[channel].skipped));
        table.appendChild(row);
      });
      recipients.appendChild(table);
    }
    showSurfaces(result);
    (result.warnings || []).forEach(function (w) { warnings.appendChild(el('li', 'warning', w)); });
    var byChannel = {};
    (result.renderings || []).forEach(function (r) {
      (byChannel[r.channel] = byChannel[r.channel] || []).push(r);
    });
    // SMS first: its segments are what costs money and what gets cut.
    Object.keys(byChannel).sort(function (a, b) {
      return (b === 'sms') - (a === 'sms') || (a < b ? -1 : a > b ? 1 : 0);
    }).forEach(function (channel) {
      group(channel, byChannel[channel], function (r) { return r.audience; });
    });
    var byPublic = {};
    (result.public || []).forEach(function (r) {
      (byPublic[r.channel] = byPublic[r.channel] || []).push(r);
    });
    Object.keys(byPublic).forEach(function (channel) {
      group(channel + ' (public)', byPublic[channel], function () { return 'everyone'; });
    });
    statusLine.textContent = 'Preview of what is written now — nothing is saved or sent until you submit.';
    box.setAttribute('data-state', 'ready');
  }

  function refused(body) {
    clear(errorList);
    var errors = (body && body.errors) || {};
    Object.keys(errors).forEach(function (field) {
      errorList.appendChild(el('li', 'error', field + ': ' + JSON.stringify(errors[field])));
    });
    statusLine.textContent = (body && body.message) || 'The preview is not available.';
    box.setAttribute('data-state', 'invalid');
  }

  function refresh() {
    var data = payload();
    if (!data.title || !data.body || !data.audiences.length) {
      box.setAttribute('data-state', 'waiting');
      return;
    }
    var mine = ++asked;
    box.setAttribute('aria-busy', 'true');
    fetch(previewUrl, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'Accept': 'application/json', 'X-CSRFToken': token },
      body: JSON.stringify(data)
    }).then(function (response) {
      return response.json().then(function (body) { return { ok: response.ok, body: body }; });
    }).then(function (answer) {
      if (mine !== asked) { return; } // a newer preview is on its way
      box.setAttribute('aria-busy', 'false');
      if (answer.ok) { show(answer.body); } else { refused(answer.body); }
    }).catch(function () {
      if (mine !== asked) { return; }
      box.setAttribute('aria-busy', 'false');
      statusLine.textContent = 'The preview could not be loaded; check the connection.';
      box.setAttribute('data-state', 'offline');
    });
  }

  function soon() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 350);
  }

  // A new severity brings the plan's channels for it; the person may then change them.
  form.elements.severity.addEventListener('change', function () {
    var wanted = defaults[form.elements.severity.value] || [];
    form.querySelectorAll('input[name="channels"]').forEach(function (b) {
      b.checked = wanted.indexOf(b.value) !== -1;
    });
  });
  form.addEventListener('input', soon);
  form.addEventListener('change', soon);
  refresh();
}());
