// Incident page: per-channel delivery counts follow the sending live (GET the announcement
// every 2 s while anything is queued or sending, or until its fan-out has started).
(function () {
  'use strict';
  var EVERY = 2000;
  var WAIT_FOR_START = 60000; // a plan job normally starts within seconds of publishing
  var FAILED = ['failed', 'undelivered', 'bounced', 'dropped'];

  function watch(table) {
    var url = table.getAttribute('data-live-counts');
    var started = Date.now();
    var note = table.parentNode.parentNode.querySelector('.live-note');
    var failedAtStart = sum(read(table), FAILED);

    function tick() {
      fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (announcement) {
          if (!announcement) { return; } // signed out or gone: stop quietly
          var counts = announcement.deliveries || {};
          update(table, counts);
          if (note && sum(counts, FAILED) !== failedAtStart) {
            note.hidden = false;
          }
          var busy = sum(counts, ['queued', 'sending']) > 0;
          var nothing = sum(counts, null) === 0;
          if (busy || (nothing && Date.now() - started < WAIT_FOR_START)) {
            table.setAttribute('data-live', 'polling');
            setTimeout(tick, EVERY);
          } else {
            table.setAttribute('data-live', 'settled');
          }
        })
        .catch(function () { setTimeout(tick, EVERY * 2); });
    }
    tick();
  }

  function read(table) {
    var counts = {};
    table.querySelectorAll('tr[data-channel]').forEach(function (row) {
      var channel = counts[row.getAttribute('data-channel')] = {};
      row.querySelectorAll('td[data-state]').forEach(function (cell) {
        channel[cell.getAttribute('data-state')] = parseInt(cell.textContent, 10) || 0;
      });
    });
    return counts;
  }

  function sum(counts, states) {
    var total = 0;
    Object.keys(counts).forEach(function (channel) {
      Object.keys(counts[channel]).forEach(function (state) {
        if (!states || states.indexOf(state) !== -1) { total += counts[channel][state] || 0; }
      });
    });
    return total;
  }

  function update(table, counts) {
    Object.keys(counts).forEach(function (channel) {
      var row = table.querySelector('tr[data-channel="' + CSS.escape(channel) + '"]');
      if (!row) { return; }
      row.querySelectorAll('td[data-state]').forEach(function (cell) {
        var value = counts[channel][cell.getAttribute('data-state')] || 0;
        if (cell.textContent !== String(value)) { cell.textContent = String(value); }
      });
    });
  }

  // Confirmations (an audience that must confirm): the counts follow the answers and the
  // escalation until it is over (GET the incident every 3 s).
  function watchConfirmations(table) {
    var url = table.getAttribute('data-live-confirmations');
    var id = table.getAttribute('data-announcement');

    function tick() {
      fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (incident) {
          if (!incident) { return; } // signed out or gone: stop quietly
          var found = (incident.confirmations || []).filter(function (c) {
            return c.announcement_id === id;
          })[0];
          if (!found) { return; }
          Object.keys(found.counts).forEach(function (name) {
            var cell = table.querySelector('td[data-count="' + CSS.escape(name) + '"]');
            var value = String(found.counts[name]);
            if (cell && cell.textContent !== value) { cell.textContent = value; }
          });
          if (found.finished) {
            table.setAttribute('data-live', 'settled');
          } else {
            table.setAttribute('data-live', 'polling');
            setTimeout(tick, CONFIRM_EVERY);
          }
        })
        .catch(function () { setTimeout(tick, CONFIRM_EVERY * 2); });
    }
    tick();
  }

  var CONFIRM_EVERY = 3000;
  document.querySelectorAll('table[data-live-counts]').forEach(watch);
  document.querySelectorAll('table[data-live-confirmations]').forEach(watchConfirmations);
}());
