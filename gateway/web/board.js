// board.js: the "most watched now" board. Polls GET /api/ranking about once
// a tick (no page reload) and shows the streams in the order the gateway
// gives; each row links to that stream's page.
"use strict";

(async () => {
  const LIMIT = 50;
  const rows = document.getElementById("rows");
  const state = document.getElementById("state");
  const empty = document.getElementById("empty");
  const caption = document.getElementById("caption");
  const updated = document.getElementById("updated");
  const gatewayEl = document.getElementById("gateway");

  const cat = VC.params.get("category");
  const category = cat && /^[1-9][0-9]{0,17}$/.test(cat) ? cat : "";

  const config = await VC.loadConfig();
  let catalog = await VC.loadCatalog();
  // Streams go live all the time: their titles are read again now and then.
  setInterval(async () => {
    const c = await VC.loadCatalog();
    if (c.streams.size) catalog = c;
  }, 15000);
  const eps = VC.endpoints(config);
  gatewayEl.textContent = "gateway: " + (config.gateway || location.host);
  document.body.dataset.gateway = config.gateway || "";

  // Category tabs: from the catalog, plus the one asked for in the URL.
  const cats = new Map(catalog.categories);
  if (category && !cats.has(Number(category))) cats.set(Number(category), "Category " + category);
  const list = document.getElementById("categories");
  const all = document.getElementById("cat-all");
  all.href = VC.withToken("./");
  if (category) all.removeAttribute("aria-current");
  for (const [id, name] of [...cats.entries()].sort((a, b) => a[1].localeCompare(b[1]))) {
    const a = VC.el("a", { href: VC.withToken("./?category=" + id), "data-category": String(id), text: name });
    if (String(id) === category) a.setAttribute("aria-current", "page");
    list.append(VC.el("li", {}, a));
  }
  caption.textContent = category ? (cats.get(Number(category)) || "Category " + category) + ": live streams"
                                 : "All live streams";
  if (category) document.title = caption.textContent + " · vc";

  function streamName(id) {
    const s = catalog.streams.get(id);
    return s && s.title ? s.title : "Stream " + id;
  }
  function categoryName(id) {
    const s = catalog.streams.get(id);
    if (!s || !s.category) return "";
    return catalog.categories.get(s.category) || "Category " + s.category;
  }

  function render(streams) {
    const max = streams.reduce((m, s) => Math.max(m, s.viewers), 1);
    const frag = document.createDocumentFragment();
    streams.forEach((s, i) => {
      const link = VC.el("a", { href: VC.withToken("stream.html?stream=" + s.stream), text: streamName(s.stream) });
      const bar = VC.el("span", { class: "bar" });
      bar.style.width = Math.max(1, Math.round((100 * s.viewers) / max)) + "%";
      const tr = VC.el("tr", { "data-stream": String(s.stream), "data-viewers": String(s.viewers) },
        VC.el("td", { class: "num", text: String(i + 1) }),
        VC.el("td", {}, link, VC.el("span", { class: "id", text: " #" + s.stream })),
        VC.el("td", { text: categoryName(s.stream) }),
        VC.el("td", { class: "num viewers", text: VC.number(s.viewers) }),
        VC.el("td", { class: "barcol", "aria-hidden": "true" }, bar));
      frag.append(tr);
    });
    rows.replaceChildren(frag);
    empty.hidden = streams.length > 0;
  }

  const tick = Math.max(250, Math.min(config.tick_ms || 1000, 5000));
  let failures = 0;
  let polls = 0;
  async function poll() {
    try {
      const r = await VC.getJSON("/api/ranking?limit=" + LIMIT + (category ? "&category=" + category : ""), 4000);
      render(r.streams || []);
      failures = 0;
      polls++;
      document.body.dataset.polls = String(polls);
      state.textContent = "Live";
      state.className = "state live";
      updated.textContent = "updated " + new Date().toLocaleTimeString();
    } catch (e) {
      failures++;
      state.className = "state stale";
      state.textContent = "Cannot reach the gateway (" + e.message + "); the list below may be old. Retrying…";
      // A page can only ask its own origin: when its gateway is gone, move
      // the board to another gateway the config named.
      if (failures >= 3 && eps.length > 1) {
        const next = eps[1 + Math.floor(Math.random() * (eps.length - 1))];
        state.textContent = "This gateway is gone; moving to " + next.http + " …";
        location.replace(next.http + location.pathname + location.search);
        return;
      }
    }
    setTimeout(poll, tick);
  }
  poll();
})();
