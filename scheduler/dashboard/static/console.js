// renewkit dashboard: live run progress. Every element with data-progress-url polls its
// JSON endpoint while the job runs (or until the run named by data-run-id has ended) and
// updates its <progress> bar and text without reloading the page.
(function () {
  "use strict";
  function watch(box) {
    var bar = box.querySelector("progress");
    var text = box.querySelector(".progress-text");
    var want = box.getAttribute("data-run-id") || "";
    var deadline = Date.now() + 10 * 60 * 1000;
    function show(p, running) {
      var pct = p ? p.percent : 0;
      bar.value = pct;
      bar.setAttribute("value", String(pct));
      bar.setAttribute("aria-valuenow", String(pct));
      box.setAttribute("data-percent", String(pct));
      box.setAttribute("data-running", running ? "true" : "false");
      if (p) {
        box.setAttribute("data-shown-run", p.run_id);
        var est = Math.max(p.total_estimate, p.claimed);
        text.textContent = pct + "% · " + p.done + " of " + est + " done · " + p.failed + " failed · " + p.status;
      }
    }
    function poll() {
      fetch(box.getAttribute("data-progress-url"), { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(function (j) {
          var p = j.progress || null;
          show(p, j.running);
          var waiting = want !== "" && (!p || p.run_id !== want);
          if ((j.running || waiting || (p && p.running)) && Date.now() < deadline) {
            setTimeout(poll, 400);
          }
        })
        .catch(function () { if (Date.now() < deadline) { setTimeout(poll, 2000); } });
    }
    poll();
  }
  var boxes = document.querySelectorAll("[data-progress-url]");
  for (var i = 0; i < boxes.length; i++) { watch(boxes[i]); }
})();
