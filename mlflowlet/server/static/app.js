// mlflowlet UI: log follow on the run page, run selection for compare on the runs page.
(function () {
  "use strict";
  var TERMINAL = ["completed", "error", "aborted", "skipped"];

  function followLog(pre) {
    var uid = pre.dataset.uid, project = pre.dataset.project, iter = pre.dataset.iter;
    var offset = parseInt(pre.dataset.offset || "0", 10);
    var state = pre.dataset.state;
    function tick() {
      var q = "?project=" + encodeURIComponent(project) + "&offset=" + offset;
      fetch("/api/v1/logs/" + encodeURIComponent(uid) + q, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.arrayBuffer() : new ArrayBuffer(0); })
        .then(function (buf) {
          if (buf.byteLength) {
            offset += buf.byteLength;
            pre.textContent += new TextDecoder().decode(buf);
            pre.scrollTop = pre.scrollHeight;
          }
          var rq = "?project=" + encodeURIComponent(project) + "&iter=" + iter;
          return fetch("/api/v1/runs/" + encodeURIComponent(uid) + rq, { credentials: "same-origin" });
        })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (run) {
          if (run) {
            state = run.status.state;
            var badge = document.getElementById("run-state");
            if (badge) { badge.textContent = state; badge.className = "state state-" + state; }
          }
          if (TERMINAL.indexOf(state) < 0) { setTimeout(tick, 1000); }
        })
        .catch(function () { setTimeout(tick, 3000); });
    }
    if (TERMINAL.indexOf(state) < 0) { setTimeout(tick, 1000); }
  }

  function compareSelection() {
    var button = document.getElementById("compare-btn");
    if (!button) { return; }
    var boxes = document.querySelectorAll("input.pick");
    function picked() {
      return Array.prototype.filter.call(boxes, function (b) { return b.checked; })
        .map(function (b) { return b.value; });
    }
    Array.prototype.forEach.call(boxes, function (b) {
      b.addEventListener("change", function () { button.disabled = picked().length < 2; });
    });
    button.addEventListener("click", function () {
      var q = picked().map(function (u) { return "uid=" + encodeURIComponent(u); }).join("&");
      window.location.href = "/compare?" + q;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var pre = document.getElementById("log");
    if (pre) { followLog(pre); }
    compareSelection();
  });
})();
