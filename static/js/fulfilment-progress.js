// The request page's search panel, kept current while a search runs: polls the staff API (the
// session's own cookie; a GET, so no CSRF token) and reloads the page when the state changes, so
// the buttons match it. Without JavaScript the page shows the same after a reload.
(function () {
  "use strict";
  var panel = document.getElementById("fulfilment");
  if (!panel || panel.getAttribute("data-state") !== "running") { return; }
  var url = panel.getAttribute("data-status-url");
  var labels = {pending: "Queued", running: "Searching", done: "Done", failed: "Failed",
    waiting_manual: "Waiting for the owner", skipped: "Skipped"};
  function text(el, value) { if (el) { el.textContent = String(value); } }
  function update(body) {
    var finished = 0;
    body.systems.forEach(function (s) {
      if (s.status === "done" || s.status === "failed" || s.status === "skipped") { finished += 1; }
      var row = panel.querySelector('tr[data-system="' + CSS.escape(s.system) + '"]');
      if (!row) { return; }
      text(row.querySelector('[data-fulfilment="status"]'), labels[s.status] || s.status);
      text(row.querySelector('[data-fulfilment="records"]'), s.records);
    });
    var bar = panel.querySelector('[data-fulfilment="bar"]');
    if (bar) { bar.value = finished; bar.max = body.systems.length; }
    text(panel.querySelector('[data-fulfilment="count"]'), finished + " of " + body.systems.length);
    text(panel.querySelector('[data-fulfilment="state"]'), body.state);
    if (body.state !== "running" || body.package) { window.location.reload(); return; }
    window.setTimeout(poll, 1500);
  }
  function poll() {
    fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(update)
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  window.setTimeout(poll, 1000);
}());
