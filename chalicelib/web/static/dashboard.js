/* iotcloud dashboard: charts (uPlot) and live updates (WAMP events when the router exists,
   polling otherwise). Every page works without this script: it adds charts and fresh values.

   The script never sees the admin token. It reads JSON under /dashboard/data with the page's
   session cookie (same origin), and authenticates to the WAMP router with a one-minute ticket
   fetched from /dashboard/data/ticket (a POST carrying the page's CSRF token). */
(function () {
  "use strict";

  const body = document.body;
  const base = body.dataset.base || "";
  const csrf = body.dataset.csrf || "";
  const wsUrl = body.dataset.wsUrl || "";
  const pollMs = Number(body.dataset.pollMs) || 3000;
  const onlineMs = Number(body.dataset.onlineMs) || 300000;
  const SLOW_POLL_MS = 30000; // with live events, a slow poll catches anything missed while reconnecting
  const MAX_POINTS = 50000; // raw readings a chart will load (raw only where every series holds at most ~1,000)
  const HOUR_MS = 3600000;

  // --- small helpers ------------------------------------------------------------------------

  function signInAgain() {
    const here = location.pathname + location.search;
    location.assign(base + "/dashboard/sign-in?expired=1&next=" + encodeURIComponent(here));
  }

  async function getJson(path, options) {
    options = options || {};
    let res;
    try {
      res = await fetch(base + path, {
        method: options.method || "GET",
        credentials: "same-origin",
        cache: "no-store",
        headers: Object.assign({ Accept: "application/json" }, options.headers || {}),
      });
    } catch (e) {
      throw new Error("The dashboard cannot reach the server (" + e.message + "). It will try again.");
    }
    if (res.status === 401) {
      signInAgain();
      throw new Error("Your session has expired.");
    }
    let doc = null;
    try {
      doc = await res.json();
    } catch (e) {
      doc = null;
    }
    if (!res.ok) {
      const message = doc && doc.error && doc.error.message ? doc.error.message : "the server answered " + res.status;
      throw new Error(message.charAt(0).toUpperCase() + message.slice(1) + ".");
    }
    return doc;
  }

  const flashBox = document.getElementById("flash");
  function flash(message) {
    if (!flashBox) return;
    flashBox.textContent = message || "";
    flashBox.hidden = !message;
  }

  function showValue(v) {
    if (typeof v === "boolean") return v ? "true" : "false";
    return String(v);
  }
  function when(ms) {
    return new Date(ms).toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }
  function iso(ms) {
    return new Date(ms).toISOString().slice(0, 19) + "Z";
  }
  function ago(ms, now) {
    if (ms === null || ms === undefined) return "never";
    const s = (now - ms) / 1000;
    if (s < -5) return "in the future";
    if (s >= 86400) return Math.floor(s / 86400) + " d ago";
    if (s >= 3600) return Math.floor(s / 3600) + " h ago";
    if (s >= 60) return Math.floor(s / 60) + " min ago";
    return Math.max(0, Math.floor(s)) + " s ago";
  }
  function h(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined) node.setAttribute(k, String(v));
    }
    for (const child of [].concat(children || [])) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  function keyOf(r) {
    return r.metric + "\u0000" + r.unit;
  }
  function timeNode(ms, now) {
    if (!ms) return document.createTextNode("never");
    return h("time", { datetime: iso(ms), title: when(ms), "data-ts": ms }, ago(ms, now));
  }
  function statusBadge(status) {
    return h("span", { class: "badge badge-" + status.replace(/ /g, "-") }, status);
  }
  function statusOf(disabled, alerts, lastSeen, now) {
    if (disabled) return "disabled";
    if (alerts) return "alerting";
    if (!lastSeen) return "never seen";
    return now - lastSeen <= onlineMs ? "online" : "silent";
  }

  // When the session runs out, an open page goes back to sign-in (and, signed in again, returns).
  // The server says how long it has left, so the browser's clock does not matter.
  const sessionLeftMs = Number(body.dataset.sessionLeftMs);
  if (sessionLeftMs > 0) setTimeout(signInAgain, Math.min(sessionLeftMs + 500, 2147483647));

  // Relative times ("3 min ago") stay true while the page is open.
  setInterval(function () {
    const now = Date.now();
    document.querySelectorAll("time[data-ts]").forEach(function (t) {
      t.textContent = ago(Number(t.dataset.ts), now);
    });
  }, 15000);

  // --- live updates: WAMP when configured and reachable, polling otherwise ---------------------

  function live(options) {
    const statusEl = document.querySelector("[data-live-status]");
    let timer = null;
    let mode = null;
    function setMode(next, text) {
      mode = next;
      body.dataset.live = next;
      if (statusEl) {
        statusEl.dataset.mode = next;
        statusEl.textContent = text;
      }
    }
    function schedule(ms) {
      clearTimeout(timer);
      timer = setTimeout(tick, ms);
    }
    let failing = false;
    async function tick() {
      try {
        await options.poll();
        if (failing) flash("");
        failing = false;
      } catch (e) {
        failing = true;
        flash(e.message);
      }
      schedule(mode === "wamp" ? SLOW_POLL_MS : pollMs);
    }
    const polling = function () {
      setMode("polling", "Updates every " + pollMs / 1000 + " s");
    };
    polling();
    schedule(pollMs);
    if (!wsUrl || typeof autobahn === "undefined" || !options.topics.length) return;

    const connection = new autobahn.Connection({
      transports: [{ type: "websocket", url: wsUrl, serializers: [new autobahn.serializer.JSONSerializer()] }],
      realm: "iotcloud",
      authmethods: ["ticket"],
      onchallenge: function () {
        return getJson("/dashboard/data/ticket", { method: "POST", headers: { "X-CSRF-Token": csrf } }).then(
          function (doc) {
            return doc.ticket;
          }
        );
      },
      max_retries: -1,
      initial_retry_delay: 2,
      max_retry_delay: 60,
    });
    connection.onopen = function (session) {
      const subscriptions = options.topics.map(function (topic) {
        return session.subscribe(topic, function (args, kwargs) {
          options.onEvent(topic, args || [], kwargs || {});
        });
      });
      Promise.all(subscriptions).then(
        function () {
          setMode("wamp", "Live");
          schedule(0); // what arrived between the page and the subscriptions
        },
        function () {
          polling();
        }
      );
    };
    connection.onclose = function (reason, details) {
      polling();
      schedule(pollMs);
      // The router refused the ticket (an ABORT): retrying will not help; keep polling.
      const why = (details && details.reason) || "";
      return reason === "closed" && String(why).indexOf("wamp.error.") === 0;
    };
    connection.open();
  }

  // --- the fleet overview ------------------------------------------------------------------------

  function fleetPage(table) {
    const data = JSON.parse(table.dataset.live || "{}");
    const rows = new Map();
    table.querySelectorAll("tr[data-device]").forEach(function (tr) {
      const id = tr.dataset.device;
      const state = (data.devices || {})[id] || { last_seen: null, latest: [] };
      const latest = new Map();
      state.latest.forEach(function (r) {
        latest.set(keyOf(r), r);
      });
      rows.set(id, { tr: tr, lastSeen: state.last_seen, latest: latest });
    });
    if (!rows.size) return;

    function render(id, now, changed) {
      const row = rows.get(id);
      const tr = row.tr;
      const alerts = Number(tr.dataset.alerts) || 0;
      const status = statusOf(tr.dataset.disabled === "true", alerts, row.lastSeen, now);
      const statusCell = tr.querySelector('[data-field="status"]');
      const badge = statusCell.querySelector(".badge");
      if (badge && badge.textContent !== status) badge.replaceWith(statusBadge(status));
      tr.querySelector('[data-field="last-seen"]').replaceChildren(timeNode(row.lastSeen, now));
      if (!changed) return;
      const values = Array.from(row.latest.values()).sort(function (a, b) {
        return a.metric < b.metric ? -1 : a.metric > b.metric ? 1 : a.unit < b.unit ? -1 : a.unit > b.unit ? 1 : 0;
      });
      const list = h("ul", { class: "values" });
      values.slice(0, 6).forEach(function (r) {
        const item = h("li", {}, [h("span", { class: "metric" }, r.metric), " ", h("span", { class: "value" }, showValue(r.value))]);
        if (r.unit) item.append(" ", h("span", { class: "unit" }, r.unit));
        list.append(item);
      });
      if (values.length > 6) list.append(h("li", { class: "more" }, "+" + (values.length - 6) + " more"));
      tr.querySelector('[data-field="latest"]').replaceChildren(values.length ? list : h("span", { class: "muted" }, "no readings yet"));
      tr.classList.remove("flash-row");
      void tr.offsetWidth; // restart the highlight
      tr.classList.add("flash-row");
    }

    function merge(id, readings, lastSeen, now) {
      const row = rows.get(id);
      if (!row) return;
      let changed = false;
      readings.forEach(function (r) {
        const known = row.latest.get(keyOf(r));
        if (!known || r.ts > known.ts || (r.ts === known.ts && r.value !== known.value)) {
          row.latest.set(keyOf(r), r);
          changed = true;
        }
      });
      if (lastSeen && (!row.lastSeen || lastSeen > row.lastSeen)) row.lastSeen = lastSeen;
      render(id, now, changed);
    }

    // Sparklines: one request for the page's devices (hourly averages from the rollups), on load only:
    // an hour's average changes slowly, and the latest values are live beside it.
    const SVG = "http://www.w3.org/2000/svg";
    function round(y) {
      return Number(y.toPrecision(4));
    }
    function sparkline(line) {
      const row = rows.get(line.device_id);
      if (!row || line.points.length < 2) return;
      const xs = line.points.map(function (p) {
        return p[0];
      });
      const ys = line.points.map(function (p) {
        return p[1];
      });
      const x0 = xs[0];
      const dx = xs[xs.length - 1] - x0 || 1;
      const lo = Math.min.apply(null, ys);
      const hi = Math.max.apply(null, ys);
      const dy = hi - lo || 1;
      const svg = document.createElementNS(SVG, "svg");
      svg.setAttribute("class", "spark");
      svg.setAttribute("viewBox", "0 0 96 24");
      svg.setAttribute("preserveAspectRatio", "none");
      svg.setAttribute("role", "img");
      const label = line.metric + ", hourly averages of the last 24 h: " + round(lo) + " to " + round(hi) + (line.unit ? " " + line.unit : "");
      svg.setAttribute("aria-label", label);
      const title = document.createElementNS(SVG, "title");
      title.textContent = label;
      const poly = document.createElementNS(SVG, "polyline");
      poly.setAttribute(
        "points",
        line.points
          .map(function (p) {
            return ((96 * (p[0] - x0)) / dx).toFixed(1) + "," + (22 - (20 * (p[1] - lo)) / dy).toFixed(1);
          })
          .join(" ")
      );
      svg.append(title, poly);
      const cell = row.tr.querySelector('[data-field="spark"]');
      if (cell) {
        cell.dataset.points = String(line.points.length);
        cell.dataset.metric = line.metric;
        cell.replaceChildren(svg);
      }
    }
    getJson("/dashboard/data/sparklines?ids=" + encodeURIComponent(Array.from(rows.keys()).join(","))).then(
      function (doc) {
        doc.sparklines.forEach(sparkline);
      },
      function (e) {
        flash(e.message);
      }
    );

    live({
      topics: Array.from(rows.keys()).map(function (id) {
        return "iotcloud.telemetry." + id;
      }),
      onEvent: function (topic, args, kwargs) {
        const now = Date.now();
        merge(kwargs.device_id, kwargs.readings || [], now, now);
      },
      poll: async function () {
        const doc = await getJson("/dashboard/data/states?ids=" + encodeURIComponent(Array.from(rows.keys()).join(",")));
        doc.states.forEach(function (state) {
          merge(state.device_id, state.latest, state.last_seen, doc.now);
        });
      },
    });
  }

  // --- one device: charts and latest values ------------------------------------------------------

  function cssVar(name, fallback) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
  }
  const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];

  // "5-minute averages", "hourly averages": what an aggregated chart shows, from its interval.
  const UNIT_NAMES = [
    [7 * 86400000, "week", "weekly"],
    [86400000, "day", "daily"],
    [HOUR_MS, "hour", "hourly"],
    [60000, "minute", "1-minute"],
    [1000, "second", "1-second"],
  ];
  function intervalName(ms) {
    for (const [size, name, one] of UNIT_NAMES) {
      if (ms % size === 0) return ms === size ? one : ms / size + "-" + name;
    }
    return ms + "-millisecond";
  }

  function devicePage(root) {
    const deviceId = root.dataset.device;
    const from = Number(root.dataset.from);
    const to = Number(root.dataset.to);
    // The server's interval for this window (web/device.py chart_interval) and the most points a
    // chart asks for per series: the page first asks for the window's buckets at that interval (one
    // request, every series); if every series holds at most chartPoints readings, it draws the
    // raw readings instead ("raw"), otherwise the buckets (avg, with a min-max band).
    const interval = Number(root.dataset.interval) || HOUR_MS;
    const chartPoints = Number(root.dataset.chartPoints) || 1000;
    const initial = JSON.parse(root.dataset.live || "{}").device || { latest: [], last_seen: null };
    const message = root.querySelector("[data-chart-message]");
    const latestBody = document.querySelector("#latest tbody");
    const lastSeenCell = document.querySelector('.facts [data-field="last-seen"]');
    const known = new Map(); // latest reading per (metric, unit)
    initial.latest.forEach(function (r) {
      known.set(keyOf(r), r);
    });
    let lastSeen = initial.last_seen;
    const series = new Map();
    let chartsReady = false;
    let mode = null; // "raw" or "aggregate", once the first answer says which
    let early = []; // chartable readings that arrived before that

    function chartable(v) {
      return typeof v === "number" || typeof v === "boolean";
    }
    function banded(s) {
      return mode === "aggregate" && s.numeric;
    }
    function what(s) {
      if (mode !== "aggregate") return "raw";
      return intervalName(interval) + (s.numeric ? " averages" : " last values");
    }

    function caption(s) {
      const n = s.xs.length;
      const last = n ? showValue(s.raw[n - 1]) + (s.unit ? " " + s.unit : "") : "—";
      return [
        h("span", {}, s.metric + (s.unit ? " (" + s.unit + ")" : "")),
        h("span", { class: "muted" }, [h("span", { "data-chart-kind": "" }, what(s)), " · " + n + " point" + (n === 1 ? "" : "s") + " · last " + last]),
      ];
    }

    function describe(s) {
      const n = s.ys.length;
      if (!n) return "No readings of " + s.metric + " in this window.";
      let lo = Infinity;
      let hi = -Infinity;
      (banded(s) ? s.lo : s.ys).forEach(function (y) {
        lo = Math.min(lo, y);
      });
      (banded(s) ? s.hi : s.ys).forEach(function (y) {
        hi = Math.max(hi, y);
      });
      const noun = mode === "aggregate" ? what(s) : "readings";
      return s.metric + ": " + n + " " + noun + " from " + when(s.xs[0] * 1000) + " to " + when(s.xs[n - 1] * 1000) + ", between " + lo + " and " + hi + (s.unit ? " " + s.unit : "") + ".";
    }

    function dataOf(s) {
      return banded(s) ? [s.xs, s.ys, s.lo, s.hi] : [s.xs, s.ys];
    }

    function updateChart(s) {
      s.fig.dataset.points = String(s.xs.length);
      s.fig.dataset.kind = mode === "aggregate" ? "aggregate" : "raw";
      s.fig.querySelector("figcaption").replaceChildren.apply(s.fig.querySelector("figcaption"), caption(s));
      s.plotEl.setAttribute("aria-label", describe(s));
      if (s.plot) s.plot.setData(dataOf(s));
      let total = 0;
      series.forEach(function (x) {
        total += x.xs.length;
      });
      root.dataset.points = String(total);
    }

    function makeSeries(r, numeric) {
      const s = { metric: r.metric, unit: r.unit, numeric: numeric, xs: [], ys: [], lo: [], hi: [], raw: [], seen: new Set(), plot: null };
      s.fig = h("figure", { class: "chart", "data-metric": r.metric, "data-unit": r.unit, "data-points": "0" }, [h("figcaption")]);
      s.plotEl = h("div", { class: "plot", role: "img", "aria-label": "" });
      s.fig.append(s.plotEl);
      series.set(keyOf(r), s);
      const figures = Array.from(root.querySelectorAll("figure.chart"));
      const after = figures.find(function (f) {
        return keyOf(f.dataset) > keyOf(r);
      });
      root.insertBefore(s.fig, after || null);
      return s;
    }

    function plot(s, index) {
      if (typeof uPlot === "undefined") return;
      const fg = cssVar("--fg", "#1c2330");
      const grid = cssVar("--line", "#dde2ea");
      const color = PALETTE[index % PALETTE.length];
      const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
      const width = Math.max(240, s.plotEl.clientWidth || root.clientWidth || 600);
      const boolean = typeof s.raw[0] === "boolean";
      const lines = [
        {},
        {
          label: s.metric,
          stroke: color,
          width: 2,
          points: { show: s.xs.length <= 120 },
          paths: boolean && uPlot.paths && uPlot.paths.stepped ? uPlot.paths.stepped({ align: 1 }) : undefined,
        },
      ];
      const options = {
        width: width,
        height: 220,
        scales: { x: { time: true } },
        // The page shows UTC everywhere; so do the charts' time axes.
        tzDate: function (ts) {
          return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC");
        },
        legend: { show: false },
        cursor: { drag: { x: true, y: false } },
        axes: [Object.assign({}, axis), Object.assign({ size: 60 }, axis)],
        series: lines,
      };
      if (banded(s)) {
        // Each bucket's min and max, faint, with the band between them filled.
        lines.push({ label: "min", stroke: color + "55", width: 1, points: { show: false } });
        lines.push({ label: "max", stroke: color + "55", width: 1, points: { show: false } });
        options.bands = [{ series: [3, 2], fill: color + "22" }];
      }
      s.plot = new uPlot(options, dataOf(s), s.plotEl);
    }

    function drawNew(touched) {
      let index = 0;
      series.forEach(function (s) {
        if (!s.plot && chartsReady) plot(s, index);
        if (touched.has(s)) updateChart(s);
        index++;
      });
    }

    // Raw readings into the charts (numbers and booleans; strings are in the table only), in time order.
    function addToCharts(readings) {
      const touched = new Set();
      readings.forEach(function (r) {
        if (!chartable(r.value)) return;
        const key = keyOf(r);
        const s = series.get(key) || makeSeries(r, typeof r.value === "number");
        if (s.seen.has(r.ts)) return;
        s.seen.add(r.ts);
        const x = r.ts / 1000;
        const y = typeof r.value === "boolean" ? (r.value ? 1 : 0) : r.value;
        let i = s.xs.length;
        while (i > 0 && s.xs[i - 1] > x) i--;
        s.xs.splice(i, 0, x);
        s.ys.splice(i, 0, y);
        s.raw.splice(i, 0, r.value);
        touched.add(s);
      });
      drawNew(touched);
    }

    // Buckets into the charts: a bucket already drawn (same start) is replaced, a new one inserted.
    function addBuckets(doc) {
      const touched = new Set();
      doc.series.forEach(function (d) {
        if (!d.buckets.length) return;
        const numeric = d.buckets[0].avg !== null;
        const s = series.get(keyOf(d)) || makeSeries(d, numeric);
        d.buckets.forEach(function (b) {
          const x = b.start / 1000;
          const y = numeric ? b.avg : b.last ? 1 : 0;
          let i = s.xs.length;
          while (i > 0 && s.xs[i - 1] > x) i--;
          if (i > 0 && s.xs[i - 1] === x) {
            i--;
            s.ys[i] = y;
            s.lo[i] = b.min;
            s.hi[i] = b.max;
            s.raw[i] = b.last;
          } else {
            s.xs.splice(i, 0, x);
            s.ys.splice(i, 0, y);
            s.lo.splice(i, 0, b.min);
            s.hi.splice(i, 0, b.max);
            s.raw.splice(i, 0, b.last);
          }
        });
        touched.add(s);
      });
      drawNew(touched);
    }

    function aggregates(f, t) {
      const q = new URLSearchParams({ from: String(f), to: String(t), interval: String(interval) });
      return getJson("/dashboard/data/devices/" + encodeURIComponent(deviceId) + "/aggregates?" + q.toString());
    }

    // Live readings on an aggregated chart: the buckets they fall in are fetched again (the server
    // de-duplicates and merges late readings; the page never double-counts one).
    let pending = null; // [from, to] of the buckets to fetch again
    let refreshing = false;
    function refreshBuckets(readings) {
      const horizon = Date.now() + HOUR_MS;
      const times = readings
        .filter(function (r) {
          return chartable(r.value) && r.ts >= from && r.ts <= horizon;
        })
        .map(function (r) {
          return r.ts;
        });
      if (!times.length) return;
      const lo = Math.max(from, Math.floor(Math.min.apply(null, times) / interval) * interval);
      const hi = Math.floor(Math.max.apply(null, times) / interval) * interval + interval - 1;
      pending = pending ? [Math.min(pending[0], lo), Math.max(pending[1], hi)] : [lo, hi];
      if (!refreshing) drain();
    }
    async function drain() {
      refreshing = true;
      try {
        while (pending) {
          const span = pending;
          pending = null;
          addBuckets(await aggregates(span[0], span[1]));
        }
      } catch (e) {
        flash(e.message);
      } finally {
        refreshing = false;
      }
    }

    function addToTable(readings) {
      const now = Date.now();
      readings.forEach(function (r) {
        const key = keyOf(r);
        const current = known.get(key);
        if (current && current.ts > r.ts) return;
        known.set(key, r);
        let row = Array.from(latestBody.querySelectorAll("tr[data-metric]")).find(function (tr) {
          return tr.dataset.metric === r.metric && tr.dataset.unit === r.unit;
        });
        const cells = [h("th", { scope: "row" }, r.metric), h("td", { class: "value" }, showValue(r.value)), h("td", {}, r.unit), h("td", {}, h("time", { datetime: iso(r.ts) }, when(r.ts)))];
        if (!row) {
          row = h("tr", { "data-metric": r.metric, "data-unit": r.unit });
          const empty = latestBody.querySelector(".empty-row");
          if (empty) empty.remove();
          const rows = Array.from(latestBody.querySelectorAll("tr[data-metric]"));
          const after = rows.find(function (tr) {
            return keyOf(tr.dataset) > key;
          });
          latestBody.insertBefore(row, after || null);
        }
        row.replaceChildren.apply(row, cells);
        row.classList.remove("flash-row");
        void row.offsetWidth;
        row.classList.add("flash-row");
      });
      if (lastSeenCell) lastSeenCell.replaceChildren(timeNode(lastSeen, now));
    }

    async function readingsBetween(f, t, most) {
      const readings = [];
      let cursor = null;
      let truncated = false;
      do {
        const q = new URLSearchParams({ from: String(f), to: String(t), limit: "10000" });
        if (cursor) q.set("cursor", cursor);
        const doc = await getJson("/dashboard/data/devices/" + encodeURIComponent(deviceId) + "/telemetry?" + q.toString());
        for (const r of doc.readings) readings.push(r);
        cursor = doc.next_cursor;
        if (cursor && readings.length >= most) {
          truncated = true;
          break;
        }
      } while (cursor);
      return { readings: readings, truncated: truncated };
    }

    function onReadings(readings) {
      addToTable(readings);
      if (mode === "raw") addToCharts(readings);
      else if (mode === "aggregate") refreshBuckets(readings);
      else early = early.concat(readings);
    }

    (async function () {
      try {
        const doc = await aggregates(from, to);
        let most = 0;
        doc.series.forEach(function (s) {
          let n = 0;
          s.buckets.forEach(function (b) {
            n += b.count;
          });
          most = Math.max(most, n);
        });
        let loaded = { readings: [], truncated: false };
        if (most <= chartPoints) {
          mode = "raw";
          loaded = await readingsBetween(from, to, MAX_POINTS);
          addToCharts(loaded.readings);
        } else {
          mode = "aggregate";
          addBuckets(doc);
        }
        root.dataset.kind = mode;
        chartsReady = true;
        addToCharts([]);
        const pendingEarly = early;
        early = [];
        if (mode === "raw") addToCharts(pendingEarly);
        else refreshBuckets(pendingEarly);
        const numeric = series.size;
        if (message) {
          if (typeof uPlot === "undefined") {
            message.textContent = "Charts need the front-end libraries: run make assets.";
          } else if (!numeric && !loaded.readings.length) {
            message.textContent = "No readings between " + when(from) + " and " + when(to) + ".";
          } else if (!numeric) {
            message.textContent = "This window holds only text values: see the latest values below.";
          } else if (loaded.truncated) {
            message.textContent = "Showing the first " + loaded.readings.length + " readings of this window: choose a shorter one to see them all.";
          } else {
            message.remove();
          }
        }
        root.dataset.state = "ready";
      } catch (e) {
        root.dataset.state = "error";
        if (message) message.textContent = "Could not load the readings: " + e.message;
      }
      window.addEventListener("resize", function () {
        series.forEach(function (s) {
          if (s.plot) s.plot.setSize({ width: Math.max(240, s.plotEl.clientWidth), height: 220 });
        });
      });
    })();

    live({
      topics: ["iotcloud.telemetry." + deviceId],
      onEvent: function (topic, args, kwargs) {
        lastSeen = Date.now();
        onReadings(kwargs.readings || []);
      },
      poll: async function () {
        const doc = await getJson("/dashboard/data/states?ids=" + encodeURIComponent(deviceId));
        const state = doc.states[0];
        if (!state) return;
        lastSeen = state.last_seen;
        const newer = state.latest.filter(function (r) {
          const k = known.get(keyOf(r));
          return !k || r.ts > k.ts;
        });
        if (newer.length) {
          const since = Math.min.apply(null, newer.map(function (r) {
            return r.ts;
          }));
          onReadings((await readingsBetween(since, doc.now + HOUR_MS, MAX_POINTS)).readings);
        } else {
          addToTable([]);
        }
      },
    });
  }

  const fleet = document.getElementById("fleet");
  if (fleet) fleetPage(fleet);
  const charts = document.getElementById("charts");
  if (charts) devicePage(charts);
})();
