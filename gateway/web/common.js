// common.js: what the board and the stream page share: the gateway's
// /api/config, the token from the URL, small DOM helpers.
"use strict";

const VC = (() => {
  const params = new URLSearchParams(location.search);

  // A viewer token (JWT) given as ?token=...; kept in every link and socket URL.
  const token = params.get("token") || "";

  function withToken(url) {
    if (!token) return url;
    return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
  }

  // fetch with a bound, JSON answer or an Error.
  async function getJSON(path, ms) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), ms || 4000);
    try {
      const res = await fetch(path, { signal: ctl.signal, cache: "no-store" });
      if (!res.ok) throw new Error(path + ": HTTP " + res.status);
      return await res.json();
    } finally {
      clearTimeout(timer);
    }
  }

  // The page's own gateway first, then the others the gateway lists
  // (--peer-ws). Each entry: {ws: "ws://host:port/ws", http: "http://host:port"}.
  function endpoints(config) {
    const own = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
    const list = [own];
    for (const u of (config && config.ws) || []) if (!list.includes(u)) list.push(u);
    return list.map((ws) => ({ ws, http: ws.replace(/^ws/, "http").replace(/\/ws$/, "") }));
  }

  async function loadConfig() {
    try {
      return await getJSON("/api/config", 3000);
    } catch (e) {
      return { gateway: "", anonymous: false, tick_ms: 1000, ws: [] };
    }
  }

  // The catalog (titles, categories) is optional: GET /api/catalog when the
  // gateway offers it; without it streams show as "Stream <id>".
  async function loadCatalog() {
    try {
      const c = await getJSON("/api/catalog", 3000);
      const streams = new Map();
      const categories = new Map();
      for (const k of c.categories || []) categories.set(k.id, k.name);
      for (const s of c.streams || []) {
        streams.set(s.stream, s);
        // A category whose name the gateway could not read still gets a tab.
        if (s.category && !categories.has(s.category)) categories.set(s.category, "Category " + s.category);
      }
      return { streams, categories };
    } catch (e) {
      return { streams: new Map(), categories: new Map() };
    }
  }

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  }

  const fmt = new Intl.NumberFormat("en");
  function number(n) {
    return fmt.format(n);
  }

  return { params, token, withToken, getJSON, endpoints, loadConfig, loadCatalog, el, number };
})();
