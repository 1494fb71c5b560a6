/* The camera grid: every camera of the prefeitura with its live status, filters and search.
 * Up to config.liveTileLimit cameras shown -> live players; more -> snapshots (refreshed when
 * new footage is recorded). Status badges change on ws/events, never by polling. */
(function () {
  "use strict";
  const { config, t, cameras, events, setBadge, LivePlayer, track, untrack } = window.GTV;
  const grid = document.getElementById("camera-grid");
  if (!grid) return;
  const form = document.getElementById("grid-filters");
  const search = document.getElementById("grid-search");
  const viewSelect = document.getElementById("grid-view");
  const countLine = document.getElementById("grid-count");
  const emptyLine = document.getElementById("grid-empty");
  const template = document.getElementById("tile-template");
  const tiles = new Map(); // camera id -> {li, player, thumbAt}
  const THUMB_REFRESH_MS = 120000;

  /* Filters live in the URL (?q=&status=&view=) so a reload or a shared link keeps them. */
  const params = new URLSearchParams(window.location.search);
  search.value = params.get("q") || "";
  const initialStatus = params.get("status") || "";
  for (const radio of form.elements.status) radio.checked = radio.value === initialStatus;
  if (params.get("view")) viewSelect.value = params.get("view");

  function filters() {
    return { q: search.value.trim(), status: form.elements.status.value, view: viewSelect.value || "auto" };
  }
  function saveFilters() {
    const f = filters();
    const query = new URLSearchParams();
    if (f.q) query.set("q", f.q);
    if (f.status) query.set("status", f.status);
    if (f.view !== "auto") query.set("view", f.view);
    const url = `${window.location.pathname}${query.toString() ? `?${query}` : ""}`;
    window.history.replaceState(null, "", url);
  }

  const fold = (text) => (text || "").normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
  function matches(camera, f) {
    if (f.status && camera.status !== f.status) return false;
    if (!f.q) return true;
    const haystack = fold(`${camera.name} ${camera.code} ${camera.address}`);
    return fold(f.q).split(/\s+/).every((word) => haystack.includes(word));
  }

  function buildTile(camera) {
    const li = template.content.firstElementChild.cloneNode(true);
    li.dataset.cameraId = camera.id;
    const url = cameras.pageUrl(camera.id);
    li.querySelector(".tile-media").href = url;
    li.querySelector(".tile-link").href = url;
    const entry = { li, player: null, thumbAt: 0 };
    const img = li.querySelector("img");
    const tag = li.querySelector(".mode-tag");
    img.addEventListener("error", () => {
      img.hidden = true;
      if (entry.player) return;
      li.querySelector(".tile-overlay").textContent = t("No image yet");
      tag.textContent = "";
    });
    img.addEventListener("load", () => {
      if (entry.player) return;
      li.querySelector(".tile-overlay").textContent = "";
      tag.dataset.mode = "recorded";
      tag.textContent = t("Snapshot");
    });
    tiles.set(camera.id, entry);
    return entry;
  }

  function fillTile(entry, camera) {
    const li = entry.li;
    li.dataset.status = camera.status;
    li.querySelector(".tile-link").textContent = camera.name;
    li.querySelector(".tile-link").title = camera.name;
    li.querySelector(".tile-code").textContent = camera.code;
    li.querySelector(".tile-address").textContent = camera.address || "";
    li.querySelector(".tile-address").title = camera.address || "";
    setBadge(li.querySelector(".badge"), camera.status);
  }

  function showLive(entry, camera) {
    const li = entry.li;
    li.querySelector("img").hidden = true;
    const video = li.querySelector("video");
    video.hidden = false;
    if (entry.player && entry.player.streamStatus === "DISABLED" && camera.enabled) {
      entry.player.start();  // re-enabled meanwhile
    }
    if (entry.player) return;
    if (!camera.enabled) {
      li.querySelector(".tile-overlay").textContent = t("This camera is disabled.");
      return;
    }
    entry.player = track(new LivePlayer(video, camera.id, {
      overlay: li.querySelector(".tile-overlay"),
      modeTag: li.querySelector(".mode-tag"),
      profile: "sub",  // the low-resolution substream (the main stream when there is none)
    }));
    entry.player.start();
  }

  function showThumb(entry, camera, force = false) {
    const li = entry.li;
    if (entry.player) { untrack(entry.player); entry.player = null; }
    const video = li.querySelector("video");
    video.hidden = true;
    const img = li.querySelector("img");
    const tag = li.querySelector(".mode-tag");
    if (!img.complete || img.hidden) tag.textContent = "";
    if (!camera.recording_enabled && !entry.thumbAt) {
      img.hidden = true;
      li.querySelector(".tile-overlay").textContent = t("No image yet");
      return;
    }
    const now = Date.now();
    if (force || !entry.thumbAt || now - entry.thumbAt > THUMB_REFRESH_MS) {
      entry.thumbAt = now;
      img.hidden = false;
      img.alt = camera.name;
      img.src = `/api/cameras/${camera.id}/snapshot.jpg?_=${now}`;
    }
  }

  function render() {
    const f = filters();
    const list = cameras.list();
    const counts = { all: list.length, online: 0, offline: 0, error: 0, disabled: 0 };
    const shown = [];
    for (const camera of list) {
      counts[camera.status] = (counts[camera.status] || 0) + 1;
      const entry = tiles.get(camera.id) || buildTile(camera);
      fillTile(entry, camera);
      const visible = matches(camera, f);
      entry.li.hidden = !visible;
      if (visible) shown.push(entry);
      grid.append(entry.li); // keeps name order
    }
    for (const [id, entry] of tiles) {
      if (!cameras.get(id)) {
        if (entry.player) untrack(entry.player);
        entry.li.remove();
        tiles.delete(id);
      }
    }
    for (const [key, value] of Object.entries(counts)) {
      const element = form.querySelector(`[data-count="${key}"]`);
      if (element) element.textContent = value;
    }
    const live = f.view === "live" || (f.view === "auto" && shown.length <= config.liveTileLimit);
    for (const entry of tiles.values()) {
      const camera = cameras.get(Number(entry.li.dataset.cameraId));
      if (entry.li.hidden) {
        if (entry.player) { untrack(entry.player); entry.player = null; }
      } else if (live) {
        showLive(entry, camera);
      } else {
        showThumb(entry, camera);
      }
    }
    countLine.textContent = list.length === 1
      ? t("Showing %(shown)s of 1 camera", { shown: shown.length })
      : t("Showing %(shown)s of %(total)s cameras", { shown: shown.length, total: list.length });
    emptyLine.hidden = shown.length > 0;
    emptyLine.textContent = list.length ? t("No cameras match the filters.") : t("This prefeitura has no cameras yet.");
    grid.setAttribute("aria-busy", "false");
  }

  let renderQueued = false;
  function renderSoon() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => { renderQueued = false; render(); });
  }

  form.addEventListener("submit", (event) => event.preventDefault());
  search.addEventListener("input", () => { saveFilters(); renderSoon(); });
  form.addEventListener("change", () => { saveFilters(); renderSoon(); });
  search.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && search.value) { search.value = ""; saveFilters(); renderSoon(); }
  });

  events.on("camera.updated", async (event) => {
    if (!cameras.get(event.camera_id) && !event.deleted) {
      if (!(await cameras.fetch(event.camera_id))) return;
    }
    renderSoon();
  });
  events.on("recording.segment", (event) => {
    const entry = tiles.get(Number(event.camera_id));
    const camera = cameras.get(event.camera_id);
    if (entry && camera && !entry.li.hidden && !entry.player) showThumb(entry, camera);
  });
  events.onReconnect(() => cameras.load().then(render));

  cameras.load().then(render, (error) => {
    grid.setAttribute("aria-busy", "false");
    emptyLine.hidden = false;
    emptyLine.textContent = error.message;
  });
})();
