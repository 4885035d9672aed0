/* The report and dashboard page: draws the runs' data (kernel/report/page.py) with plotly.js.
 * The report calls KernelPage.start(data, {}); the dashboard adds {live: true, stateUrl, token}
 * and polls stateUrl, redrawing with Plotly.react so zoom and selections survive an update. */
(function () {
  "use strict";

  var NOT_METRICS = { epoch: 1, step: 1, time: 1, elapsed_s: 1 };
  var PLOT_CONFIG = { displaylogo: false, responsive: true };
  var S = { data: null, options: {}, group: null, filter: "all", metric: null, sortKey: null, sortDir: 1,
            etag: null, datasetKey: null, confusionRun: null, sectionsKey: null, nonce: "" };

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k === "text") node.textContent = v;
      else if (k === "className") node.className = v;
      else if (k === "onclick") node.addEventListener("click", v);
      else if (k === "style") node.setAttribute("style", v);
      else node.setAttribute(k, v === true ? "" : v);
    });
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) return;
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }

  function isNum(v) { return typeof v === "number" && isFinite(v); }

  // plotly reads its strings as a little HTML (links included) and hover templates as templates:
  // text from run files (labels, parameter and class names) goes in as plain text
  function txt(v) {
    return String(v === null || v === undefined ? "" : v).replace(/&/g, "&amp;").replace(/</g, "&lt;")
      .replace(/>/g, "&gt;").replace(/%\{/g, "%&#123;");
  }

  function fmt(v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "boolean") return v ? "true" : "false";
    if (!isNum(v)) return String(v);
    if (Number.isInteger(v)) return Math.abs(v) >= 1e6 ? v.toExponential(2) : String(v);
    var a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(3);
    return String(Number(v.toPrecision(4)));
  }

  function fmtCount(v) {
    if (!isNum(v)) return "";
    if (v >= 1e6) return (v / 1e6).toFixed(2) + " M";
    if (v >= 1e3) return (v / 1e3).toFixed(1) + " k";
    return String(v);
  }

  function fmtDuration(s) {
    if (!isNum(s)) return "";
    if (s < 60) return s.toFixed(1) + " s";
    var m = Math.floor(s / 60), h = Math.floor(m / 60);
    return h ? h + " h " + (m % 60) + " min" : m + " min " + Math.round(s % 60) + " s";
  }

  // -- what is selected ------------------------------------------------------------------------
  function runsById() {
    var out = {};
    S.data.runs.forEach(function (r) { out[r.id] = r; });
    return out;
  }

  function currentGroup() {
    var groups = S.data.groups;
    for (var i = 0; i < groups.length; i++) if (groups[i].key === S.group) return groups[i];
    return groups[0] || null;
  }

  function visibleRuns() {
    var g = currentGroup(), byId = runsById();
    if (!g) return [];
    return g.runs.map(function (id) { return byId[id]; }).filter(function (r) {
      if (!r) return false;
      if (S.filter.indexOf("workflow:") === 0) return r.workflow === S.filter.slice(9);
      if (S.filter.indexOf("tag:") === 0) return r.tags.indexOf(S.filter.slice(4)) >= 0;
      return true;
    });
  }

  function metricKeys(runs) {
    var keys = [];
    runs.forEach(function (r) {
      Object.keys(S.data.curves[r.id] || {}).forEach(function (k) {
        if (!NOT_METRICS[k] && keys.indexOf(k) < 0) keys.push(k);
      });
    });
    return keys.sort(function (a, b) {
      var rank = function (k) { return k.indexOf("valid/") === 0 ? 0 : k.indexOf("train/") === 0 ? 1 : 2; };
      return rank(a) - rank(b) || a.localeCompare(b);
    });
  }

  function companion(metric) {
    if (!metric) return null;
    if (metric.indexOf("valid/") === 0) return "train/" + metric.slice(6);
    if (metric.indexOf("train/") === 0) return "valid/" + metric.slice(6);
    return null;
  }

  // which way a metric is better: the run's own mode for its monitor, else the kernel's one rule,
  // sent with the data (kernel/metric_mode.py): the page keeps no word list of its own
  function modeFor(metric, run) {
    if (run && run.monitor === metric && (run.mode === "min" || run.mode === "max")) return run.mode;
    return (S.data.modes || {})[metric] === "min" ? "min" : "max";
  }

  function column(run, key) { return (S.data.curves[run.id] || {})[key] || []; }

  function bestOf(run, metric) {
    var ys = column(run, metric), xs = column(run, "epoch"), best = null, epoch = null;
    var low = modeFor(metric, run) === "min";
    for (var i = 0; i < ys.length; i++) {
      if (!isNum(ys[i])) continue;
      if (best === null || (low ? ys[i] < best : ys[i] > best)) { best = ys[i]; epoch = xs[i]; }
    }
    if (best === null && run.best && isNum(run.best[metric])) { best = run.best[metric]; epoch = run.best.epoch; }
    return { value: best, epoch: epoch };
  }

  function finalOf(run, metric) {
    var ys = column(run, metric);
    for (var i = ys.length - 1; i >= 0; i--) if (isNum(ys[i])) return ys[i];
    return run.final && isNum(run.final[metric]) ? run.final[metric] : null;
  }

  function varyingParams(runs) {
    // a queued run's parameters are not filled in from the data yet: they differ by absence, not by choice
    var started = runs.filter(function (r) { return r.status !== "queued"; });
    if (started.length) runs = started;
    var keys = [];
    runs.forEach(function (r) { Object.keys(r.params).forEach(function (k) { if (keys.indexOf(k) < 0) keys.push(k); }); });
    return keys.filter(function (k) {
      var seen = {};
      runs.forEach(function (r) { seen[JSON.stringify(k in r.params ? r.params[k] : null)] = 1; });
      return Object.keys(seen).length > 1;
    });
  }

  // -- controls --------------------------------------------------------------------------------
  function fillSelect(select, options, current) {
    var values = options.map(function (o) { return o[0]; });
    var value = values.indexOf(current) >= 0 ? current : (values[0] || "");
    var signature = JSON.stringify(options);
    if (select.getAttribute("data-options") !== signature) {
      select.textContent = "";
      options.forEach(function (o) { select.appendChild(el("option", { value: o[0], text: o[1] })); });
      select.setAttribute("data-options", signature);
    }
    select.value = value;
    return value;
  }

  function renderControls() {
    var groups = S.data.groups.map(function (g) {
      var label = "dataset " + String(g.fingerprint).slice(0, 12) + " \u2014 " + (g.workflows.join(", ") || "?") +
                  " (" + g.runs.length + " run" + (g.runs.length === 1 ? "" : "s") + ")";
      return [g.key, label];
    });
    S.group = fillSelect($("group"), groups, S.group);
    var g = currentGroup(), byId = runsById(), filters = [["all", "all runs"]];
    if (g) {
      var workflows = [], tags = [];
      g.runs.forEach(function (id) {
        var r = byId[id];
        if (!r) return;
        if (workflows.indexOf(r.workflow) < 0) workflows.push(r.workflow);
        r.tags.forEach(function (t) { if (tags.indexOf(t) < 0) tags.push(t); });
      });
      if (workflows.length > 1) workflows.sort().forEach(function (w) { filters.push(["workflow:" + w, "workflow " + w]); });
      tags.sort().forEach(function (t) { filters.push(["tag:" + t, "tag " + t]); });
    }
    S.filter = fillSelect($("filter"), filters, S.filter);
    var keys = metricKeys(visibleRuns());
    var preferred = S.metric || S.data.metric || (g && g.metric);
    S.metric = fillSelect($("metric"), keys.map(function (k) { return [k, k]; }), preferred);
  }

  function renderSummary(runs) {
    var counts = {};
    runs.forEach(function (r) { counts[r.status] = (counts[r.status] || 0) + 1; });
    var parts = [runs.length + " run" + (runs.length === 1 ? "" : "s")];
    Object.keys(counts).sort().forEach(function (s) { parts.push(counts[s] + " " + s); });
    if (!S.data.runs.length) parts = ["no runs in the store yet: `kernel run WORKFLOW.toml` starts some"];
    parts.push(S.options.live ? "checked " + (S.checked || new Date()).toLocaleTimeString() : "generated " + S.data.generated);
    $("summary").textContent = parts.join(" \u00b7 ");
  }

  // -- curves ----------------------------------------------------------------------------------
  function renderCurves(runs) {
    var metric = S.metric, other = companion(metric), traces = [];
    runs.forEach(function (r) {
      var xs = column(r, "epoch");
      if (column(r, metric).length) {
        traces.push({ x: xs, y: column(r, metric), name: txt(r.label), legendgroup: r.id, mode: "lines+markers",
                      line: { color: r.color, width: 2 }, marker: { size: 5 }, meta: { run: r.id, role: "metric" },
                      hovertemplate: txt(r.label) + "<br>epoch %{x}<br>" + txt(metric) + " %{y}<extra></extra>" });
      }
      if (other && column(r, other).length) {
        traces.push({ x: xs, y: column(r, other), name: txt(r.label + " (" + other.split("/")[0] + ")"), legendgroup: r.id,
                      showlegend: false, mode: "lines", line: { color: r.color, width: 1.5, dash: "dash" },
                      meta: { run: r.id, role: "companion" },
                      hovertemplate: txt(r.label) + "<br>epoch %{x}<br>" + txt(other) + " %{y}<extra></extra>" });
      }
    });
    var hint = document.querySelector("#sec-curves .hint");
    hint.textContent = "solid: " + (metric || "") + (other ? ", dashed: " + other : "");
    var layout = { uirevision: S.group + "|" + S.filter + "|" + metric, margin: { t: 20, r: 20, b: 50, l: 60 },
                   xaxis: { title: { text: "epoch" }, rangemode: "tozero" }, yaxis: { title: { text: txt(metric || "") } },
                   legend: { orientation: "v" }, hovermode: "closest" };
    Plotly.react($("curves"), traces, layout, PLOT_CONFIG);
  }

  function downloadCsv(runs) {
    var keys = [];
    runs.forEach(function (r) {
      Object.keys(S.data.curves[r.id] || {}).forEach(function (k) { if (k !== "epoch" && keys.indexOf(k) < 0) keys.push(k); });
    });
    var quote = function (v) { v = v === null || v === undefined ? "" : String(v); return /[",\n]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v; };
    var lines = [["run", "model", "epoch"].concat(keys).map(quote).join(",")];
    runs.forEach(function (r) {
      var epochs = column(r, "epoch");
      for (var i = 0; i < epochs.length; i++) {
        var row = [r.id, r.label, epochs[i]].concat(keys.map(function (k) { var c = column(r, k); return c[i]; }));
        lines.push(row.map(quote).join(","));
      }
    });
    var blob = new Blob([lines.join("\n") + "\n"], { type: "text/csv" });
    var a = el("a", { href: URL.createObjectURL(blob), download: "curves.csv" });
    document.body.appendChild(a);
    a.click();
    setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  }

  // -- the table -------------------------------------------------------------------------------
  function tableColumns(runs) {
    var metric = S.metric, cols = [
      { key: "run", label: "run", pinned: true, get: function (r) { return r.label; },
        cell: function (r) { return [el("span", { className: "swatch", style: "background:" + r.color }), r.label,
                                     el("span", { className: "run-id", title: r.id, text: r.short_id || r.id })]; } },
      { key: "status", label: "status", pinned: true, get: function (r) { return r.status; },
        cell: function (r) { return [el("span", { className: "status status-" + r.status, title: r.reason || null, text: r.status })]; } }
    ];
    varyingParams(runs).forEach(function (p) {
      cols.push({ key: "param:" + p, label: p, param: true, get: function (r) { return p in r.params ? r.params[p] : null; } });
    });
    cols.push({ key: "best", label: "best " + metric, num: true, get: function (r) { return bestOf(r, metric).value; } });
    cols.push({ key: "best_epoch", label: "best epoch", num: true, get: function (r) { return bestOf(r, metric).epoch; } });
    cols.push({ key: "final", label: "final " + metric, num: true, get: function (r) { return finalOf(r, metric); } });
    // classification: what always answering the most frequent training class scores, beside the metric it matches
    if (runs.some(function (r) { return r.baseline && r.baseline.metric === metric; })) {
      cols.push({ key: "baseline", label: "majority baseline", num: true,
                  get: function (r) { return r.baseline && r.baseline.metric === metric ? r.baseline.accuracy : null; },
                  cell: function (r) { return r.baseline && r.baseline.metric === metric
                    ? [el("span", { title: "always \u201c" + r.baseline["class"] + "\u201d", text: fmt(r.baseline.accuracy) })] : []; } });
    }
    cols.push({ key: "epochs", label: "epochs", num: true, get: function (r) { return r.epochs_done; },
                cell: function (r) { return [fmt(r.epochs_done) + (isNum(r.epochs) ? " / " + r.epochs : "")]; } });
    cols.push({ key: "time", label: "time", num: true, get: function (r) { return r.duration_s; },
                cell: function (r) { return [fmtDuration(r.duration_s)]; } });
    cols.push({ key: "param_count", label: "parameters", num: true, get: function (r) { return r.param_count; },
                cell: function (r) { return [fmtCount(r.param_count)]; } });
    return cols;
  }

  function compare(a, b) {
    var an = a === null || a === undefined, bn = b === null || b === undefined;
    if (an || bn) return an && bn ? 0 : an ? 1 : -1;  // empty cells last, whichever the direction
    if (isNum(a) && isNum(b)) return (a - b) * S.sortDir;
    return String(a).localeCompare(String(b), undefined, { numeric: true }) * S.sortDir;
  }

  function renderTable(runs) {
    var cols = tableColumns(runs), table = $("runs-table");
    var sortCol = cols.filter(function (c) { return c.key === S.sortKey; })[0];
    var rows = runs.slice();
    if (sortCol) rows.sort(function (a, b) { return compare(sortCol.get(a), sortCol.get(b)); });
    var head = el("tr", {}, cols.map(function (c) {
      var cls = c.key === S.sortKey ? (S.sortDir > 0 ? "sorted-asc" : "sorted-desc") : null;
      var sort = function () {
        S.sortDir = S.sortKey === c.key ? -S.sortDir : (c.num && /best|final/.test(c.key) && modeFor(S.metric) === "max" ? -1 : 1);
        S.sortKey = c.key;
        renderTable(visibleRuns());
        var th = document.querySelector("#runs-table th[data-key='" + c.key + "']");
        if (th) th.focus();
      };
      var th = el("th", { "data-key": c.key, className: [cls, c.pinned ? "pinned" : null].filter(Boolean).join(" ") || null,
                          title: "sort by " + c.label, text: c.label, tabindex: "0",
                          "aria-sort": cls ? (S.sortDir > 0 ? "ascending" : "descending") : null, onclick: sort });
      th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); } });
      return th;
    }));
    if (S.options.token) head.appendChild(el("th", { text: "control" }));
    table.tHead.textContent = "";
    table.tHead.appendChild(head);
    var body = table.tBodies[0];
    body.textContent = "";
    rows.forEach(function (r) {
      var tr = el("tr", { "data-run": r.id }, cols.map(function (c) {
        var content = c.cell ? c.cell(r) : [fmt(c.get(r))];
        var cls = [c.num ? "num" : null, c.pinned ? "pinned" : null, c.param ? "param" : null].filter(Boolean).join(" ");
        return el("td", { "data-key": c.key, className: cls || null, title: c.param ? fmt(c.get(r)) : null }, content);
      }));
      if (S.options.token) tr.appendChild(el("td", {}, controlButtons(r)));
      body.appendChild(tr);
    });
    pinColumns(table);
  }

  // the run and its status stay in view while the other columns scroll sideways: each pinned
  // column sticks at the summed width of the pinned columns before it
  function pinColumns(table) {
    var first = table.tHead.querySelectorAll("th.pinned");
    var left = 0;
    for (var i = 0; i < first.length; i++) {
      var key = first[i].getAttribute("data-key");
      table.querySelectorAll("[data-key='" + key + "'].pinned").forEach(function (cell) { cell.style.left = left + "px"; });
      left += first[i].offsetWidth;
    }
  }

  // -- parameters against the metric -------------------------------------------------------------
  function renderParams(runs) {
    var metric = S.metric, dims = varyingParams(runs).slice(0, 8);
    var counts = runs.map(function (r) { return r.param_count; });
    if (!dims.length || counts.some(function (c) { return c !== counts[0]; })) dims.push("parameters");
    var scored = runs.filter(function (r) { return bestOf(r, metric).value !== null; });
    var traces = [], layout = { margin: { t: 30, r: 20, b: 60, l: 60 }, showlegend: false, uirevision: S.group + "|" + metric };
    var columns = Math.min(dims.length, 4), rowsCount = Math.ceil(dims.length / columns);
    layout.grid = { rows: rowsCount, columns: columns, pattern: "independent", xgap: 0.08, ygap: 0.3 };
    layout.height = Math.max(360, 300 * rowsCount);
    dims.forEach(function (d, i) {
      var value = function (r) { return d === "parameters" ? r.param_count : (d in r.params ? r.params[d] : null); };
      var xs = scored.map(value), numeric = xs.every(function (v) { return v === null || isNum(v); });
      var axis = i === 0 ? "" : String(i + 1);
      traces.push({ type: "scatter", mode: "markers", xaxis: "x" + axis, yaxis: "y" + axis,
                    x: numeric ? xs : xs.map(function (v) { return txt(fmt(v)); }),
                    y: scored.map(function (r) { return bestOf(r, metric).value; }),
                    text: scored.map(function (r) { return txt(r.label); }),
                    marker: { size: 11, color: scored.map(function (r) { return r.color; }), line: { width: 1, color: "#333" } },
                    meta: { dimension: d }, hovertemplate: "%{text}<br>" + txt(d) + " %{x}<br>" + txt(metric) + " %{y}<extra></extra>" });
      var positive = numeric && xs.filter(isNum).length > 1 && xs.filter(isNum).every(function (v) { return v > 0; });
      var spread = positive ? Math.max.apply(null, xs.filter(isNum)) / Math.min.apply(null, xs.filter(isNum)) : 1;
      layout["xaxis" + axis] = { title: { text: d === "parameters" ? "parameter count" : txt(d) },
                                 type: numeric ? (spread >= 100 ? "log" : "linear") : "category" };
      layout["yaxis" + axis] = { title: { text: i % columns === 0 ? "best " + txt(metric) : "" } };
    });
    Plotly.react($("params"), traces, layout, PLOT_CONFIG);
  }

  // -- confusion matrix and dataset ------------------------------------------------------------
  // one matrix per run that has one (artifacts/confusion_matrix.json); the group's best run first
  function renderConfusion(group, runs) {
    var all = S.data.confusions || {}, picker = $("confusion-pick");
    var ids = runs.map(function (r) { return r.id; }).filter(function (id) { return all[id]; });
    var best = group && group.best_run;
    if (best && ids.indexOf(best) > 0) { ids.splice(ids.indexOf(best), 1); ids.unshift(best); }
    $("sec-confusion").hidden = !ids.length;
    if (!ids.length) return;
    var byId = runsById();
    var options = ids.map(function (id) {
      var r = byId[id];
      return [id, (r ? r.label : id) + (id === best ? " (best run)" : "")];
    });
    S.confusionRun = fillSelect(picker, options, S.confusionRun);
    var c = all[S.confusionRun], run = byId[S.confusionRun];
    $("confusion-run").textContent = "valid split, best checkpoint of " + (run ? run.label : S.confusionRun);
    var size = Math.min(900, Math.max(360, 40 * c.classes.length + 160));
    Plotly.react($("confusion"), [{
      type: "heatmap", z: c.matrix, x: c.classes.map(txt), y: c.classes.map(txt), colorscale: [[0, "#f7fbff"], [0.5, "#6baed6"], [1, "#08306b"]], texttemplate: c.classes.length <= 30 ? "%{z}" : "",
      hovertemplate: "target %{y}<br>prediction %{x}<br>%{z}<extra></extra>"
    }], { width: size, height: size, margin: { t: 20, r: 20, b: 90, l: 90 }, uirevision: S.confusionRun,
          xaxis: { title: { text: "prediction" }, type: "category" },
          yaxis: { title: { text: "target" }, type: "category", autorange: "reversed" } }, PLOT_CONFIG);
  }

  function renderReport(rep) {
    var children = [el("h4", { text: rep.title })];
    var keys = Object.keys(rep.values || {});
    if (keys.length) {
      var dl = el("dl");
      keys.forEach(function (k) {
        var v = rep.values[k];
        dl.appendChild(el("dt", { text: k }));
        dl.appendChild(el("dd", { text: typeof v === "object" && v !== null ? JSON.stringify(v) : fmt(v) }));
      });
      children.push(dl);
    }
    if (rep.figure) children.push(el("img", { src: rep.figure, alt: rep.title }));
    if (rep.table && rep.table.length) {
      var rows = rep.table.slice(0, 30), head = Array.isArray(rows[0]) ? null : Object.keys(rows[0] || {});
      var t = el("table");
      if (head) t.appendChild(el("tr", {}, head.map(function (h) { return el("th", { text: h }); })));
      rows.forEach(function (row) {
        var cells = head ? head.map(function (h) { return row[h]; }) : (Array.isArray(row) ? row : [row]);
        t.appendChild(el("tr", {}, cells.map(function (v) { return el("td", { text: typeof v === "object" && v !== null ? JSON.stringify(v) : fmt(v) }); })));
      });
      children.push(t);
      if (rep.table.length > rows.length) children.push(el("p", { className: "empty", text: (rep.table.length - rows.length) + " more rows" }));
    }
    if (rep.suggestions && Object.keys(rep.suggestions).length) {
      children.push(el("p", { text: "suggested settings:" }));
      children.push(el("pre", { text: JSON.stringify(rep.suggestions, null, 2) }));
    }
    return el("div", { className: "report", "data-report": rep.name }, children);
  }

  // a rendered file by its kind (the report chose it by the file's suffix): a picture that enlarges
  // on click, a player, or a renderer's HTML in a sandboxed frame (no scripts, no access to this page)
  function mediaElement(m, label) {
    if (m.kind === "image") {
      return el("img", { src: m.src, alt: label, title: "click to enlarge", className: "zoomable",
                         onclick: function () { enlarge(m.src, label); } });
    }
    if (m.kind === "audio") return el("audio", { controls: true, preload: "none", src: m.src, title: label });
    if (m.kind === "html") return el("iframe", { sandbox: true, srcdoc: m.html, title: label, className: "rendered-html" });
    return null;
  }

  function renderSample(s) {
    var media = s.media || {};
    var roles = ["input", "target", "prediction"].map(function (role) {
      if (!media[role] && !s[role + "_text"]) return null;
      var wrong = role === "prediction" && s.prediction_text && s.target_text && s.prediction_text.split(" (")[0] !== s.target_text;
      return el("figure", { "data-role": role, "data-kind": media[role] ? media[role].kind : null }, [
        media[role] ? mediaElement(media[role], role + " of sample " + s.index) : null,
        s[role + "_text"] ? el("div", { className: "text" + (wrong ? " wrong" : ""), text: s[role + "_text"] }) : null,
        el("figcaption", { text: role })
      ]);
    });
    return el("div", { className: "sample", "data-index": s.index }, [el("div", { className: "roles" }, roles)]);
  }

  // the enlarged view of a sample picture: click anywhere or press Escape to close
  function enlarge(src, label) {
    var box = $("lightbox");
    box.textContent = "";
    box.appendChild(el("img", { src: src, alt: label }));
    box.appendChild(el("div", { className: "caption", text: label }));
    box.hidden = false;
    box.focus();
  }

  function closeLightbox() {
    var box = $("lightbox");
    box.hidden = true;
    box.textContent = "";
  }

  function renderDataset(group) {
    var d = group ? group.dataset : { reports: [], samples: [] };
    var key = JSON.stringify([group && group.key, d.reports, d.samples, d.samples_run]);
    if (key === S.datasetKey) return;  // unchanged: keep the images (no flicker while polling)
    S.datasetKey = key;
    var reports = $("reports"), samples = $("samples");
    reports.textContent = "";
    samples.textContent = "";
    if (d.reports.length) d.reports.forEach(function (rep) { reports.appendChild(renderReport(rep)); });
    else reports.appendChild(el("p", { className: "empty", text: "no analyzer reports in these runs' artifacts" }));
    var byId = runsById(), run = byId[d.samples_run];
    $("samples-title").textContent = "Samples" + (run ? " (" + run.label + ")" : "");
    if (d.samples.length) d.samples.forEach(function (s) { samples.appendChild(renderSample(s)); });
    else samples.appendChild(el("p", { className: "empty", text: "no rendered samples in these runs' artifacts" }));
  }

  // -- plugins' sections (hook kernel_report_sections) ------------------------------------------------
  // Each goes into a <section> of its own, under its title: parsed there, a fragment's markup stays
  // inside it whatever it holds. Scripts that innerHTML parses never run (the HTML standard), so
  // each is replaced by a copy, in document order, which runs when inserted; in the dashboard the
  // copy carries the page's nonce, the one mark its content security policy lets run.
  function renderPluginSections() {
    var given = S.data.plugin_sections || { key: "", sections: [], warnings: [] };
    if (given.key === S.sectionsKey) return;  // unchanged: keep the charts (no redraw while polling)
    S.sectionsKey = given.key;
    var box = $("plugin-sections");
    if (window.Plotly) box.querySelectorAll(".js-plotly-plot").forEach(function (div) { Plotly.purge(div); });
    box.textContent = "";
    (given.warnings || []).forEach(function (w) {
      box.appendChild(el("p", { className: "message plugin-warning", text: w }));
    });
    (given.sections || []).forEach(function (s) {
      var body = el("div", { className: "plugin-body" });
      box.appendChild(el("section", { id: s.id, className: "plugin-section", "data-plugin": s.plugin },
                         [el("h2", { text: s.title }), body]));
      body.innerHTML = s.html;
      body.querySelectorAll("script").forEach(runScript);
    });
  }

  function runScript(inert) {
    var live = document.createElement("script");
    for (var i = 0; i < inert.attributes.length; i++) live.setAttribute(inert.attributes[i].name, inert.attributes[i].value);
    if (S.nonce) live.nonce = S.nonce;
    if (live.src) live.async = false;  // a file's script keeps its place among the others
    live.text = inert.text;
    inert.parentNode.replaceChild(live, inert);
  }

  // -- the dashboard's controls -------------------------------------------------------------------
  function message(text) {
    var m = $("message");
    m.hidden = !text;
    m.textContent = text || "";
  }

  function controlButtons(r) {
    var out = [];
    var act = function (action) {
      return function () {
        fetch("/api/runs/" + encodeURIComponent(r.id) + "/" + action,
              { method: "POST", headers: { "X-Kernel-Token": S.options.token } })
          .then(function (resp) { return resp.json(); })
          .then(function (body) { message(body.message || body.error || ""); poll(); })
          .catch(function (err) { message(action + " failed: " + err); });
      };
    };
    if (r.status === "running") out.push(el("button", { type: "button", className: "stop", onclick: act("stop"), text: "stop" }));
    if (r.status === "interrupted" || r.status === "failed") out.push(el("button", { type: "button", className: "resume", onclick: act("resume"), text: "resume" }));
    return out;
  }

  // -- drawing and polling ------------------------------------------------------------------------
  function render() {
    renderControls();
    var runs = visibleRuns(), group = currentGroup();
    renderSummary(runs);
    renderCurves(runs);
    renderTable(runs);
    renderParams(runs);
    renderConfusion(group, runs);
    renderDataset(group);
    renderPluginSections();
  }

  var timer = null;
  function poll() {
    if (!S.options.live) return;
    clearTimeout(timer);
    var headers = S.etag ? { "If-None-Match": S.etag } : {};
    fetch(S.options.stateUrl, { headers: headers, cache: "no-store" }).then(function (resp) {
      if (resp.status === 304) return null;
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      S.etag = resp.headers.get("ETag");
      return resp.json();
    }).then(function (data) {
      if ($("message").textContent.indexOf("unreachable") >= 0) message("");
      S.checked = new Date();
      if (data) { S.data = data; render(); } else renderSummary(visibleRuns());
    }).catch(function (err) {
      message("dashboard server unreachable (" + err.message + "); retrying");
    }).then(function () { timer = setTimeout(poll, S.options.interval || 2000); });
  }

  function start(data, options) {
    S.data = data;
    S.options = options || {};
    // the nonce of the script calling start (the dashboard's; none in the report, whose policy
    // admits inline scripts): plugins' scripts get it to run (see renderPluginSections)
    S.nonce = (document.currentScript && document.currentScript.nonce) || "";
    S.etag = S.options.etag || null;
    S.metric = data.metric || null;
    $("live").hidden = !S.options.live;
    ["group", "filter", "metric"].forEach(function (id) {
      $(id).addEventListener("change", function () {
        S[id] = $(id).value;
        if (id === "group") { S.filter = "all"; S.metric = null; S.confusionRun = null; }
        render();
      });
    });
    $("confusion-pick").addEventListener("change", function () {
      S.confusionRun = $("confusion-pick").value;
      renderConfusion(currentGroup(), visibleRuns());
    });
    $("lightbox").addEventListener("click", closeLightbox);
    document.addEventListener("keydown", function (e) { if (e.key === "Escape" && !$("lightbox").hidden) closeLightbox(); });
    $("download-csv").addEventListener("click", function () { downloadCsv(visibleRuns()); });
    $("download-png").addEventListener("click", function () {
      Plotly.downloadImage($("curves"), { format: "png", width: 1200, height: 600, filename: "curves" });
    });
    render();
    if (S.options.live) timer = setTimeout(poll, S.options.interval || 2000);
  }

  window.KernelPage = { start: start, state: S };
})();
