// Compose page, "Next update by": a resolution promises no next update, so choosing
// "resolved" empties the field (another status brings back what it held). For the live
// preview, the time — a wall-clock time in the plan's zone (data-zone) — is also kept as
// ISO 8601 UTC in data-iso; on submit the server reads the field itself.
(function () {
  'use strict';
  var form = document.getElementById('compose');
  if (!form || !form.elements.next_update_at) { return; }
  var field = form.elements.next_update_at;
  var zone = field.getAttribute('data-zone') || 'UTC';
  var kept = field.value;

  // Milliseconds the zone is ahead of UTC at the instant utcMs.
  function offsetAt(utcMs) {
    var parts = {};
    new Intl.DateTimeFormat('en-US', {
      timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit'
    }).formatToParts(new Date(utcMs)).forEach(function (p) { parts[p.type] = p.value; });
    var wall = Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour % 24,
      +parts.minute, +parts.second);
    return wall - utcMs;
  }

  function iso(value) {
    var m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})$/.exec(value);
    if (!m) { return ''; }
    var wall = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]);
    var utc = wall - offsetAt(wall - offsetAt(wall)); // twice: the offset may change nearby
    return isNaN(utc) ? '' : new Date(utc).toISOString();
  }

  function note() {
    var value = field.disabled ? '' : iso(field.value);
    if (value) { field.setAttribute('data-iso', value); } else { field.removeAttribute('data-iso'); }
  }

  function follow() {
    var resolved = form.elements.status.value === 'resolved';
    if (resolved && !field.disabled) {
      kept = field.value;
      field.value = '';
    } else if (!resolved && field.disabled) {
      field.value = kept;
    }
    field.disabled = resolved; // a disabled field is not sent
    note();
  }

  form.elements.status.addEventListener('change', follow);
  field.addEventListener('input', note);
  field.addEventListener('change', note);
  follow();
}());
