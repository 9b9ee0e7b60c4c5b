/* trader serve: keeps the server-rendered pages live from the JSON API (/api/...). No framework, no build step.
   Values from the state files are set as text (textContent), never as markup. */
(function () {
  "use strict";
  var body = document.body, page = body.dataset.page, name = body.dataset.strategy;
  var refreshMs = Math.max(200, parseFloat(body.dataset.refresh || "2") * 1000);
  var PER_PAGE = 20;

  function money(v) { return v == null ? "-" : v.toLocaleString("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 2}); }
  function signed(v) { return v == null ? "-" : (v >= 0 ? "+" : "-") + money(Math.abs(v)); }
  function pct(v) { return v == null ? "-" : (v * 100).toFixed(2) + "%"; }
  function ms(v) { return v == null ? "-" : v.toFixed(1) + " ms"; }
  function when(ts) { return ts == null ? "-" : new Date(ts).toISOString().slice(0, 16).replace("T", " ") + " UTC"; }
  function num(v, col) {
    if (v == null) return "-";
    if (col === "timestamp" || col === "candle_ts") return when(v);
    if (typeof v === "number" && !Number.isInteger(v)) {
      return ["quantity", "filled_quantity", "price"].indexOf(col) >= 0 ? String(Number(v.toPrecision(8))) : v.toFixed(4);
    }
    return String(v);
  }
  function node(tag, text, cls) {
    var n = document.createElement(tag);
    if (text !== undefined) n.textContent = text;
    if (cls) n.className = cls;
    return n;
  }
  function getJSON(url) {
    return fetch(url, {headers: {Accept: "application/json"}}).then(function (r) {
      return r.json().then(function (data) { if (!r.ok) throw new Error(data.error || r.status); return data; });
    });
  }
  function live(ok) {
    var el = document.getElementById("live");
    if (el && body.dataset.readOnly !== "1") el.textContent = ok ? "live, updated " + new Date().toLocaleTimeString() : "connection lost: retrying";
    if (el && body.dataset.readOnly === "1") el.textContent = "read-only" + (ok ? ", updated " + new Date().toLocaleTimeString() : ", connection lost");
  }
  function statusNodes(row) {
    var out = [];
    if (row.error) { out.push(node("span", "unreadable", "badge error"), document.createTextNode(" "), node("span", row.error, "reason")); return out; }
    if (!row.risk) { out.push(node("span", "no account", "badge none")); return out; }
    out.push(node("span", row.risk.status, "badge " + row.risk.status));
    if (row.risk.reason) { out.push(document.createTextNode(" "), node("span", row.risk.reason, "reason")); }
    if (row.risk.pending_requests && row.risk.pending_requests.length) {
      out.push(document.createTextNode(" "), node("span", "pending: " + row.risk.pending_requests.join(", "), "pending"));
    }
    return out;
  }
  function positions(row) {
    var held = (row.positions || []).filter(function (p) { return p.quantity > 0; });
    return held.map(function (p) { return p.symbol + " " + Number(p.quantity.toPrecision(6)); }).join(", ") || "flat";
  }

  // ------------------------------------------------------------------ overview
  function renderOverview(data) {
    var tbody = document.querySelector("#overview tbody"), rows = [];
    data.strategies.forEach(function (row) {
      var a = row.account || {}, lat = row.latency || {}, tr = node("tr");
      tr.dataset.strategy = row.strategy;
      var link = node("a", row.strategy); link.href = "/strategies/" + encodeURIComponent(row.strategy);
      var td = node("td"); td.appendChild(link); tr.appendChild(td);
      td = node("td"); statusNodes(row).forEach(function (n) { td.appendChild(n); }); tr.appendChild(td);
      tr.appendChild(node("td", row.running_pid ? "running (pid " + row.running_pid + ")" : "stopped"));
      tr.appendChild(node("td", money(a.equity), "num"));
      tr.appendChild(node("td", signed(a.pnl) + " (" + pct(a["return"]) + ")", "num"));
      tr.appendChild(node("td", pct(a.drawdown) + " / " + pct(a.max_drawdown), "num"));
      tr.appendChild(node("td", positions(row)));
      tr.appendChild(node("td", row.last_candle || "-"));
      tr.appendChild(node("td", ms(lat.p50_ms) + " / " + ms(lat.p99_ms), "num"));
      tr.appendChild(node("td", row.model || "-"));
      rows.push(tr);
    });
    if (!rows.length) { var tr = node("tr"), td = node("td", "no strategy has run yet under this home"); td.colSpan = 10; tr.appendChild(td); rows.push(tr); }
    tbody.replaceChildren.apply(tbody, rows);
  }

  // ------------------------------------------------------------------ strategy page
  var COLUMNS = {
    orders: ["candle_ts", "client_order_id", "side", "quantity", "price", "status", "filled_quantity", "message"],
    fills: ["timestamp", "client_order_id", "side", "quantity", "price", "fee", "realized_pnl"],
    risk: ["timestamp", "kind", "code", "message"],
    decisions: ["timestamp", "kind", "code", "message", "client_order_id"]
  };
  var pages = {orders: 1, fills: 1, risk: 1, decisions: 1};
  function listUrl(key) {
    var base = "/api/strategies/" + encodeURIComponent(name) + "/";
    var q = "?page=" + pages[key] + "&per_page=" + PER_PAGE;
    return key === "risk" || key === "decisions" ? base + "events" + q + "&filter=" + key : base + key + q;
  }
  function renderList(key, data) {
    var section = document.querySelector('[data-list="' + key + '"]');
    if (!section) return;
    var rows = data.items.map(function (item) {
      var tr = node("tr");
      COLUMNS[key].forEach(function (c) { tr.appendChild(node("td", num(item[c], c))); });
      return tr;
    });
    var tbody = section.querySelector("tbody"); tbody.replaceChildren.apply(tbody, rows);
    section.querySelector(".count").textContent = "(" + data.total.toLocaleString("en-US") + ")";
    section.querySelector(".where").textContent = "page " + data.page + " of " + data.pages.toLocaleString("en-US");
    section.querySelector('[data-dir="-1"]').disabled = data.page <= 1;
    section.querySelector('[data-dir="1"]').disabled = data.page >= data.pages;
  }
  function refreshList(key) { return getJSON(listUrl(key)).then(function (d) { renderList(key, d); }); }
  function setField(field, text) { var el = document.querySelector('[data-field="' + field + '"]'); if (el) el.textContent = text; }
  function renderStrategy(row) {
    var a = row.account || {}, lat = row.latency || {}, status = document.getElementById("status");
    status.replaceChildren.apply(status, statusNodes(row));
    setField("equity", money(a.equity));
    setField("pnl", signed(a.pnl) + " (" + pct(a["return"]) + ")");
    setField("drawdown", pct(a.drawdown) + " / " + pct(a.max_drawdown));
    setField("fees", money(a.fees_paid));
    setField("positions", positions(row));
    setField("last_candle", row.last_candle || "-");
    setField("latency", ms(lat.p50_ms) + " / " + ms(lat.p99_ms));
    setField("model", row.model || "-");
  }
  function renderCharts(s) {
    var eq = document.getElementById("equity-chart"), dd = document.getElementById("drawdown-chart");
    if (!eq || !window.TraderChart) return;
    TraderChart.line(eq, s.timestamp, s.equity, {label: "equity", color: "#2563eb", format: money, formatX: when});
    TraderChart.line(dd, s.timestamp, s.drawdown,
      {label: "drawdown", color: "#cf222e", fill: "rgba(207,34,46,.15)", zero: true, format: pct, formatX: when});
  }
  function refreshStrategy() {
    var base = "/api/strategies/" + encodeURIComponent(name);
    var jobs = [getJSON(base).then(renderStrategy)];
    if (document.getElementById("equity-chart")) jobs.push(getJSON(base + "/series?points=600").then(renderCharts));
    Object.keys(pages).forEach(function (k) { if (document.querySelector('[data-list="' + k + '"]')) jobs.push(refreshList(k)); });
    return Promise.all(jobs);
  }

  // ------------------------------------------------------------------ operator actions
  function token() {
    var input = document.getElementById("token");
    return input ? input.value.trim() : "";
  }
  function act(command) {
    var result = document.getElementById("action-result");
    var note = document.getElementById("note").value;
    result.className = ""; result.textContent = command + ": sending...";
    fetch("/api/strategies/" + encodeURIComponent(name) + "/" + command, {
      method: "POST",
      headers: {"Content-Type": "application/json", Authorization: "Bearer " + token()},
      body: JSON.stringify({note: note})
    }).then(function (r) {
      return r.json().then(function (d) {
        result.className = r.ok ? "ok" : "refused";
        result.textContent = r.ok ? d.message : command + " refused: " + (d.error || r.status);
        if (r.ok) { try { sessionStorage.setItem("trader-token", token()); } catch (e) { /* private mode */ } }
        return refreshStrategy();
      });
    }).catch(function (e) { result.className = "refused"; result.textContent = command + " failed: " + e.message; });
  }
  function setUpActions() {
    var input = document.getElementById("token");
    if (!input) return;
    try { input.value = sessionStorage.getItem("trader-token") || ""; } catch (e) { /* private mode */ }
    document.getElementById("halt").addEventListener("click", function () { act("halt"); });
    document.getElementById("resume").addEventListener("click", function () { act("resume"); });
  }
  function setUpPagers() {
    Object.keys(pages).forEach(function (key) {
      var section = document.querySelector('[data-list="' + key + '"]');
      if (!section) return;
      section.querySelectorAll("button[data-dir]").forEach(function (b) {
        b.addEventListener("click", function () { pages[key] = Math.max(1, pages[key] + parseInt(b.dataset.dir, 10)); refreshList(key); });
      });
    });
  }

  // The link printed at start carries the token after "#" (never sent to the server): keep it for this tab only.
  (function () {
    var m = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
    if (!m) return;
    try { sessionStorage.setItem("trader-token", decodeURIComponent(m[1])); } catch (e) { /* private mode */ }
    history.replaceState(null, "", location.pathname + location.search);
  })();

  // ------------------------------------------------------------------ polling
  function loop(fn) {
    function tick() {
      fn().then(function () { live(true); }, function () { live(false); }).then(function () { setTimeout(tick, refreshMs); });
    }
    tick();
  }
  if (page === "overview") {
    loop(function () { return getJSON("/api/strategies").then(renderOverview); });
  } else if (page === "strategy") {
    setUpActions(); setUpPagers();
    loop(refreshStrategy);
  }
})();
