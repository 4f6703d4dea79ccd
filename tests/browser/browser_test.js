// tests/browser/browser_test.js: the browser half of browser_test.sh.
// Chromium (the system's, headless) through playwright-core:
//   1. the board (/) lists the streams in the order of the truth, ties as sets;
//   2. the same for one category (/?category=C);
//   3. a stream page, loaded from gateway 1, reaches the true count + 1 (the
//      page itself is an anonymous viewer: one per connection), and its chart
//      starts with the stream's history (rollups the script seeded);
//   4. gateway 1 is killed (kill -9): the page shows "reconnecting", moves to
//      gateway 0 and shows the true count + 1 again.
// Screenshots of each step go to --shots. Exit 0 when every check held.
"use strict";
const { chromium } = require("playwright-core");
const { execSync } = require("child_process");
const fs = require("fs");
const path = require("path");

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
const truth = JSON.parse(fs.readFileSync(args.truth, "utf8")).streams;
const result = { checks: [], shots: [] };
let failed = 0;

function ok(cond, what, detail) {
  console.log((cond ? "ok - " : "not ok - ") + what + (detail ? ": " + detail : ""));
  result.checks.push({ ok: !!cond, what, detail: detail || "" });
  if (!cond) failed++;
  return cond;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Poll fn() (async, returns [done, observation]) until done or ms elapse.
async function until(ms, fn) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    const [done, obs] = await fn();
    last = obs;
    if (done) return [true, last];
    if (Date.now() > end) return [false, last];
    await sleep(250);
  }
}

// The rows (stream, viewers) against the truth: same length, the same count
// at every rank, and at each count the same set of streams (ties in any order).
function compareBoard(rows, want) {
  want = want.filter((t) => t.viewers > 0).sort((a, b) => b.viewers - a.viewers);
  if (rows.length !== want.length) return `${rows.length} rows, the truth has ${want.length} streams`;
  const groups = new Map();
  for (let i = 0; i < want.length; i++) {
    if (rows[i].viewers !== want[i].viewers)
      return `rank ${i + 1}: stream ${rows[i].stream} shows ${rows[i].viewers}, the truth's count at that rank is ${want[i].viewers}`;
    const g = groups.get(want[i].viewers) || { want: [], got: [] };
    g.want.push(want[i].stream);
    g.got.push(rows[i].stream);
    groups.set(want[i].viewers, g);
  }
  for (const [v, g] of groups) {
    const a = g.want.sort().join(","), b = g.got.sort().join(",");
    if (a !== b) return `streams with ${v} viewers: board ${b}, truth ${a}`;
  }
  return "";
}

async function shot(page, name) {
  const file = path.join(args.shots, name + ".png");
  await page.screenshot({ path: file, fullPage: true });
  result.shots.push(file);
  console.log("# screenshot " + file);
}

async function boardRows(page) {
  return page.$$eval("#rows tr", (trs) =>
    trs.map((tr) => ({ stream: Number(tr.dataset.stream), viewers: Number(tr.dataset.viewers) })));
}

async function checkBoard(page, url, want, label, shotName) {
  await page.goto(url);
  const [done, obs] = await until(20000, async () => {
    const rows = await boardRows(page);
    const diff = compareBoard(rows, want);
    return [diff === "" && rows.length > 0, { diff, rows }];
  });
  ok(done, `${label} lists the streams in the order of the truth`,
     done ? obs.rows.map((r) => `${r.stream}=${r.viewers}`).join(" ") : obs.diff);
  const names = await page.$$eval("#rows tr td:nth-child(2) a", (as) => as.map((a) => a.textContent));
  const titled = want.filter((t) => t.viewers > 0).every((t) => names.includes(t.title));
  ok(titled, `${label} names the streams by their titles`, names.slice(0, 3).join(" | ") + " ...");
  await shot(page, shotName);
}

async function pageState(page) {
  return page.evaluate(() => ({
    viewers: document.getElementById("count").dataset.viewers,
    status: document.body.dataset.status || "",
    connected: document.body.dataset.connected || "",
    reconnects: Number(document.body.dataset.reconnects || 0),
    states: window.__states || [],
    values: window.__values || [],
  }));
}

