// mlflowlet UI, the page's only script (the CSP allows no inline script): a log that follows a
// running run, run selection for compare, copy buttons, chart hover readouts, and the live
// pipeline page (polls every 2 s until the run ends).
(function () {
  "use strict";
  var TERMINAL = ["completed", "error", "aborted", "skipped"];

  function get(url) {
    return fetch(url, { credentials: "same-origin" });
  }

  function followLog(pre) {
    var uid = pre.dataset.uid, project = pre.dataset.project, iter = pre.dataset.iter;
    var offset = parseInt(pre.dataset.offset || "0", 10);
    var state = pre.dataset.state;
    var q = "?project=" + encodeURIComponent(project);
    function fetchLog() {
      return get("/api/v1/logs/" + encodeURIComponent(uid) + q + "&offset=" + offset)
        .then(function (r) { return r.ok ? r.arrayBuffer() : new ArrayBuffer(0); })
        .then(function (buf) {
          if (buf.byteLength) {
            offset += buf.byteLength;
            pre.textContent += new TextDecoder().decode(buf);
            pre.scrollTop = pre.scrollHeight;
          }
        });
    }
    function tick() {
      fetchLog()
        .then(function () {
          return get("/api/v1/runs/" + encodeURIComponent(uid) + q + "&iter=" + iter);
        })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (run) {
          if (run) {
            state = run.status.state;
            var badge = document.getElementById("run-state");
            if (badge) { badge.textContent = state; badge.className = "state state-" + state; }
          }
          if (TERMINAL.indexOf(state) < 0) {
            setTimeout(tick, 1000);
          } else {
            fetchLog();  // the last lines were written with the final state
          }
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

  function copyButtons() {
    document.addEventListener("click", function (ev) {
      var button = ev.target.closest ? ev.target.closest("button.copy") : null;
      if (!button) { return; }
      var text = button.dataset.copy || "";
      var done = function () {
        button.textContent = "copied";
        setTimeout(function () { button.textContent = "copy"; }, 1200);
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done);
      } else {  // plain http: the older way
        var area = document.createElement("textarea");
        area.value = text;
        document.body.appendChild(area);
        area.select();
        document.execCommand("copy");
        document.body.removeChild(area);
        done();
      }
    });
  }

  // charts ---------------------------------------------------------------------------------------
  var tip = null;

  function tooltip() {
    if (!tip) {
      tip = document.createElement("div");
      tip.className = "chart-tip";
      tip.hidden = true;
      document.body.appendChild(tip);
    }
    return tip;
  }

  function nearest(points, x) {
    var lo = 0, hi = points.length - 1;
    while (hi - lo > 1) {
      var mid = (lo + hi) >> 1;
      if (points[mid][0] < x) { lo = mid; } else { hi = mid; }
    }
    return Math.abs(points[lo][0] - x) <= Math.abs(points[hi][0] - x) ? points[lo] : points[hi];
  }

  function hoverChart(svg) {
    var x0 = parseFloat(svg.dataset.x0), x1 = parseFloat(svg.dataset.x1);
    var px0 = parseFloat(svg.dataset.px0), px1 = parseFloat(svg.dataset.px1);
    var groups = svg.querySelectorAll("g.series");
    var series = null;
    var guide = document.createElementNS("http://www.w3.org/2000/svg", "line");
    guide.setAttribute("class", "guide");
    guide.setAttribute("y1", "20");
    guide.setAttribute("y2", "218");  // the plot's bottom (_charts.py: H - BOTTOM)
    svg.appendChild(guide);
    svg.addEventListener("mousemove", function (ev) {
      if (!series) {
        series = Array.prototype.map.call(groups, function (g) {
          return { name: g.dataset.name, color: g.dataset.color, points: JSON.parse(g.dataset.points) };
        });
      }
      var pt = svg.createSVGPoint();
      pt.x = ev.clientX; pt.y = ev.clientY;
      var local = pt.matrixTransform(svg.getScreenCTM().inverse());
      var step = x0 + (local.x - px0) / (px1 - px0) * (x1 - x0);
      var lines = [];
      var at = null;
      series.forEach(function (s) {
        if (!s.points.length) { return; }
        var p = nearest(s.points, step);
        at = at === null ? p[0] : at;
        lines.push(s.name + ": " + p[1]);
      });
      if (at === null) { return; }
      var gx = px0 + (at - x0) / (x1 - x0) * (px1 - px0);
      guide.setAttribute("x1", gx); guide.setAttribute("x2", gx);
      guide.classList.add("on");
      var box = tooltip();
      box.textContent = "step " + at + "\n" + lines.join("\n");
      box.hidden = false;
      box.style.left = (ev.pageX + 14) + "px";
      box.style.top = (ev.pageY + 10) + "px";
    });
    svg.addEventListener("mouseleave", function () {
      tooltip().hidden = true;
      guide.classList.remove("on");
    });
  }

  // live pipeline --------------------------------------------------------------------------------
  function livePipeline(dag) {
    var uid = dag.dataset.uid, project = dag.dataset.project;
    function fmt(d) { return d === null || d === undefined ? "" : d.toFixed(2) + "s"; }
    function tick() {
      get("/pipelines/" + encodeURIComponent(uid) + "/live.json?project=" + encodeURIComponent(project))
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (live) {
          if (!live) { setTimeout(tick, 4000); return; }
          Object.keys(live.nodes).forEach(function (key) {
            var node = live.nodes[key];
            var sel = '[data-key="' + (window.CSS && CSS.escape ? CSS.escape(key) : key) + '"]';
            var box = dag.querySelector(".step" + sel);
            if (box) {
              box.setAttribute("data-state", node.state);
              var label = box.querySelector(".step-state");
              if (label) { label.textContent = node.state + (node.duration === null ? "" : " " + node.duration.toFixed(1) + "s"); }
            }
            var row = document.querySelector("#steps tr" + sel);
            if (row) {
              var badge = row.querySelector(".state");
              badge.textContent = node.state; badge.className = "state state-" + node.state;
              row.querySelector(".duration").textContent = fmt(node.duration);
            }
          });
          var head = document.getElementById("pipeline-state");
          if (head) { head.textContent = live.state; head.className = "state state-" + live.state; }
          dag.dataset.state = live.state;
          if (live.terminal) {
            var note = document.getElementById("live-note");
            if (note) { note.textContent = "finished"; }
          } else {
            setTimeout(tick, 2000);
          }
        })
        .catch(function () { setTimeout(tick, 4000); });
    }
    if (TERMINAL.indexOf(dag.dataset.state) < 0) { setTimeout(tick, 2000); }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var pre = document.getElementById("log");
    if (pre) { followLog(pre); }
    compareSelection();
    copyButtons();
    Array.prototype.forEach.call(document.querySelectorAll("svg.metric"), hoverChart);
    var dag = document.getElementById("dag");
    if (dag) { livePipeline(dag); }
  });
})();
