/* The LPR page: live reads with crops (lpr.read on ws/events), plate search and the
 * watchlist (/api/lpr/). */
(function () {
  "use strict";
  const { config, t, api, apiAll, events, cameras, time, announce } = window.GTV;
  const live = document.getElementById("lpr-live");
  if (!live) return;
  const results = document.getElementById("lpr-results");
  const searchForm = document.getElementById("lpr-search-form");
  const searchStatus = document.getElementById("lpr-search-status");
  const watchlist = document.getElementById("lpr-watchlist");
  const watchForm = document.getElementById("lpr-watch-form");
  const watchStatus = document.getElementById("lpr-watch-status");
  const cameraSelect = document.getElementById("lpr-camera");
  const LIVE_MAX = 30;

  function cameraName(id) {
    const camera = cameras.get(id);
    return camera ? camera.name : `#${id}`;
  }
  function plateText(read) {
    return read.format === "antiga" ? `${read.plate.slice(0, 3)}-${read.plate.slice(3)}` : read.plate;
  }
  function cropImage(read) {
    const img = document.createElement("img");
    img.className = "lpr-crop";
    img.loading = "lazy";
    img.alt = t("Crop of plate %(plate)s", { plate: read.plate });
    img.src = `/api/lpr/reads/${read.id}/crop.jpg`;
    return img;
  }
  function playbackLink(read) {
    const link = document.createElement("a");
    link.href = `${cameras.pageUrl(read.camera_id)}?at=${encodeURIComponent(time.iso(read.at))}`;
    link.textContent = t("Playback");
    return link;
  }

  /* ------------------------------------------------------------ live feed */
  function addLive(read) {
    const li = document.createElement("li");
    li.className = "lpr-read";
    const plate = document.createElement("strong");
    plate.className = "plate";
    plate.textContent = plateText(read);
    const info = document.createElement("span");
    info.className = "muted";
    info.textContent = ` ${time.time(read.at)} · ${cameraName(read.camera_id)} · `;
    li.append(cropImage(read), plate, info, playbackLink(read));
    live.prepend(li);
    while (live.children.length > LIVE_MAX) live.lastElementChild.remove();
  }
  function showEmptyLive() {
    if (live.children.length) return;
    const li = document.createElement("li");
    li.className = "empty-item muted";
    li.textContent = t("No reads yet.");
    live.append(li);
  }
  events.on("lpr.read", (event) => {
    const empty = live.querySelector(".empty-item");
    if (empty) empty.remove();
    addLive({ id: event.read_id, camera_id: event.camera_id, plate: event.plate, format: event.format, at: event.at });
  });

  /* ------------------------------------------------------------ search */
  function row(read) {
    const tr = document.createElement("tr");
    const cells = [time.dateTime(read.at), plateText(read), cameraName(read.camera_id),
      `${Math.round(read.confidence * 100)}%`];
    for (const text of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    const crop = document.createElement("td");
    crop.append(cropImage(read));
    const link = document.createElement("td");
    link.append(playbackLink(read));
    tr.append(crop, link);
    return tr;
  }
  async function search(event) {
    if (event) event.preventDefault();
    const query = new URLSearchParams({ page_size: "100" });
    const plate = searchForm.plate.value.trim();
    if (plate) query.set(searchForm.similar.checked ? "similar" : "plate", plate);
    if (cameraSelect.value) query.set("camera_id", cameraSelect.value);
    const start = time.parseInput(searchForm.start.value);
    const end = time.parseInput(searchForm.end.value);
    if (start) query.set("start", time.iso(start));
    if (end) query.set("end", time.iso(end));
    try {
      const page = await api(`/api/lpr/reads/?${query}`);
      results.replaceChildren(...page.results.map(row));
      searchStatus.textContent = page.count ? t("%(count)s reads", { count: page.count }) : t("No reads match the search.");
      announce(searchStatus.textContent);
      return page.results;
    } catch (error) {
      searchStatus.textContent = error.message;
      return [];
    }
  }
  searchForm.addEventListener("submit", search);

  /* ------------------------------------------------------------ watchlist */
  function watchRow(entry) {
    const tr = document.createElement("tr");
    const expires = entry.expires_at ? time.dateTime(entry.expires_at) : t("never");
    for (const text of [entry.plate, entry.reason, entry.active ? t("Active") : t("Inactive"), expires]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    const actions = document.createElement("td");
    if (config.lprCanEdit) {
      const toggle = document.createElement("button");
      toggle.type = "button";
      toggle.className = "button small";
      toggle.textContent = entry.active ? t("Deactivate") : t("Activate");
      toggle.addEventListener("click", async () => {
        await api(`/api/lpr/watchlist/${entry.id}/`, { method: "PATCH", body: { active: !entry.active } });
        loadWatchlist();
      });
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "button small danger";
      remove.textContent = t("Remove");
      remove.addEventListener("click", async () => {
        if (!window.confirm(t("Remove %(plate)s from the watchlist?", { plate: entry.plate }))) return;
        await api(`/api/lpr/watchlist/${entry.id}/`, { method: "DELETE" });
        loadWatchlist();
      });
      actions.append(toggle, " ", remove);
    }
    tr.append(actions);
    return tr;
  }
  async function loadWatchlist() {
    const query = new URLSearchParams({ page_size: "500" });
    if (config.prefeitura) query.set("prefeitura", config.prefeitura);
    const entries = await apiAll(`/api/lpr/watchlist/?${query}`);
    if (!entries.length) {
      const tr = document.createElement("tr");
      const td = document.createElement("td");
      td.colSpan = 5;
      td.className = "muted";
      td.textContent = t("The watchlist is empty.");
      tr.append(td);
      watchlist.replaceChildren(tr);
    } else {
      watchlist.replaceChildren(...entries.map(watchRow));
    }
  }
  if (watchForm) {
    watchForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { plate: watchForm.plate.value.trim(), reason: watchForm.reason.value.trim() };
      if (config.prefeitura) body.prefeitura = config.prefeitura;
      const expires = time.parseInput(watchForm.expires_at.value);
      if (expires) body.expires_at = time.iso(expires);
      try {
        await api("/api/lpr/watchlist/", { method: "POST", body });
        watchForm.reset();
        watchStatus.textContent = t("Plate added to the watchlist.");
        loadWatchlist();
      } catch (error) {
        watchStatus.textContent = error.message;
      }
    });
  }

  /* ------------------------------------------------------------ start */
  cameras.load().then((list) => {
    for (const camera of list) {
      const option = document.createElement("option");
      option.value = camera.id;
      option.textContent = `${camera.name} (${camera.code})`;
      cameraSelect.append(option);
    }
    const initial = new URLSearchParams(window.location.search).get("plate");
    if (initial) searchForm.plate.value = initial;
    return search();
  }).then((reads) => {
    if (!live.children.length) [...reads].reverse().slice(-10).forEach(addLive);
    showEmptyLive();
  });
  loadWatchlist();
})();
