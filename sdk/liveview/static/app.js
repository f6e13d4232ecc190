"use strict";
// leukedge live view: renders the Server-Sent Events of /events.  Everything shown
// comes from the stream; text goes in with textContent only (never as HTML).
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const GALLERY_MAX = 24;
  const token = new URLSearchParams(location.search).get("token");
  const query = token ? "?token=" + encodeURIComponent(token) : "";
  const $ = (id) => document.getElementById(id);
  let band = [0.4, 0.6];

  function pct(x) { return x === null || x === undefined ? "–" : (100 * x).toFixed(1) + "%"; }
  function kind(cell) {
    if (cell.p_all !== null && cell.p_all >= band[0] && cell.p_all < band[1]) return "ind";
    return cell.label === "all" ? "all" : "hem";
  }
  function setStatus(state, text) { const s = $("status"); s.dataset.state = state; s.textContent = text; }

  function renderFrame(msg) {
    const w = msg.width || 640, h = msg.height || 480;
    const svg = $("frame");
    svg.setAttribute("viewBox", "0 0 " + w + " " + h);
    for (const id of ["frame-bg", "frame-image"]) { $(id).setAttribute("width", w); $(id).setAttribute("height", h); }
    const img = $("frame-image");
    if (msg.image) img.setAttribute("href", msg.image); else img.removeAttribute("href");
    const g = $("boxes");
    g.replaceChildren();
    for (const c of msg.cells) {
      if (!c.bbox) continue;
      const k = kind(c);
      const box = document.createElementNS(SVG, "g");
      box.setAttribute("class", "cell " + k);
      box.dataset.cell = c.cell;
      box.dataset.label = c.label === null ? "" : c.label;
      box.dataset.pAll = c.p_all === null ? "" : c.p_all;
      const r = document.createElementNS(SVG, "rect");
      r.setAttribute("x", c.bbox[0]); r.setAttribute("y", c.bbox[1]);
      r.setAttribute("width", c.bbox[2]); r.setAttribute("height", c.bbox[3]);
      const t = document.createElementNS(SVG, "text");
      t.setAttribute("x", c.bbox[0]); t.setAttribute("y", Math.max(14, c.bbox[1] - 4));
      t.textContent = (c.cell_id === null || c.cell_id === undefined ? "" : "#" + c.cell_id + " ") +
        (c.label === "all" ? "ALL " : (c.label || "?") + " ") + (c.p_all === null ? "" : c.p_all.toFixed(2));
      box.append(r, t);
      g.append(box);
    }
    $("frame-index").textContent = msg.frame;
    $("frame-source").textContent = msg.source;
    $("frame-latency").textContent = msg.latency_ms.toFixed(0) + " ms";
  }

  function renderSummary(s) {
    band = s.indeterminate_band || band;
    $("model").textContent = s.model ? "model " + s.model : "";
    $("n-cells").textContent = s.cells;
    $("n-all").textContent = s.all;
    $("n-other").textContent = s.other;
    $("n-indeterminate").textContent = s.indeterminate;
    $("band").textContent = "[" + band[0] + ", " + band[1] + ")";
    $("n-frames").textContent = s.frames;
    // With tracking the counts are of unique cells; skipped frames are listed by reason.
    $("cells-kind").textContent = s.counting === "unique cells" ? "unique cells" : "cells classified";
    const skipped = Object.entries(s.skipped || {}).filter((kv) => kv[1] > 0);
    $("n-skipped").textContent = skipped.length ? skipped.map((kv) => kv[1] + " " + kv[0]).join(", ") : "–";
    $("all-fraction").textContent = pct(s.all_fraction);
    $("all-ci").textContent = s.all_ci95 ? "95% CI " + pct(s.all_ci95[0]) + " – " + pct(s.all_ci95[1]) : "95% CI –";
    $("verdict").textContent = s.verdict;
    $("verdict").className = "verdict" + (s.adequate ? " adequate" : "");
    $("fps").textContent = s.fps.toFixed(1);
    $("latency").textContent = s.latency_p50_ms === null ? "–" : s.latency_p50_ms.toFixed(0) + " / " + s.latency_p99_ms.toFixed(0) + " ms";
  }

  function addFlagged(items) {
    const gal = $("gallery");
    for (const it of items) {
      const key = it.frame + ":" + it.cell;
      if (gal.querySelector('figure[data-key="' + key + '"]')) continue;  // a snapshot may repeat an item
      const fig = document.createElement("figure");
      fig.dataset.key = key;
      fig.className = kind(it);
      fig.dataset.frame = it.frame; fig.dataset.cell = it.cell;
      const img = document.createElement("img");
      img.src = it.image; img.alt = "frame " + it.frame + " cell " + it.cell;
      const cap = document.createElement("figcaption");
      cap.textContent = "p " + it.p_all.toFixed(2) + " · f" + it.frame + " c" + it.cell;
      fig.append(img, cap);
      gal.prepend(fig);
    }
    while (gal.children.length > GALLERY_MAX) gal.lastElementChild.remove();
  }

  const es = new EventSource("events" + query);
  es.onopen = () => setStatus("live", "live");
  es.onerror = () => setStatus("error", "disconnected – retrying");
  es.addEventListener("result", (ev) => { const m = JSON.parse(ev.data); renderSummary(m.summary); renderFrame(m); });
  es.addEventListener("summary", (ev) => renderSummary(JSON.parse(ev.data)));
  es.addEventListener("flagged", (ev) => addFlagged(JSON.parse(ev.data).items));
  es.addEventListener("end", () => { setStatus("", "run ended"); es.close(); });
})();
