/* The camera page: live player and metrics, the day's timeline (recorded spans and holes, live
 * as segments arrive), playback from any moment, snapshot of the current position and clip
 * export with progress from ws/events. */
(function () {
  "use strict";
  const { config, t, api, ApiError, events, time, setBadge, announce, LivePlayer, track, untrack } = window.GTV;
  const camera = config.camera;
  const $ = (selector) => document.querySelector(selector);
  const video = $("#player-video");
  const overlay = $("#player-overlay");
  const modeTag = $("#player-mode");
  const positionLine = $("#player-position");
  const goLiveButton = $("#go-live");
  const snapshotLink = $("#snapshot-link");
  const statusBadge = $("#camera-status");
  const PLAYBACK_WINDOW_MS = 3600 * 1000;
  const GAP_TOLERANCE_MS = 1500;

  setBadge(statusBadge, camera.status);
  events.on("camera.updated", (event) => {
    if (event.camera_id === camera.id && !event.deleted) setBadge(statusBadge, event.status);
  });

  /* ------------------------------------------------------------ justified access (LGPD) */
  // Playback and exports carry a reason where the prefeitura requires one: asked once per
  // browser session and camera, then reused (sessionStorage).
  const reasonKey = `gtv.access-reason.${camera.id}`;
  const reasonDialog = $("#reason-dialog");

  function storedReason() {
    try { return JSON.parse(sessionStorage.getItem(reasonKey) || "null"); } catch (error) { return null; }
  }

  function forgetReason() { sessionStorage.removeItem(reasonKey); }

  /* {reason, protocol} to send, {} when none is needed, null when the user cancelled. */
  function accessReason() {
    const stored = storedReason();
    if (stored && stored.reason) return Promise.resolve(stored);
    if (!camera.reason_required) return Promise.resolve({});
    return new Promise((resolve) => {
      const text = $("#reason-text");
      const protocol = $("#reason-protocol");
      const error = $("#reason-error");
      error.textContent = "";
      const finish = (value) => {
        $("#reason-form").onsubmit = null;
        $("#reason-cancel").onclick = null;
        reasonDialog.oncancel = null;
        if (reasonDialog.open) reasonDialog.close();
        resolve(value);
      };
      $("#reason-form").onsubmit = (event) => {
        event.preventDefault();
        const reason = text.value.trim();
        if (!reason) {
          error.textContent = t("Give the reason for accessing this recorded footage.");
          text.focus();
          return;
        }
        const value = { reason, protocol: protocol.value.trim() };
        sessionStorage.setItem(reasonKey, JSON.stringify(value));
        finish(value);
      };
      $("#reason-cancel").onclick = () => finish(null);
      reasonDialog.oncancel = () => finish(null);
      reasonDialog.showModal();
      text.focus();
    });
  }

  function reasonQuery(justification) {
    let query = "";
    if (justification.reason) query += `&reason=${encodeURIComponent(justification.reason)}`;
    if (justification.protocol) query += `&protocol=${encodeURIComponent(justification.protocol)}`;
    return query;
  }

  /* ------------------------------------------------------------ live and metrics */
  let live = null;
  let playback = null; // {hls, start, end}
  let metricsStreamId = null;

  function startLive() {
    stopPlayback();
    goLiveButton.hidden = true;
    live = track(new LivePlayer(video, camera.id, {
      overlay, modeTag, onChange: onLiveChange, profile: "main",  // full resolution here
    }));
    live.start();
    showPosition();
  }

  function onLiveChange(player) {
    if (player.streamId && player.streamId !== metricsStreamId) loadMetrics(player.streamId);
    setMetric("player", player.protocol || "–");
  }

  async function loadMetrics(streamId) {
    metricsStreamId = streamId;
    try {
      showMetrics(await api(`/api/streams/${streamId}/metrics`));
    } catch (error) { /* shown on the next stream.metrics event */ }
  }

  function setMetric(name, text) {
    const element = document.querySelector(`[data-metric="${name}"]`);
    if (element) element.textContent = text;
  }

  function showMetrics(m) {
    setMetric("fps", m.fps == null ? "–" : `${time.number(m.fps, 1)} ${t("frames/s")}`);
    setMetric("bitrate_kbps", m.bitrate_kbps == null ? "–" : `${time.number(m.bitrate_kbps, 0)} ${t("kbit/s")}`);
    setMetric("uptime_s", time.duration(m.uptime_s));
    setMetric("readers", m.readers == null ? "–" : time.number(m.readers, 0));
    setMetric("last_frame_at", m.last_frame_at ? time.time(m.last_frame_at) : "–");
    setMetric("latency_ms", m.latency_ms == null ? "–" : `${time.number(m.latency_ms, 0)} ${t("ms")}`);
    setMetric("bytes_received", m.bytes_received == null ? "–" : time.bytes(m.bytes_received));
  }

  events.on("stream.metrics", (event) => {
    if (event.camera_id === camera.id) showMetrics(event);
  });
  events.on("stream.status", (event) => {
    if (event.camera_id === camera.id && event.status !== "RUNNING") {
      showMetrics({});
      setMetric("player", live && live.protocol ? live.protocol : "–");
    }
  });

  /* ------------------------------------------------------------ position and snapshot */
  function currentPlayhead() {
    if (playback && playback.hls && playback.hls.playingDate) return playback.hls.playingDate.getTime();
    return null;
  }

  function showPosition() {
    if (playback) {
      const at = currentPlayhead();
      positionLine.textContent = at
        ? `${t("Recorded")} · ${time.dateTime(at)}`
        : t("Playing recording from %(time)s", { time: time.dateTime(playback.start) });
    } else {
      const liveDate = live && live.hls && live.hls.playingDate;
      positionLine.textContent = liveDate ? `${t("Live")} · ${time.time(liveDate)}` : t("Live");
    }
  }

  function snapshotTarget() {
    const at = playback ? currentPlayhead() || playback.start : null;
    return at;
  }

  function prepareSnapshot() {
    const at = snapshotTarget();
    const query = at ? `?at=${encodeURIComponent(time.iso(Math.floor(at)))}` : "";
    snapshotLink.href = `/api/cameras/${camera.id}/snapshot.jpg${query}`;
    snapshotLink.download = `${camera.code}-${time.stamp(at || Date.now())}.jpg`;
    snapshotLink.title = at ? t("Snapshot of %(time)s", { time: time.dateTime(at) }) : t("Latest snapshot");
  }

  snapshotLink.addEventListener("pointerenter", prepareSnapshot);
  snapshotLink.addEventListener("focus", prepareSnapshot);
  function saveBlob(blob, name) {
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = name;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  }

  function captureScreen(name) {
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    canvas.toBlob((blob) => saveBlob(blob, name), "image/jpeg", 0.92);
  }

  /* The recorded frame of the position (audited by the API); live and not recorded (or
   * nothing recorded yet): the frame on screen. */
  snapshotLink.addEventListener("click", async (event) => {
    event.preventDefault();
    prepareSnapshot();
    const name = snapshotLink.download;
    const onScreen = !playback && video.videoWidth > 0;
    if (onScreen && !camera.recording_enabled) { captureScreen(name); return; }
    try {
      const response = await fetch(snapshotLink.href, { credentials: "same-origin" });
      if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
      saveBlob(await response.blob(), name);
    } catch (error) {
      if (onScreen) { captureScreen(name); return; }
      announce(error.message);
      positionLine.textContent = error.message;
    }
  });
  prepareSnapshot();

  video.addEventListener("timeupdate", () => {
    showPosition();
    if (playback) {
      const at = currentPlayhead();
      if (at) { timeline.playhead = at; timeline.follow(at); timeline.render(); }
    }
  });

  /* ------------------------------------------------------------ playback */
  function stopPlayback() {
    if (!playback) return;
    if (playback.hls) playback.hls.destroy();
    playback = null;
    timeline.playhead = null;
    video.removeAttribute("src");
    video.load();
  }

  async function playFrom(from) {
    const next = timeline.spans.find(([, end]) => end > from + 500);
    if (!next) {
      positionLine.textContent = t("Nothing was recorded from this moment on.");
      announce(positionLine.textContent);
      return;
    }
    const justification = await accessReason();
    if (justification === null) return;  // no reason given: stay where we are
    const start = Math.max(from, next[0]);
    const end = Math.max(Math.min(start + PLAYBACK_WINDOW_MS, Date.now()), start + 1000);
    if (live) { untrack(live); live = null; }
    stopPlayback();
    overlay.textContent = t("Connecting…");
    modeTag.dataset.mode = "recorded";
    modeTag.textContent = t("Recorded");
    goLiveButton.hidden = false;
    setMetric("player", "HLS (VOD)");
    const url = `/api/cameras/${camera.id}/playback.m3u8?start=${encodeURIComponent(time.iso(start))}` +
      `&end=${encodeURIComponent(time.iso(end))}` + reasonQuery(justification);
    const session = { hls: null, start, end };
    playback = session;
    timeline.playhead = start;
    timeline.render();
    announce(t("Playing recording from %(time)s", { time: time.dateTime(start) }));
    showPosition();
    if (!(window.Hls && window.Hls.isSupported())) {
      video.src = url;  // native HLS (Safari): starts at the first recorded segment
      video.play().catch(() => {});
      overlay.textContent = "";
      return;
    }
    const Hls = window.Hls;
    const hls = new Hls({ autoStartLoad: false, maxBufferLength: 30, enableWorker: true });
    session.hls = hls;
    let started = false;
    let recovered = false;
    hls.on(Hls.Events.LEVEL_LOADED, (_name, data) => {
      if (started || playback !== session) return;
      started = true;
      let offset = 0;
      for (const fragment of data.details.fragments) {
        const pdt = fragment.programDateTime;
        if (pdt != null && pdt <= start && start < pdt + fragment.duration * 1000) {
          offset = fragment.start + (start - pdt) / 1000;
          break;
        }
      }
      hls.startLoad(offset);
    });
    hls.on(Hls.Events.MANIFEST_PARSED, () => { video.play().catch(() => {}); });
    hls.on(Hls.Events.FRAG_BUFFERED, () => { if (playback === session) overlay.textContent = ""; });
    hls.on(Hls.Events.ERROR, (_name, data) => {
      if (!data.fatal || playback !== session) return;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR && !recovered) {
        recovered = true;
        hls.recoverMediaError();
        return;
      }
      const missing = data.response && data.response.code === 404;
      overlay.textContent = missing ? t("Nothing was recorded from this moment on.") : t("The recording could not be played.");
      announce(overlay.textContent);
      hls.destroy();
      session.hls = null;
    });
    hls.loadSource(url);
    hls.attachMedia(video);
  }

  video.addEventListener("ended", () => {
    if (!playback) return;
    const lastEnd = timeline.spans.length ? timeline.spans[timeline.spans.length - 1][1] : 0;
    if (playback.end < lastEnd - 1000) playFrom(playback.end);  // more footage was recorded since
  });
  goLiveButton.addEventListener("click", () => { startLive(); announce(t("Live")); });

  /* ------------------------------------------------------------ timeline */
  const bar = $("#timeline");
  const spansLayer = bar.querySelector(".tl-spans");
  const locksLayer = bar.querySelector(".tl-locks");
  const cursorMark = bar.querySelector(".tl-cursor");
  const playheadMark = bar.querySelector(".tl-playhead");
  const selectionMark = bar.querySelector(".tl-selection");
  const futureMark = bar.querySelector(".tl-future");
  const ticks = $("#timeline-ticks");
  const summary = $("#timeline-summary");
  const dayInput = $("#timeline-day");
  const zoomSelect = $("#timeline-zoom");
  const hover = document.createElement("span");
  hover.className = "tl-hover";
  hover.hidden = true;
  bar.append(hover);
  const STEPS = { 86400: 600, 21600: 120, 3600: 30, 900: 5, 300: 1 }; // arrow-key step (s)
  const TICKS = [15, 30, 60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600];

  const timeline = {
    day: time.dayKey(Date.now()),
    dayStart: 0,
    dayEnd: 0,
    zoom: 3600,
    winStart: 0,
    spans: [],
    cursor: Date.now(),
    playhead: null,
    selection: null,
    loadToken: 0,

    get winEnd() { return this.winStart + this.zoom * 1000; },
    clamp(ms) { return Math.min(Math.max(ms, this.dayStart), this.dayEnd); },
    percent(ms) { return ((ms - this.winStart) / (this.winEnd - this.winStart)) * 100; },
    center(ms) {
      const span = this.zoom * 1000;
      this.winStart = Math.min(Math.max(ms - span / 2, this.dayStart), Math.max(this.dayStart, this.dayEnd - span));
    },
    follow(ms) { if (ms < this.winStart || ms > this.winEnd) this.center(ms); },
    isRecorded(ms) { return this.spans.some(([start, end]) => start <= ms && ms < end); },

    /** Show a day: its recorded spans from the API. ``keepView`` keeps cursor and window. */
    async load(day, keepView = false) {
      keepView = keepView && day === this.day && this.dayStart > 0;
      this.day = day;
      dayInput.value = day;
      dayInput.max = time.dayKey(Date.now());
      [this.dayStart, this.dayEnd] = time.dayBounds(day).map((d) => d.getTime());
      const today = day === time.dayKey(Date.now());
      if (!keepView) {
        this.cursor = today ? Date.now() - 5000 : this.dayStart + 12 * 3600 * 1000;
        this.spans = [];
        this.center(today ? Date.now() - this.zoom * 1000 * 0.4 : this.cursor);
      }
      this.render();
      const token = ++this.loadToken;
      const query = `start=${encodeURIComponent(time.iso(this.dayStart))}&end=${encodeURIComponent(time.iso(this.dayEnd))}`;
      try {
        const data = await api(`/api/cameras/${camera.id}/timeline?${query}`);
        if (token !== this.loadToken) return;
        this.spans = [];
        for (const span of data.spans || []) this.merge(Date.parse(span.start), Date.parse(span.end));
        this.locks = (data.locks || []).map((lock) => ({
          start: Date.parse(lock.start), end: Date.parse(lock.end), reason: lock.reason,
        }));
        if (!today && !keepView && this.spans.length) this.cursor = this.spans[0][0];
        if (!today && !keepView) this.center(this.cursor);
      } catch (error) {
        if (token === this.loadToken) summary.textContent = error.message;
        return;
      }
      this.render();
    },

    /** Add [start, end) to the recorded spans, merging neighbours (live segments). */
    merge(start, end) {
      start = Math.max(start, this.dayStart);
      end = Math.min(end, this.dayEnd);
      if (!(end > start)) return;
      const merged = [];
      let current = [start, end];
      for (const span of this.spans) {
        if (span[1] + GAP_TOLERANCE_MS < current[0] || current[1] + GAP_TOLERANCE_MS < span[0]) merged.push(span);
        else current = [Math.min(span[0], current[0]), Math.max(span[1], current[1])];
      }
      merged.push(current);
      merged.sort((a, b) => a[0] - b[0]);
      this.spans = merged;
    },

    render() {
      const fragment = document.createDocumentFragment();
      let recorded = 0;
      for (const [start, end] of this.spans) {
        recorded += end - start;
        if (end <= this.winStart || start >= this.winEnd) continue;
        const left = this.percent(Math.max(start, this.winStart));
        const right = this.percent(Math.min(end, this.winEnd));
        const element = document.createElement("div");
        element.className = "tl-span";
        element.style.left = `${left}%`;
        element.style.width = `${right - left}%`;
        element.dataset.start = new Date(start).toISOString();
        element.dataset.end = new Date(end).toISOString();
        element.title = `${time.time(start)} – ${time.time(end)}`;
        fragment.append(element);
      }
      spansLayer.replaceChildren(fragment);
      const locks = document.createDocumentFragment();
      for (const lock of this.locks || []) {  // evidence locks: kept from retention
        if (lock.end <= this.winStart || lock.start >= this.winEnd) continue;
        const left = this.percent(Math.max(lock.start, this.winStart));
        const right = this.percent(Math.min(lock.end, this.winEnd));
        const element = document.createElement("div");
        element.className = "tl-lock";
        element.style.left = `${left}%`;
        element.style.width = `${right - left}%`;
        element.title = t("Evidence lock: %(reason)s", { reason: lock.reason });
        locks.append(element);
      }
      locksLayer.replaceChildren(locks);
      const now = Date.now();
      futureMark.hidden = now >= this.winEnd;
      futureMark.style.left = `${Math.max(0, this.percent(now))}%`;
      this.place(cursorMark, this.cursor);
      this.place(playheadMark, this.playhead);
      if (this.selection) {
        const left = this.percent(Math.max(this.selection[0], this.winStart));
        const right = this.percent(Math.min(this.selection[1], this.winEnd));
        selectionMark.hidden = right <= 0 || left >= 100;
        selectionMark.style.left = `${left}%`;
        selectionMark.style.width = `${Math.max(0, right - left)}%`;
      } else {
        selectionMark.hidden = true;
      }
      this.renderTicks();
      bar.setAttribute("aria-valuemax", String(Math.round((this.dayEnd - this.dayStart) / 1000)));
      bar.setAttribute("aria-valuenow", String(Math.round((this.cursor - this.dayStart) / 1000)));
      bar.setAttribute("aria-valuetext",
        `${time.dateTime(this.cursor)} · ${this.isRecorded(this.cursor) ? t("Recorded") : t("No recording")}`);
      summary.textContent = t("Timeline of %(day)s: %(recorded)s recorded",
        { day: time.longDate(this.dayStart + 12 * 3600 * 1000), recorded: time.duration(recorded / 1000) });
      zoomSelect.value = String(this.zoom);
    },

    place(element, ms) {
      const visible = ms != null && ms >= this.winStart && ms <= this.winEnd;
      element.hidden = !visible;
      if (visible) element.style.left = `${this.percent(ms)}%`;
    },

    renderTicks() {
      const width = bar.clientWidth || 600;
      const interval = TICKS.find((s) => (s / this.zoom) * width >= (s < 60 ? 80 : 64)) || TICKS[TICKS.length - 1];
      const step = interval * 1000;
      const items = [];
      for (let ms = this.dayStart + Math.ceil((this.winStart - this.dayStart) / step) * step; ms <= this.winEnd; ms += step) {
        const span = document.createElement("span");
        span.style.left = `${this.percent(ms)}%`;
        span.textContent = interval < 60 ? time.time(ms) : time.hourMinute(ms);
        items.push(span);
      }
      ticks.replaceChildren(...items);
    },

    at(clientX) {
      const rect = bar.getBoundingClientRect();
      const ratio = Math.min(Math.max((clientX - rect.left) / rect.width, 0), 1);
      return this.winStart + ratio * (this.winEnd - this.winStart);
    },

    moveCursor(ms) {
      this.cursor = this.clamp(ms);
      this.follow(this.cursor);
      this.render();
    },

    setSelection(a, b, fillInputs = true) {
      this.selection = [Math.min(a, b), Math.max(a, b)];
      if (fillInputs) {
        startInput.value = time.inputValue(this.selection[0]);
        endInput.value = time.inputValue(this.selection[1]);
      }
      this.render();
    },
  };

  let drag = null;
  bar.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    bar.setPointerCapture(event.pointerId);
    drag = { x: event.clientX, from: timeline.at(event.clientX), moved: false };
    bar.focus({ preventScroll: true });
    event.preventDefault();
  });
  bar.addEventListener("pointermove", (event) => {
    const at = timeline.at(event.clientX);
    hover.hidden = false;
    hover.style.left = `${timeline.percent(at)}%`;
    hover.textContent = time.time(at);
    if (!drag) return;
    if (Math.abs(event.clientX - drag.x) > 5) drag.moved = true;
    if (drag.moved) timeline.setSelection(drag.from, at);
  });
  bar.addEventListener("pointerleave", () => { hover.hidden = true; });
  bar.addEventListener("pointerup", (event) => {
    if (!drag) return;
    const at = timeline.at(event.clientX);
    if (drag.moved) {
      timeline.setSelection(drag.from, at);
      announce(`${time.dateTime(timeline.selection[0])} – ${time.dateTime(timeline.selection[1])}`);
    } else {
      timeline.moveCursor(at);
      playFrom(timeline.cursor);
    }
    drag = null;
  });
  bar.addEventListener("pointercancel", () => { drag = null; });

  bar.addEventListener("keydown", (event) => {
    const step = (STEPS[timeline.zoom] || 60) * 1000 * (event.shiftKey ? 6 : 1);
    let handled = true;
    switch (event.key) {
      case "ArrowLeft": case "ArrowDown": timeline.moveCursor(timeline.cursor - step); break;
      case "ArrowRight": case "ArrowUp": timeline.moveCursor(timeline.cursor + step); break;
      case "PageUp": {
        const previous = [...timeline.spans].reverse().find(([start]) => start < timeline.cursor - 1000);
        timeline.moveCursor(previous ? previous[0] : timeline.dayStart);
        break;
      }
      case "PageDown": {
        const next = timeline.spans.find(([start]) => start > timeline.cursor + 1000);
        if (next) timeline.moveCursor(next[0]);
        break;
      }
      case "Home": timeline.moveCursor(timeline.dayStart); break;
      case "End": timeline.moveCursor(Math.min(timeline.dayEnd, Date.now())); break;
      case "Enter": case " ": playFrom(timeline.cursor); break;
      case "[": markStart(); break;
      case "]": markEnd(); break;
      case "+": case "=": setZoom(nextZoom(-1)); break;
      case "-": setZoom(nextZoom(1)); break;
      default: handled = false;
    }
    if (handled) event.preventDefault();
  });

  const ZOOMS = [86400, 21600, 3600, 900, 300];
  function nextZoom(direction) {
    const index = ZOOMS.indexOf(timeline.zoom) + direction;
    return ZOOMS[Math.min(Math.max(index, 0), ZOOMS.length - 1)];
  }
  function setZoom(zoom) {
    timeline.zoom = zoom;
    timeline.center(timeline.playhead && playback ? timeline.playhead : timeline.cursor);
    timeline.render();
  }
  zoomSelect.addEventListener("change", () => setZoom(Number(zoomSelect.value)));
  $("#pan-prev").addEventListener("click", () => {
    timeline.winStart = Math.max(timeline.dayStart, timeline.winStart - timeline.zoom * 750);
    timeline.render();
  });
  $("#pan-next").addEventListener("click", () => {
    timeline.winStart = Math.min(Math.max(timeline.dayStart, timeline.dayEnd - timeline.zoom * 1000), timeline.winStart + timeline.zoom * 750);
    timeline.render();
  });
  dayInput.addEventListener("change", () => { if (dayInput.value) timeline.load(dayInput.value); });
  $("#day-prev").addEventListener("click", () => timeline.load(time.shiftDay(timeline.day, -1)));
  $("#day-next").addEventListener("click", () => {
    const next = time.shiftDay(timeline.day, 1);
    if (next <= time.dayKey(Date.now())) timeline.load(next);
  });
  window.addEventListener("resize", () => timeline.renderTicks());
  setInterval(() => { if (timeline.day === time.dayKey(Date.now())) timeline.render(); }, 15000);

  events.on("recording.segment", (event) => {
    if (event.camera_id !== camera.id) return;
    timeline.merge(Date.parse(event.start), Date.parse(event.end));
    timeline.render();
  });
  events.onReconnect(() => timeline.load(timeline.day, true));

  /* ------------------------------------------------------------ clip export */
  const form = $("#export-form");
  const startInput = $("#export-start");
  const endInput = $("#export-end");
  const formError = $("#export-error");
  const exportsList = $("#exports-list");
  const exportItems = new Map(); // clip id -> {li, bar, status, links}
  const earlyEvents = new Map(); // events that arrived before the POST answered

  function markStart() {
    const end = timeline.selection ? timeline.selection[1] : timeline.cursor + 60000;
    timeline.setSelection(timeline.cursor, Math.max(end, timeline.cursor + 1000));
  }
  function markEnd() {
    const start = timeline.selection ? timeline.selection[0] : timeline.cursor - 60000;
    timeline.setSelection(Math.min(start, timeline.cursor - 1000), timeline.cursor);
  }
  $("#mark-start").addEventListener("click", markStart);
  $("#mark-end").addEventListener("click", markEnd);
  for (const input of [startInput, endInput]) {
    input.addEventListener("change", () => {
      const start = time.parseInput(startInput.value);
      const end = time.parseInput(endInput.value);
      if (start && end && end > start) timeline.setSelection(start.getTime(), end.getTime(), false);
    });
  }

  function exportItem(clip) {
    let item = exportItems.get(clip.id);
    if (item) return item;
    const li = document.createElement("li");
    li.dataset.clipId = clip.id;
    const title = document.createElement("strong");
    const start = Date.parse(clip.start);
    const end = Date.parse(clip.end);
    title.textContent = `#${clip.id} · ${time.date(start)} ${time.time(start)} – ${time.time(end)}`;
    const progress = document.createElement("progress");
    progress.max = 1;
    progress.value = 0;
    progress.setAttribute("aria-label", t("Export #%(id)s requested", { id: clip.id }));
    const status = document.createElement("span");
    status.className = "export-status";
    const links = document.createElement("span");
    li.append(title, progress, status, links);
    exportsList.prepend(li);
    item = { li, progress, status, links };
    exportItems.set(clip.id, item);
    return item;
  }

  function showClip(clip) {
    const item = exportItem(clip);
    const value = clip.status === "DONE" ? 1 : clip.progress || 0;
    item.progress.value = value;
    item.li.dataset.status = clip.status;
    if (clip.status === "DONE") {
      item.progress.hidden = true;
      item.status.dataset.tone = "ok";
      item.status.textContent = `${t("Ready")}${clip.size_bytes != null ? ` · ${time.bytes(clip.size_bytes)}` : ""}`;
      if (!item.links.firstChild) {
        const link = document.createElement("a");
        link.className = "button small primary download-link";
        link.href = `/api/clips/${clip.id}/download`;
        link.download = `${camera.code}-${time.stamp(Date.parse(clip.start))}.mp4`;
        link.textContent = t("Download MP4");
        if (clip.sha256) link.title = `SHA-256 ${clip.sha256}`;
        item.links.append(link);
      }
    } else if (clip.status === "FAILED") {
      item.progress.hidden = true;
      item.status.dataset.tone = "err";
      item.status.textContent = `${t("Export failed")}${clip.error ? `: ${clip.error}` : ""}`;
    } else {
      item.status.dataset.tone = "";
      item.status.textContent = clip.status === "PENDING"
        ? t("Waiting for the worker…")
        : `${t("Exporting…")} ${Math.round(value * 100)}%`;
    }
  }

  function onClipEvent(event) {
    if (event.camera_id !== camera.id) return;
    const item = exportItems.get(event.clip_id);
    if (!item) {  // ours, answered after its first events; or another user's export
      earlyEvents.set(event.clip_id, [...(earlyEvents.get(event.clip_id) || []), event]);
      if (earlyEvents.size > 50) earlyEvents.delete(earlyEvents.keys().next().value);
      return;
    }
    const li = item.li;
    const clip = { id: event.clip_id, start: li.dataset.start, end: li.dataset.end, ...event };
    showClip(clip);
    if (event.type === "clip.done") {
      announce(event.status === "DONE" ? t("Export #%(id)s ready", { id: event.clip_id }) : t("Export #%(id)s failed", { id: event.clip_id }));
    }
  }
  events.on("clip.progress", onClipEvent);
  events.on("clip.done", onClipEvent);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    formError.textContent = "";
    const start = time.parseInput(startInput.value);
    const end = time.parseInput(endInput.value);
    if (!start || !end) {
      formError.textContent = t("Choose a period on the timeline or in the fields below.");
      (start ? endInput : startInput).focus();
      return;
    }
    if (end <= start) {
      formError.textContent = t("The end must be after the start.");
      endInput.focus();
      return;
    }
    const justification = await accessReason();
    if (justification === null) return;
    const button = $("#export-submit");
    button.disabled = true;
    try {
      const clip = await api("/api/clips/", {
        method: "POST",
        body: { camera_id: camera.id, start: time.iso(start), end: time.iso(end), ...justification },
      });
      const full = { start: start.toISOString(), end: end.toISOString(), progress: 0, ...clip };
      showClip(full);
      const item = exportItems.get(full.id);
      item.li.dataset.start = full.start;
      item.li.dataset.end = full.end;
      for (const early of earlyEvents.get(full.id) || []) onClipEvent(early);
      earlyEvents.delete(full.id);
      announce(t("Export #%(id)s requested", { id: full.id }));
    } catch (error) {
      if (error.body && error.body.reason) {  // the prefeitura now requires a reason
        forgetReason();
        camera.reason_required = true;
      }
      formError.textContent = error.status ? error.message : t("The export could not be requested.");
    } finally {
      button.disabled = false;
    }
  });

  async function loadExports() {
    try {
      const page = await api(`/api/clips/?camera_id=${camera.id}&page_size=10`);
      const clips = (page.results || []).filter((clip) => clip.camera_id === camera.id).slice(0, 5).reverse();
      for (const clip of clips) {
        if (exportItems.has(clip.id)) continue;
        showClip(clip);
        const item = exportItems.get(clip.id);
        item.li.dataset.start = clip.start;
        item.li.dataset.end = clip.end;
      }
    } catch (error) { /* the list is a convenience */ }
  }
  events.onReconnect(loadExports);

  /* ------------------------------------------------------------ start */
  // Read the state once ws/events is subscribed, so that no change in between is missed.
  events.ready.then(async () => {
    // ?at=ISO (a plate read's link): play the recording from a few seconds before that moment.
    const at = Date.parse(new URLSearchParams(window.location.search).get("at") || "");
    if (Number.isNaN(at)) {
      startLive();
      timeline.load(timeline.day);
    } else {
      await timeline.load(time.dayKey(at - 5000));
      playFrom(at - 5000);
    }
    loadExports();
    try {
      setBadge(statusBadge, (await api(`/api/cameras/${camera.id}/`)).status);
    } catch (error) { /* the server-rendered status stays */ }
  });
})();
