// stream.js: one stream's live counter over its own WebSocket, the states the
// gateway reports (live, stale, syncing, counting) plus connecting and
// reconnecting, a chart (the stream's 5-minute history from
// /api/streams/<id>/history first, then the live counts appended), and reconnection with backoff:
// first to the gateway that served the page, then to the others that
// /api/config lists, so the page keeps counting when its gateway dies.
"use strict";

(async () => {
  const LIVE_WINDOW_MS = 5 * 60 * 1000;   // the chart without history
  const HISTORY_HOURS = 6;                 // the history asked for when the page opens
  const $ = (id) => document.getElementById(id);
  const countEl = $("count"), statusEl = $("status"), peakEl = $("peak"), explainEl = $("explain");
  const endpointEl = $("endpoint"), reconnectsEl = $("reconnects");

  const sid = VC.params.get("stream") || "";
  if (!/^[1-9][0-9]{0,17}$/.test(sid)) {
    $("title").textContent = "No such stream";
    explainEl.textContent = "The address needs ?stream=<id> (a positive number).";
    setStatus("error", "error");
    return;
  }
  $("back").href = VC.withToken("./");
  document.title = "Stream " + sid + " · vc";
  $("title").textContent = "Stream " + sid;

  const [config, catalog, history] = await Promise.all([VC.loadConfig(), VC.loadCatalog(), loadHistory()]);
  const info = catalog.streams.get(Number(sid));
  if (info) {
    if (info.title) {
      $("title").textContent = info.title;
      document.title = info.title + " · vc";
    }
    const cname = catalog.categories.get(info.category);
    if (cname) {
      const a = VC.el("a", { href: VC.withToken("./?category=" + info.category), text: cname });
      $("category").replaceChildren("Category: ", a, " · stream #" + sid);
    }
  } else {
    $("category").textContent = "stream #" + sid;
  }

  const EXPLAIN = {
    live: "",
    stale: "The count store is unreachable: this is the last known count, it may be old.",
    syncing: "This stream's count is being repaired; the number may move.",
    counting: "Counting viewers… no number is known yet.",
    connecting: "Connecting to a gateway…",
    reconnecting: "The connection was lost; reconnecting…",
    unauthorized: "The gateway refused this viewer: add a valid ?token=<JWT> to the address.",
  };

  function setStatus(status, label) {
    statusEl.textContent = label || status;
    statusEl.className = "badge " + status;
    statusEl.dataset.status = status;
    document.body.dataset.status = status;
    explainEl.textContent = EXPLAIN[status] || "";
  }

  // ---- history: the stream's closed 5-minute buckets (time-weighted
  // average and peak) from the database's reader, drawn before the live
  // samples. Optional: without it (no database, an error) the chart starts
  // empty as before.
  async function loadHistory() {
    try {
      const h = await VC.getJSON("/api/streams/" + sid + "/history?hours=" + HISTORY_HOURS, 5000);
      const buckets = (h.buckets || [])
        .filter((b) => typeof b.start === "number" && typeof b.avg === "number")
        .map((b) => ({ t0: b.start * 1000, t1: (b.start + (b.seconds || 300)) * 1000, avg: b.avg, peak: b.peak }));
      return { ok: true, buckets };
    } catch (e) {
      return { ok: false, buckets: [] };
    }
  }
  const buckets = history.buckets;
  document.body.dataset.historyPoints = String(buckets.length);
  document.body.dataset.history = history.ok ? "ok" : "unavailable";
  const openedAt = Date.now();
  // The chart spans the history (at most HISTORY_HOURS) up to now, at least
  // the last 5 minutes.
  function windowMs(now) {
    if (!buckets.length) return LIVE_WINDOW_MS;
    return Math.min(HISTORY_HOURS * 3600000, Math.max(LIVE_WINDOW_MS, now - buckets[0].t0));
  }
  function windowLabel(ms) {
    const min = Math.round(ms / 60000);
    if (min < 120) return min + " minutes";
    return (Math.round(min / 6) / 10) + " hours";
  }
  $("window-label").textContent = windowLabel(windowMs(openedAt));

  // ---- chart: live samples {t, v (null: no number), s (status)}
  const samples = [];
  let current = { v: null, s: "connecting" };
  function sample() {
    const now = Date.now();
    samples.push({ t: now, v: current.v, s: current.s });
    while (samples.length && samples[0].t < now - windowMs(now) - 2000) samples.shift();
  }

  const canvas = $("chart");
  const ctx = canvas.getContext("2d");
  function draw() {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || 720, h = canvas.clientHeight || 220;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const css = getComputedStyle(document.body);
    const colLive = css.getPropertyValue("--live").trim() || "#0a7d32";
    const colStale = css.getPropertyValue("--stale").trim() || "#b36b00";
    const colGrid = css.getPropertyValue("--grid").trim() || "#ddd";
    const colText = css.getPropertyValue("--muted").trim() || "#555";
    const colHist = css.getPropertyValue("--history").trim() || "#3d6fd6";
    const padL = 56, padR = 10, padT = 10, padB = 24;
    const now = Date.now(), span = windowMs(now), t0 = now - span;
    let max = 0;
    for (const p of samples) if (p.v !== null && p.v > max) max = p.v;
    for (const b of buckets) if (b.t1 > t0) max = Math.max(max, b.avg, typeof b.peak === "number" ? b.peak : 0);
    max = Math.max(1, max);
    const step = Math.pow(10, Math.floor(Math.log10(max)));
    const top = Math.ceil((max * 1.1) / step) * step;
    const x = (t) => padL + ((t - t0) / span) * (w - padL - padR);
    const y = (v) => h - padB - (v / top) * (h - padT - padB);
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillStyle = colText;
    ctx.strokeStyle = colGrid;
    ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const v = (top * i) / 4, yy = Math.round(y(v)) + 0.5;
      ctx.beginPath(); ctx.moveTo(padL, yy); ctx.lineTo(w - padR, yy); ctx.stroke();
      ctx.textAlign = "right"; ctx.textBaseline = "middle";
      ctx.fillText(VC.number(Math.round(v)), padL - 6, yy);
    }
    ctx.textBaseline = "top";
    for (let m = 0; m <= 5; m++) {
      const ago = ((5 - m) * span) / 5;   // ms before now
      const label = m === 5 ? "now" : ago < 2 * 3600000 ? "-" + Math.round(ago / 60000) + " min"
        : "-" + (Math.round(ago / 360000) / 10) + " h";
      ctx.textAlign = m === 0 ? "left" : m === 5 ? "right" : "center";
      ctx.fillText(label, x(t0 + m * (span / 5)), h - padB + 6);
    }
    // History first: each closed bucket's average as a step (the peak as a
    // thin line above it), then the live samples drawn over it.
    if (buckets.length) {
      ctx.strokeStyle = colHist;
      ctx.lineJoin = "round";
      ctx.lineWidth = 1;
      ctx.globalAlpha = 0.45;
      ctx.beginPath();
      let prev = null;
      for (const b of buckets) {
        if (b.t1 <= t0 || typeof b.peak !== "number") { prev = null; continue; }
        const a = x(Math.max(b.t0, t0));
        if (prev === null || prev.t1 !== b.t0) ctx.moveTo(a, y(b.peak)); else ctx.lineTo(a, y(b.peak));
        ctx.lineTo(x(b.t1), y(b.peak));
        prev = b;
      }
      ctx.stroke();
      ctx.globalAlpha = 1;
      ctx.lineWidth = 2;
      ctx.beginPath();
      prev = null;
      for (const b of buckets) {
        if (b.t1 <= t0) { prev = null; continue; }
        const a = x(Math.max(b.t0, t0));
        // consecutive buckets join; a missing bucket leaves a gap
        if (prev === null || prev.t1 !== b.t0) ctx.moveTo(a, y(b.avg)); else ctx.lineTo(a, y(b.avg));
        ctx.lineTo(x(b.t1), y(b.avg));
        prev = b;
      }
      ctx.stroke();
    }
    // A step line, one path per run of samples of one colour; no line where
    // there was no number.
    ctx.lineWidth = 2;
    ctx.lineJoin = "round";
    let color = null;
    const flush = () => { if (color) ctx.stroke(); color = null; };
    for (let i = 1; i < samples.length; i++) {
      const a = samples[i - 1], b = samples[i];
      if (a.v === null || b.t < t0) { flush(); continue; }
      const c = a.s === "live" ? colLive : colStale;
      if (c !== color) {
        flush();
        color = c;
        ctx.strokeStyle = c;
        ctx.beginPath();
        ctx.moveTo(x(Math.max(a.t, t0)), y(a.v));
      }
      ctx.lineTo(x(b.t), y(a.v));
      if (b.v !== null && b.s === a.s) ctx.lineTo(x(b.t), y(b.v));
    }
    flush();
  }
  setInterval(() => { sample(); draw(); }, 1000);
  window.addEventListener("resize", draw);

  function show(msg) {
    const status = msg.status;
    if (typeof msg.viewers === "number") {
      countEl.textContent = VC.number(msg.viewers);
      countEl.dataset.viewers = String(msg.viewers);
      current = { v: msg.viewers, s: status };
    } else {
      countEl.textContent = "…";
      countEl.dataset.viewers = "";
      current = { v: null, s: status };
    }
    peakEl.textContent = typeof msg.peak === "number" ? "peak " + VC.number(msg.peak) : "";
    setStatus(status);
    sample();
    draw();
  }

  // ---- the socket
  const eps = VC.endpoints(config);
  let idx = 0;               // endpoint in use
  let delay = 0;             // next reconnect delay (ms)
  let reconnects = 0;
  let ws = null, pingTimer = null, lastRx = 0;

  function url(i) {
    return VC.withToken(eps[i].ws + "?stream=" + sid);
  }

  function connect() {
    const u = url(idx);
    endpointEl.textContent = "connecting to " + eps[idx].ws;
    document.body.dataset.endpoint = eps[idx].ws;
    let opened = false;
    ws = new WebSocket(u);
    ws.onopen = () => {
      opened = true;
      delay = 0;
      lastRx = Date.now();
      endpointEl.textContent = "connected to " + eps[idx].ws;
      document.body.dataset.connected = eps[idx].ws;
      // The client ping keeps the gateway's liveness check satisfied and
      // tells us when a socket went silent (a half-open connection).
      pingTimer = setInterval(() => {
        if (Date.now() - lastRx > 45000) { ws.close(); return; }
        try { ws.send('{"type":"ping"}'); } catch (e) { /* closing */ }
      }, 20000);
    };
    ws.onmessage = (ev) => {
      lastRx = Date.now();
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (msg.type === "count" && String(msg.stream) === sid) show(msg);
    };
    ws.onclose = (ev) => {
      clearInterval(pingTimer);
      ws = null;
      document.body.dataset.connected = "";
      if (ev.code === 4401) {
        setStatus("unauthorized", "not allowed");
        endpointEl.textContent = "refused: " + (ev.reason || "unauthorized");
        return; // another gateway would say the same
      }
      current = { v: null, s: "reconnecting" };
      setStatus("reconnecting");
      reconnects++;
      reconnectsEl.textContent = reconnects + (reconnects === 1 ? " reconnect" : " reconnects");
      document.body.dataset.reconnects = String(reconnects);
      // A socket that was up and dropped (gateway gone, 1001 shutdown) goes to
      // the next gateway at once; failed attempts back off (250 ms doubling to
      // 8 s, jittered) while going round the list.
      if (eps.length > 1) idx = (idx + 1) % eps.length;
      delay = opened ? 0 : Math.min(8000, Math.max(250, delay * 2));
      const wait = delay + Math.random() * (opened ? 300 : delay / 2);
      endpointEl.textContent = "reconnecting to " + eps[idx].ws + " in " + (wait / 1000).toFixed(1) + " s";
      setTimeout(connect, wait);
    };
  }
  setStatus("connecting");
  connect();
})();
