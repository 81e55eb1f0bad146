// ytpiped web page: local times, confirmation of actions, live figures on the overview.
"use strict";
(function () {
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (!isNaN(d)) { t.textContent = d.toLocaleString(); }
    });
  }
  function duration(s) {
    if (s === null || s === undefined) { return "unknown"; }
    s = Math.floor(s);
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600),
        m = Math.floor(s % 3600 / 60), sec = s % 60;
    function two(n) { return (n < 10 ? "0" : "") + n; }
    if (d) { return d + "d " + h + "h"; }
    if (h) { return h + "h " + two(m) + "m"; }
    return m + "m " + two(sec) + "s";
  }
  function update(st) {
    Object.keys(st.videos.by_state).forEach(function (state) {
      var cell = document.querySelector('[data-count="' + state + '"]');
      if (cell) { cell.textContent = st.videos.by_state[state]; }
    });
    var total = document.getElementById("total");
    if (total) { total.textContent = st.videos.total; }
    var eta = document.getElementById("eta");
    if (eta) { eta.textContent = duration(st.eta_seconds); }
  }
  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    document.querySelectorAll("form[data-confirm]").forEach(function (f) {
      f.addEventListener("submit", function (e) {
        if (!window.confirm(f.getAttribute("data-confirm"))) { e.preventDefault(); }
      });
    });
    var every = parseFloat(document.body.getAttribute("data-refresh") || "0");
    if (every > 0) {
      window.setInterval(function () {
        fetch("/api/status", {credentials: "same-origin"})
          .then(function (r) { return r.ok ? r.json() : null; })
          .then(function (st) { if (st) { update(st); } })
          .catch(function () {});
      }, every * 1000);
    }
  });
})();