(async () => {
  const browser = await chromium.launch({
    executablePath: args.chromium,
    headless: true,
    // root in a container: no sandbox; small /dev/shm.
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  const hardStop = setTimeout(() => { console.log("not ok - the browser part ran out of time"); process.exit(1); }, 70000);
  try {
    const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("console", (m) => { if (m.type() === "error" && !/404/.test(m.text())) errors.push(m.text()); });

    // 1-2: the board, overall and for the top stream's category.
    await checkBoard(page, args.gw0 + "/", truth, "the board", "board");
    const top = truth.slice().sort((a, b) => b.viewers - a.viewers)[0];
    const cat = top.category;
    await checkBoard(page, `${args.gw0}/?category=${cat}`, truth.filter((t) => t.category === cat),
                     `the board of category ${cat}`, "board-category");

    // 3: a stream page from gateway 1.
    const want = top.viewers + 1;
    const ws1 = args.gw1.replace(/^http/, "ws") + "/ws", ws0 = args.gw0.replace(/^http/, "ws") + "/ws";
    await page.goto(`${args.gw1}/stream.html?stream=${top.stream}`);
    await page.evaluate(() => {
      // What the page showed, in order: its states and its counts.
      window.__states = [document.body.dataset.status];
      window.__values = [];
      new MutationObserver(() => {
        const s = document.body.dataset.status;
        if (window.__states[window.__states.length - 1] !== s) window.__states.push(s);
      }).observe(document.body, { attributes: true, attributeFilter: ["data-status"] });
      const count = document.getElementById("count");
      new MutationObserver(() => {
        const v = count.dataset.viewers;
        if (v && window.__values[window.__values.length - 1] !== v) window.__values.push(v);
      }).observe(count, { attributes: true, attributeFilter: ["data-viewers"] });
    });
    let [done, st] = await until(20000, async () => {
      const s = await pageState(page);
      return [s.status === "live" && s.viewers === String(want) && s.connected === ws1, s];
    });
    ok(done, `stream ${top.stream} on gateway 1 shows the true count ${top.viewers} + this page = ${want}`,
       JSON.stringify(st));
    const title = await page.textContent("h1");
    ok(title === top.title, "the stream page shows the stream's title from the database", title);
    const canvasDrawn = await page.evaluate(() => {
      const c = document.getElementById("chart");
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
      return n;
    });
    ok(canvasDrawn > 0, "the chart is drawn", canvasDrawn + " painted pixels");
    // The history (GET /api/streams/<id>/history, from the database's
    // reader) was drawn before the live counts: its buckets are known to the
    // page and the chart holds pixels of the history colour.
    const hist = await page.evaluate(() => {
      const c = document.getElementById("chart");
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      const col = getComputedStyle(document.body).getPropertyValue("--history").trim();
      const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(col);
      const rgb = m ? [1, 2, 3].map((i) => parseInt(m[i], 16)) : [0, 0, 0];
      let n = 0;
      for (let i = 0; i < d.length; i += 4)
        if (d[i + 3] > 200 && Math.abs(d[i] - rgb[0]) < 16 && Math.abs(d[i + 1] - rgb[1]) < 16 &&
            Math.abs(d[i + 2] - rgb[2]) < 16) n++;
      return { state: document.body.dataset.history, points: Number(document.body.dataset.historyPoints || 0),
               label: document.getElementById("window-label").textContent, pixels: n };
    });
    const wantHist = Number(args.history || 0);
    ok(hist.state === "ok" && hist.points >= wantHist && hist.pixels > 50,
       `the chart starts with the stream's history (>= ${wantHist} buckets from the reader) in its colour`,
       JSON.stringify(hist));
    await shot(page, "stream");

    // A board loaded from gateway 1 too: it can only fetch from its own
    // origin, so when gateway 1 is gone it must move itself to gateway 0.
    const board1 = await context.newPage();
    board1.on("pageerror", (e) => errors.push(e.message));
    await board1.goto(args.gw1 + "/");
    await board1.waitForSelector("#rows tr", { timeout: 15000 });

    // 4: kill -9 the gateway under the pages.
    const t0 = Date.now();
    execSync(args.kill, { stdio: "inherit" });
    [done, st] = await until(10000, async () => {
      const s = await pageState(page);
      return [s.reconnects >= 1 && s.connected === ws0, s];
    });
    ok(done, "the page reconnected to gateway 0 after gateway 1 was killed", JSON.stringify(st));
    ok(st.states.includes("reconnecting"), "the page showed that it was reconnecting", st.states.join(" -> "));
    await shot(page, "stream-reconnected");
    let moved;
    [done, moved] = await until(20000, async () => {
      const n = await board1.$$eval("#rows tr", (trs) => trs.length).catch(() => 0);
      const live = await board1.$eval("#state", (e) => e.className.includes("live")).catch(() => false);
      return [board1.url().startsWith(args.gw0 + "/") && n > 0 && live, { url: board1.url(), rows: n }];
    });
    ok(done, "the board loaded from gateway 1 moved itself to gateway 0 and shows the ranking", JSON.stringify(moved));
    await shot(board1, "board-moved");
    await board1.close();
    // Right after the reconnect the count may still include this page's
    // connection on the dead gateway (and, once the new join is applied, both):
    // the dead gateway's viewers leave the counts when the aggregator expires
    // it (VC_GATEWAY_TIMEOUT_MS, 8 s of event time here). Only a count shown
    // after that is the count "again".
    const expiry = Number(args["expiry-ms"] || 8000) + 4000;
    [done, st] = await until(expiry + 40000, async () => {
      const s = await pageState(page);
      return [Date.now() - t0 >= expiry && s.status === "live" && s.viewers === String(want) && s.connected === ws0, s];
    });
    ok(done, `after the dead gateway's viewers expired the page shows the true count + itself (${want}), ` +
             `${((Date.now() - t0) / 1000).toFixed(1)} s after the kill; it showed ${st.values.join(" -> ")}`,
       JSON.stringify(st));
    await shot(page, "stream-after-kill");

    // 5: Redis does not answer for a while (CLIENT PAUSE on every node): the
    // page marks the last count stale, then live again.
    if (args.pause) {
      execSync(args.pause, { stdio: "inherit" });
      [done, st] = await until(12000, async () => {
        const s = await pageState(page);
        return [s.status === "stale", s];
      });
      const badge = await page.textContent("#status");
      ok(done && badge === "stale", "while Redis does not answer the page shows the last count as stale",
         JSON.stringify({ badge, viewers: st.viewers }));
      await shot(page, "stream-stale");
      [done, st] = await until(30000, async () => {
        const s = await pageState(page);
        return [s.status === "live" && s.viewers === String(want), s];
      });
      ok(done, `live again with ${want} when Redis answers`, JSON.stringify({ status: st.status, viewers: st.viewers }));
    }

    // 6: with a viewer token in the address (?token=): a distinct user, one
    // more viewer; the links keep the token. A forged token: "not allowed".
    if (args.token) {
      const tp = await context.newPage();
      tp.on("pageerror", (e) => errors.push(e.message));
      await tp.goto(`${args.gw0}/stream.html?stream=${top.stream}&token=${args.token}`);
      [done, st] = await until(20000, async () => {
        const s = await pageState(tp);
        return [s.status === "live" && s.viewers === String(want + 1), s];
      });
      ok(done, `a page with a token counts as one more viewer (${want + 1})`,
         JSON.stringify({ status: st.status, viewers: st.viewers }));
      const back = await tp.getAttribute("#back", "href");
      ok(back.includes("token=" + args.token), "the page's links keep the token", back.slice(0, 40) + "...");
      await shot(tp, "stream-token");
      await tp.close();
      const bad = await context.newPage();
      await bad.goto(`${args.gw0}/stream.html?stream=${top.stream}&token=${args.token.slice(0, -4)}AAAA`);
      [done, st] = await until(10000, async () => {
        const s = await pageState(bad);
        return [s.status === "unauthorized", s];
      });
      ok(done, "a page with a forged token shows that the gateway refused it", st.status);
      await shot(bad, "stream-forged-token");
      await bad.close();
    }
    ok(errors.length === 0, "no script errors in the pages", errors.join(" | "));
    await page.close(); // the page leaves: the counts go back to the loadgen's truth
    await context.close();
  } catch (e) {
    ok(false, "the browser part", e.stack || String(e));
  } finally {
    clearTimeout(hardStop);
    await browser.close();
    result.failed = failed;
    if (args.result) fs.writeFileSync(args.result, JSON.stringify(result, null, 2));
  }
  process.exit(failed ? 1 : 0);
})();
