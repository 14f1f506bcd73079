// Now page: each promised update's countdown, rendered by the server, kept current here
// with the same words (rendering/countdown.py); once the time passes it reads "overdue".
(function () {
  'use strict';

  function remaining(deadline, now) {
    var seconds = (deadline - now) / 1000;
    if (seconds > 0 && seconds < 60) { return 'in less than a minute'; }
    var minutes = seconds > 0 ? Math.ceil(seconds / 60) : Math.floor(-seconds / 60);
    if (seconds <= 0 && minutes === 0) { return 'overdue'; }
    var text = minutes >= 60 ? Math.floor(minutes / 60) + ' h ' + (minutes % 60) + ' min' : minutes + ' min';
    return seconds > 0 ? 'in ' + text : text + ' overdue';
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll('time.countdown').forEach(function (node) {
      var deadline = Date.parse(node.getAttribute('datetime'));
      if (isNaN(deadline)) { return; }
      node.textContent = remaining(deadline, now);
      var late = deadline <= now;
      node.classList.toggle('overdue', late);
      var holder = node.closest('.promise');
      if (holder) { holder.classList.toggle('overdue', late); }
    });
  }

  tick();
  setInterval(tick, 5000);
}());
