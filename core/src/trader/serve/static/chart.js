/* trader chart: a tiny line chart drawn as SVG (no dependency, works offline). MIT, part of trader-core.
   TraderChart.line(element, xs, ys, {color, fill, format, formatX}) replaces element's content. */
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  function el(name, attrs, text) {
    var node = document.createElementNS(NS, name);
    for (var k in attrs) node.setAttribute(k, attrs[k]);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function line(target, xs, ys, opts) {
    opts = opts || {};
    var W = 1000, H = 220, L = 80, R = 10, T = 10, B = 22;
    var fmt = opts.format || function (v) { return v.toFixed(2); };
    var fmtX = opts.formatX || function (v) { return String(v); };
    var svg = el("svg", {viewBox: "0 0 " + W + " " + H, width: "100%", role: "img", "aria-label": opts.label || "chart"});
    if (!ys.length) {
      svg.appendChild(el("text", {x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#888"}, "no data yet"));
      target.replaceChildren(svg);
      return svg;
    }
    var lo = Math.min.apply(null, ys), hi = Math.max.apply(null, ys);
    if (opts.zero) { lo = Math.min(lo, 0); hi = Math.max(hi, 0); }
    if (hi === lo) { hi += 1; lo -= 1; }
    var x0 = xs[0], x1 = xs[xs.length - 1] === x0 ? x0 + 1 : xs[xs.length - 1];
    function px(x) { return L + (x - x0) / (x1 - x0) * (W - L - R); }
    function py(y) { return T + (hi - y) / (hi - lo) * (H - T - B); }
    var d = "";
    for (var i = 0; i < ys.length; i++) d += (i ? "L" : "M") + px(xs[i]).toFixed(1) + " " + py(ys[i]).toFixed(1);
    [hi, (hi + lo) / 2, lo].forEach(function (v) {
      svg.appendChild(el("line", {x1: L, x2: W - R, y1: py(v), y2: py(v), stroke: "#e3e3e3"}));
      svg.appendChild(el("text", {x: L - 6, y: py(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#666"}, fmt(v)));
    });
    if (opts.fill) {
      var base = py(opts.zero ? 0 : lo);
      svg.appendChild(el("path", {d: d + "L" + px(xs[xs.length - 1]).toFixed(1) + " " + base + "L" + px(xs[0]).toFixed(1) + " " + base + "Z",
                                  fill: opts.fill, stroke: "none"}));
    }
    svg.appendChild(el("path", {d: d, fill: "none", stroke: opts.color || "#2563eb", "stroke-width": 1.5}));
    svg.appendChild(el("text", {x: L, y: H - 6, "font-size": 11, fill: "#666"}, fmtX(xs[0])));
    svg.appendChild(el("text", {x: W - R, y: H - 6, "text-anchor": "end", "font-size": 11, fill: "#666"}, fmtX(xs[xs.length - 1])));
    target.replaceChildren(svg);
    return svg;
  }
  window.TraderChart = {line: line};
})();
