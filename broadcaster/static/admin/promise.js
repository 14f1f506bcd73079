// Compose page: a resolution promises no next update, so choosing "resolved" empties the
// "Next update by" field (and another status brings back what it held).
(function () {
  'use strict';
  var form = document.getElementById('compose');
  if (!form || !form.elements.next_update_at) { return; }
  var field = form.elements.next_update_at;
  var kept = field.value;

  function follow() {
    var resolved = form.elements.status.value === 'resolved';
    if (resolved && !field.disabled) {
      kept = field.value;
      field.value = '';
    } else if (!resolved && field.disabled) {
      field.value = kept;
    }
    field.disabled = resolved; // a disabled field is not sent
  }

  form.elements.status.addEventListener('change', follow);
  follow();
}());
