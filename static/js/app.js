/* GT-Vision dashboard: what every page shares. No framework, no build step.
 *
 * GTV.t          translations (JSON catalog rendered by the template, Django's django.po)
 * GTV.time       dates in America/Sao_Paulo: display, day bounds, ISO 8601 with offset for the API
 * GTV.api        fetch JSON with the session and the CSRF token
 * GTV.events     the ws/events WebSocket (reconnects with backoff; handlers per event type)
 * GTV.cameras    the cameras of the prefeitura shown (from /api/cameras/)
 * GTV.LivePlayer live video of one camera: starts its stream, WebRTC (WHEP) or HLS (hls.js)
 * GTV.EventsPanel the live list of stream status changes and exports
 */
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("gtv-config").textContent);
  const catalog = JSON.parse(document.getElementById("gtv-i18n").textContent);

  /* ---------------------------------------------------------------- i18n */
  function t(message, params) {
    let text = Object.prototype.hasOwnProperty.call(catalog, message) ? catalog[message] : message;
    if (params) {
      text = text.replace(/%\((\w+)\)s/g, (match, key) => (key in params ? String(params[key]) : match));
    }
    return text.replace(/%%/g, "%");
  }

  const STATUS_LABELS = { online: "Online", offline: "Offline", error: "Failure", disabled: "Disabled" };
  function statusLabel(status) {
    return t(STATUS_LABELS[status] || status);
  }
  function setBadge(element, status) {
    if (!element) return;
    element.dataset.status = status;
    element.textContent = statusLabel(status);
    element.hidden = false;
  }

  let announceTimer = null;
  function announce(message) {
    const region = document.getElementById("announcer");
    if (!region) return;
    region.textContent = "";
    clearTimeout(announceTimer);
    announceTimer = setTimeout(() => { region.textContent = message; }, 50);
  }

  /* ---------------------------------------------------------------- time */
  const TZ = config.timeZone || "America/Sao_Paulo";
  const LOCALE = config.locale || "pt-BR";
  const pad = (n, width = 2) => String(n).padStart(width, "0");
  const partsFormat = new Intl.DateTimeFormat("en-US", {
    timeZone: TZ, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
  const formats = {
    dateTime: new Intl.DateTimeFormat(LOCALE, { timeZone: TZ, dateStyle: "short", timeStyle: "medium" }),
    date: new Intl.DateTimeFormat(LOCALE, { timeZone: TZ, dateStyle: "short" }),
    longDate: new Intl.DateTimeFormat(LOCALE, { timeZone: TZ, weekday: "long", day: "numeric", month: "long", year: "numeric" }),
    time: new Intl.DateTimeFormat(LOCALE, { timeZone: TZ, hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" }),
    hourMinute: new Intl.DateTimeFormat(LOCALE, { timeZone: TZ, hour: "2-digit", minute: "2-digit", hourCycle: "h23" }),
  };
  const numberFormat = (digits) => new Intl.NumberFormat(LOCALE, { maximumFractionDigits: digits });

  function zoneParts(date) {
    const parts = {};
    for (const part of partsFormat.formatToParts(date)) parts[part.type] = part.value;
    return {
      y: Number(parts.year), m: Number(parts.month), d: Number(parts.day),
      h: Number(parts.hour) % 24, mi: Number(parts.minute), s: Number(parts.second),
    };
  }
  /** Minutes the zone is ahead of UTC at this instant (São Paulo: -180). */
  function offsetMinutes(date) {
    const p = zoneParts(date);
    const asUtc = Date.UTC(p.y, p.m - 1, p.d, p.h, p.mi, p.s);
    return Math.round((asUtc - Math.floor(date.getTime() / 1000) * 1000) / 60000);
  }
  /** The instant of a wall-clock time in the zone. */
  function zoned(y, m, d, h = 0, mi = 0, s = 0) {
    const guess = Date.UTC(y, m - 1, d, h, mi, s);
    let result = guess - offsetMinutes(new Date(guess)) * 60000;
    const again = guess - offsetMinutes(new Date(result)) * 60000;
    if (again !== result) result = again;
    return new Date(result);
  }
  /** ISO 8601 with the zone's offset: 2026-11-22T14:03:12-03:00 (what the API wants). */
  function iso(date) {
    date = new Date(date);
    const p = zoneParts(date);
    const offset = offsetMinutes(date);
    const abs = Math.abs(offset);
    const ms = date.getUTCMilliseconds();
    return `${p.y}-${pad(p.m)}-${pad(p.d)}T${pad(p.h)}:${pad(p.mi)}:${pad(p.s)}` +
      (ms ? `.${pad(ms, 3)}` : "") + `${offset < 0 ? "-" : "+"}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
  }
  /** "YYYY-MM-DD" of the instant in the zone. */
  function dayKey(date) {
    const p = zoneParts(new Date(date));
    return `${p.y}-${pad(p.m)}-${pad(p.d)}`;
  }
  /** [start, end) of a "YYYY-MM-DD" day in the zone. */
  function dayBounds(key) {
    const [y, m, d] = key.split("-").map(Number);
    const next = new Date(Date.UTC(y, m - 1, d + 1));
    return [zoned(y, m, d), zoned(next.getUTCFullYear(), next.getUTCMonth() + 1, next.getUTCDate())];
  }
  function shiftDay(key, days) {
    const [y, m, d] = key.split("-").map(Number);
    const date = new Date(Date.UTC(y, m - 1, d + days));
    return `${date.getUTCFullYear()}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())}`;
  }
  /** Value for <input type="datetime-local" step="1"> showing the instant's zone time. */
  function inputValue(date) {
    const p = zoneParts(new Date(date));
    return `${p.y}-${pad(p.m)}-${pad(p.d)}T${pad(p.h)}:${pad(p.mi)}:${pad(p.s)}`;
  }
  /** The instant of a datetime-local value read as zone time; null when invalid. */
  function parseInput(value) {
    const match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?/.exec(value || "");
    if (!match) return null;
    const n = match.slice(1).map((v) => Number(v || 0));
    return zoned(n[0], n[1], n[2], n[3], n[4], n[5]);
  }
  function duration(seconds) {
    if (seconds == null) return "–";
    seconds = Math.max(0, Math.round(seconds));
    const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    return h ? `${h} h ${pad(m)} min` : m ? `${m} min ${pad(s)} s` : `${s} s`;
  }
  function bytes(value) {
    if (value == null) return "–";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (value >= 1024 && i < units.length - 1) { value /= 1024; i += 1; }
    return `${numberFormat(i ? 1 : 0).format(value)} ${units[i]}`;
  }
  const time = {
    TZ, LOCALE, zoned, iso, dayKey, dayBounds, shiftDay, inputValue, parseInput, offsetMinutes,
    dateTime: (d) => formats.dateTime.format(new Date(d)),
    date: (d) => formats.date.format(new Date(d)),
    longDate: (d) => formats.longDate.format(new Date(d)),
    time: (d) => formats.time.format(new Date(d)),
    hourMinute: (d) => formats.hourMinute.format(new Date(d)),
    duration, bytes, number: (v, digits = 1) => (v == null ? "–" : numberFormat(digits).format(v)),
    /** Compact local stamp for file names: 20261122-140312. */
    stamp(d) {
      const p = zoneParts(new Date(d));
      return `${p.y}${pad(p.m)}${pad(p.d)}-${pad(p.h)}${pad(p.mi)}${pad(p.s)}`;
    },
  };

  /* ---------------------------------------------------------------- API */
  class ApiError extends Error {
    constructor(status, body) {
      super(ApiError.describe(status, body));
      this.status = status;
      this.body = body;
    }
    /** A readable message: the API's detail or its first field error. */
    static describe(status, body) {
      if (body && typeof body === "object") {
        if (typeof body.detail === "string") return body.detail;
        for (const value of Object.values(body)) {
          if (Array.isArray(value) && value.length) return String(value[0]);
          if (typeof value === "string") return value;
        }
      }
      return t("Request failed (%(status)s).", { status });
    }
  }

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  // Logging out closes this page's WebSocket (4401) before the logout's response arrives:
  // let the form's own navigation finish instead of asking to sign in again.
  let leaving = false;
  document.querySelectorAll(".logout-form").forEach((form) => {
    form.addEventListener("submit", () => { leaving = true; });
  });

  function loginAgain() {
    if (leaving) return;
    announce(t("Session expired: sign in again."));
    window.location.assign(`/?next=${encodeURIComponent(window.location.pathname + window.location.search)}`);
  }

  async function api(path, { method = "GET", body, signal } = {}) {
    const options = { method, credentials: "same-origin", headers: { Accept: "application/json" }, signal };
    if (body !== undefined) {
      options.body = JSON.stringify(body);
      options.headers["Content-Type"] = "application/json";
    }
    if (!["GET", "HEAD"].includes(method)) options.headers["X-CSRFToken"] = csrfToken();
    const response = await fetch(path, options);
    let data = null;
    if ((response.headers.get("Content-Type") || "").includes("json")) {
      data = await response.json().catch(() => null);
    }
    if (response.status === 401) loginAgain();
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  /** Every page of a paginated list. */
  async function apiAll(path) {
    const results = [];
    let url = path;
    while (url) {
      const page = await api(url);
      results.push(...(page.results || []));
      url = page.next ? (() => { const next = new URL(page.next, window.location.href); return next.pathname + next.search; })() : null;
    }
    return results;
  }

  /* ---------------------------------------------------------------- errors */
  /** Surface a bug in a handler as an uncaught error, without breaking the caller's loop. */
  function rethrow(error) {
    setTimeout(() => { throw error; }, 0);
  }
  function safely(fn, ...args) {
    try { return fn(...args); } catch (error) { rethrow(error); return undefined; }
  }

  /* ---------------------------------------------------------------- live events */
  const events = (() => {
    const handlers = new Map();
    const reconnectHandlers = [];
    let socket = null;
    let attempts = 0;
    let connectedOnce = false;
    let keepAlive = null;
    let markReady;
    /** Resolves once the socket is subscribed (or after 3 s without it): state read after
     * this cannot miss a change, which arrives as an event. */
    const ready = new Promise((resolve) => { markReady = resolve; });
    let readyWithoutSocket = false;
    setTimeout(() => { if (!connectedOnce) readyWithoutSocket = true; markReady(); }, 3000);

    function setState(state) {
      const indicator = document.getElementById("live-indicator");
      if (indicator) {
        indicator.dataset.state = state;
        indicator.title = state === "open" ? t("Live") : t("Live events disconnected; reconnecting…");
      }
    }
    function dispatch(event) {
      for (const key of [event.type, "*"]) {
        for (const handler of handlers.get(key) || []) safely(handler, event);
      }
    }
    function connect() {
      const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
      setState("connecting");
      socket = new WebSocket(scheme + window.location.host + config.urls.events);
      socket.addEventListener("open", () => {
        // After a drop, or when the page went on without the socket: re-read the state.
        const reconnect = connectedOnce || readyWithoutSocket;
        connectedOnce = true;
        readyWithoutSocket = false;
        attempts = 0;
        setState("open");
        markReady();
        clearInterval(keepAlive);
        keepAlive = setInterval(() => {
          if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "ping" }));
        }, 25000);
        if (reconnect) reconnectHandlers.forEach((handler) => safely(handler));
      });
      socket.addEventListener("message", (message) => {
        let data;
        try { data = JSON.parse(message.data); } catch (error) { return; }
        if (data && data.type && data.type !== "pong") dispatch(data);
      });
      socket.addEventListener("close", (event) => {
        clearInterval(keepAlive);
        setState("closed");
        if (event.code === 4401) { loginAgain(); return; }
        const delay = Math.min(15000, 1000 * 2 ** attempts);
        attempts += 1;
        setTimeout(connect, delay);
      });
    }
    return {
      connect,
      dispatch,
      ready,
      on(type, handler) {
        if (!handlers.has(type)) handlers.set(type, []);
        handlers.get(type).push(handler);
      },
      /** Called after the socket came back: refresh state that may have changed meanwhile. */
      onReconnect(handler) { reconnectHandlers.push(handler); },
      get connected() { return Boolean(socket && socket.readyState === WebSocket.OPEN); },
    };
  })();

  /* ---------------------------------------------------------------- cameras */
  const cameras = {
    byId: new Map(),
    loaded: null,
    /** Load (once) every camera of the prefeitura shown. */
    load(force = false) {
      if (this.loaded && !force) return this.loaded;
      const query = new URLSearchParams({ page_size: "500", ordering: "name" });
      if (config.prefeitura) query.set("prefeitura", config.prefeitura);
      this.loaded = events.ready.then(() => apiAll(`/api/cameras/?${query}`)).then((list) => {
        this.byId.clear();
        for (const camera of list) this.byId.set(camera.id, camera);
        return this.list();
      });
      return this.loaded;
    },
    list() {
      return [...this.byId.values()].sort((a, b) => a.name.localeCompare(b.name, LOCALE) || a.id - b.id);
    },
    get(id) { return this.byId.get(Number(id)); },
    /** A camera we did not know (created meanwhile): fetch it, keep it if it is ours. */
    async fetch(id) {
      try {
        const camera = await api(`/api/cameras/${id}/`);
        if (config.prefeitura && camera.prefeitura !== config.prefeitura) return null;
        this.byId.set(camera.id, camera);
        return camera;
      } catch (error) {
        return null;
      }
    },
    pageUrl(id) { return config.urls.cameraPage.replace("/0/", `/${id}/`); },
  };

  /* ---------------------------------------------------------------- live player */
  const ACTIVE = ["STARTING", "RUNNING", "ERROR"];

  const KEEPALIVE_MS = 15000;

  class LivePlayer {
    /**
     * @param {HTMLVideoElement} video
     * @param {number} cameraId
     * @param {{overlay?: Element, modeTag?: Element, preferWebRTC?: boolean, onChange?: Function,
     *   profile?: "main"|"sub"}} options  profile "sub": the camera's low-resolution substream
     *   (grids, mosaics; the server falls back to the main stream); "main" (default) otherwise.
     */
    constructor(video, cameraId, options = {}) {
      this.video = video;
      this.cameraId = Number(cameraId);
      this.profile = options.profile === "sub" ? "sub" : "main";
      this.overlay = options.overlay || null;
      this.modeTag = options.modeTag || null;
      this.preferWebRTC = options.preferWebRTC !== false;
      this.onChange = options.onChange || (() => {});
      this.streamId = null;
      this.streamStatus = null;
      this.hls = null;
      this.pc = null;
      this.whepSession = null;
      this.attached = false;
      this.attaching = false;
      this.retries = 0;
      this.retryTimer = null;
      this.stopped = true;
      this.protocol = null;
      this.keepAliveTimer = null;
      this.onVisible = () => { if (document.visibilityState === "visible") this.keepAlive(); };
      this.onPlaying = () => {
        this.retries = 0;
        this.setOverlay("");
        this.setMode("live");
        this.onChange(this);
      };
      video.addEventListener("playing", this.onPlaying);
    }

    setOverlay(text) { if (this.overlay) this.overlay.textContent = text; }
    setMode(mode) {
      if (!this.modeTag) return;
      this.modeTag.dataset.mode = mode || "";
      this.modeTag.textContent = mode === "live" ? `${t("Live")}${this.protocol ? ` · ${this.protocol}` : ""}` : "";
    }

    /** Start (or join) the camera's stream and play it when it runs. */
    async start() {
      this.stopped = false;
      clearTimeout(this.retryTimer);
      this.streamId = null;
      this.streamStatus = null;
      this.setOverlay(t("Starting…"));
      let data;
      try {
        // on_demand: the stream stops by itself once no viewer keeps it alive (keepAlive).
        const body = { camera_id: this.cameraId, on_demand: true, profile: this.profile };
        data = await api("/api/streams/start", { method: "POST", body });
      } catch (error) {
        if (error.status === 409 && error.body && error.body.stream_id) {
          data = error.body;
        } else if (error.status === 409) {
          this.streamStatus = "DISABLED";
          this.setOverlay(t("This camera is disabled."));
          this.onChange(this);
          return;
        } else {
          this.setOverlay(error.message);
          this.scheduleRetry(() => this.start());
          return;
        }
      }
      if (this.stopped) return;
      this.startKeepAlive();
      if (this.streamId === data.stream_id && this.streamStatus) {
        this.onChange(this);  // its ws/events status arrived first and was applied
        return;
      }
      this.streamId = data.stream_id;
      this.streamStatus = data.status;
      this.onChange(this);
      this.applyStatus(data.status, "");
    }

    /** While this player shows the camera, tell the server a viewer is watching (every 15 s). */
    startKeepAlive() {
      if (this.keepAliveTimer) return;
      this.keepAliveTimer = setInterval(() => this.keepAlive(), KEEPALIVE_MS);
      document.addEventListener("visibilitychange", this.onVisible);
    }

    stopKeepAlive() {
      clearInterval(this.keepAliveTimer);
      this.keepAliveTimer = null;
      document.removeEventListener("visibilitychange", this.onVisible);
    }

    async keepAlive() {
      if (this.stopped || !this.streamId) return;
      const streamId = this.streamId;
      try {
        const data = await api(`/api/streams/${streamId}/keepalive`, { method: "POST" });
        // Stopped while nobody could keep it alive (e.g. a hidden tab): open it again.
        if (!this.stopped && this.streamId === streamId && data.status === "STOPPED") this.start();
      } catch (error) {
        if (!this.stopped && this.streamId === streamId && error.status === 404) this.start();
      }
    }

    applyStatus(status, lastError) {
      if (status === "RUNNING") {
        if (!this.attached) this.attach();
        return;
      }
      clearTimeout(this.retryTimer);  // nothing to play until it runs again
      if (status === "ERROR") {
        this.detach();
        this.setOverlay(`${t("Stream error")}${lastError ? `: ${lastError}` : ""}`);
      } else if (status === "STOPPED") {
        this.detach();
        this.setOverlay(t("The stream has stopped."));
      } else {
        this.setOverlay(t("Starting…"));
      }
    }

    /** A ws/events message (stream.status of any camera). */
    handleEvent(event) {
      if (this.stopped || event.type !== "stream.status" || Number(event.camera_id) !== this.cameraId) return;
      if ((event.profile || "main") !== this.profile) return;  // the camera's other stream
      if (this.streamId && event.stream_id !== this.streamId && !ACTIVE.includes(event.status)) return;
      const wasRunning = this.streamStatus === "RUNNING" && event.stream_id === this.streamId;
      this.streamId = event.stream_id;
      this.streamStatus = event.status;
      this.onChange(this);
      if (event.status === "RUNNING" && !wasRunning) this.detach(); // a restarted source: reload
      this.applyStatus(event.status, event.last_error);
    }

    async attach() {
      if (this.attaching || this.stopped || !this.streamId) return;
      this.attaching = true;
      this.setOverlay(t("Connecting…"));
      try {
        const urls = await api(`/api/streams/${this.streamId}/urls`);
        if (this.stopped) return;
        if (urls.webrtc && this.preferWebRTC && window.RTCPeerConnection) {
          try {
            await this.playWebRTC(urls.webrtc);
            return;
          } catch (error) {
            this.detach();
          }
        }
        if (urls.hls) this.playHls(urls.hls);
      } catch (error) {
        if (error.status === 404) this.scheduleRetry(() => this.start());  // the stream is gone
        else this.retryAttach();
      } finally {
        this.attaching = false;
      }
    }

    playHls(url) {
      const video = this.video;
      this.protocol = "HLS";
      this.attached = true;
      if (window.Hls && window.Hls.isSupported()) {
        const hls = new window.Hls({
          liveSyncDurationCount: 1,  // one 2 s segment behind the live edge: glass-to-glass under 4 s (bench "Live latency")
          liveMaxLatencyDurationCount: 5,
          maxBufferLength: 10,
          backBufferLength: 10,
          manifestLoadingMaxRetry: 2,
          levelLoadingMaxRetry: 4,
          fragLoadingMaxRetry: 4,
        });
        this.hls = hls;
        hls.on(window.Hls.Events.MANIFEST_PARSED, () => { video.play().catch(() => {}); });
        hls.on(window.Hls.Events.ERROR, (_name, data) => {
          if (!data.fatal || this.hls !== hls) return;
          this.detach();
          this.setOverlay(t("The video could not be played; trying again…"));
          this.retryAttach();
        });
        hls.loadSource(url);
        hls.attachMedia(video);
      } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
        video.src = url;
        video.play().catch(() => {});
      }
    }

    async playWebRTC(url) {
      const pc = new RTCPeerConnection();
      this.pc = pc;
      this.protocol = "WebRTC";
      pc.addTransceiver("video", { direction: "recvonly" });
      pc.addTransceiver("audio", { direction: "recvonly" });
      const media = new MediaStream();
      pc.addEventListener("track", (event) => {
        media.addTrack(event.track);
        this.video.srcObject = media;
        this.video.play().catch(() => {});
      });
      pc.addEventListener("connectionstatechange", () => {
        if (this.pc === pc && ["failed", "disconnected"].includes(pc.connectionState)) {
          this.detach();
          this.retryAttach();
        }
      });
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise((resolve) => {  // non-trickle: wait for candidates (at most 2 s)
        if (pc.iceGatheringState === "complete") { resolve(); return; }
        const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
        pc.addEventListener("icegatheringstatechange", done);
        setTimeout(resolve, 2000);
      });
      const response = await fetch(url, {
        method: "POST", headers: { "Content-Type": "application/sdp" }, body: pc.localDescription.sdp,
      });
      if (response.status !== 201) throw new Error(`WHEP ${response.status}`);
      const location = response.headers.get("Location");
      this.whepSession = location ? new URL(location, url).href : null;
      await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
      this.attached = true;
    }

    detach() {
      this.attached = false;
      if (this.hls) { this.hls.destroy(); this.hls = null; }
      if (this.pc) { this.pc.close(); this.pc = null; }
      if (this.whepSession) {
        fetch(this.whepSession, { method: "DELETE", keepalive: true }).catch(() => {});
        this.whepSession = null;
      }
      if (this.video.srcObject) this.video.srcObject = null;
      if (this.video.getAttribute("src")) { this.video.removeAttribute("src"); this.video.load(); }
      this.setMode("");
    }

    retryAttach() {
      this.scheduleRetry(() => { if (this.streamStatus === "RUNNING") this.attach(); });
    }

    scheduleRetry(action) {
      clearTimeout(this.retryTimer);
      if (this.stopped) return;
      const delay = Math.min(15000, 1500 * 2 ** Math.min(this.retries, 4));
      this.retries += 1;
      this.retryTimer = setTimeout(() => { if (!this.stopped) action(); }, delay);
    }

    /** Stop showing the video (the stream itself keeps running for others). */
    destroy() {
      this.stopped = true;
      this.stopKeepAlive();
      clearTimeout(this.retryTimer);
      this.video.removeEventListener("playing", this.onPlaying);
      this.detach();
      this.setOverlay("");
    }
  }

  /** Route stream.status events to the players that show that camera. */
  const players = new Set();
  events.on("stream.status", (event) => {
    for (const player of players) player.handleEvent(event);
  });
  function track(player) { players.add(player); return player; }
  function untrack(player) { players.delete(player); player.destroy(); }

  /* ---------------------------------------------------------------- events panel */
  class EventsPanel {
    constructor(list) {
      this.list = list;
      this.clipItems = new Map();
      this.max = 60;
    }

    async start() {
      this.list.innerHTML = "";
      for (const type of ["stream.status", "clip.progress", "clip.done"]) {
        events.on(type, (event) => { this.add(event, true); this.showEmpty(); });
      }
      try {
        const data = await api(config.urls.recentEvents);  // newest first, below live ones
        for (const event of data.events) this.add(event, false);
      } catch (error) { /* the live part still works */ }
      this.showEmpty();
    }

    showEmpty() {
      const empty = this.list.querySelector(".empty-item");
      const hasItems = this.list.querySelector("li:not(.empty-item)");
      if (!hasItems && !empty) {
        const li = document.createElement("li");
        li.className = "empty-item";
        li.textContent = t("No events yet.");
        this.list.append(li);
      } else if (hasItems && empty) {
        empty.remove();
      }
    }

    describe(event) {
      if (event.type === "stream.status") {
        const text = {
          STARTING: t("Stream started"), RUNNING: t("Stream running"),
          STOPPED: t("Stream stopped"), ERROR: t("Stream failed"),
        }[event.status] || event.status;
        return { text, tone: event.status === "ERROR" ? "err" : event.status === "RUNNING" ? "ok" : "", detail: event.last_error || "" };
      }
      const id = event.clip_id;
      if (event.type === "clip.done" && event.status === "DONE") {
        return { text: t("Export #%(id)s ready", { id }), tone: "ok", link: `/api/clips/${id}/download`, detail: event.size_bytes != null ? bytes(event.size_bytes) : "" };
      }
      if (event.type === "clip.done") {
        return { text: t("Export #%(id)s failed", { id }), tone: "err", detail: event.error || "" };
      }
      if (event.status === "PENDING") return { text: t("Export #%(id)s requested", { id }), progress: 0 };
      return { text: t("Export #%(id)s: %(percent)s%%", { id, percent: Math.round((event.progress || 0) * 100) }), progress: event.progress || 0 };
    }

    add(event, live) {
      const camera = cameras.get(event.camera_id);
      if (!camera) {
        if (live && !config.isAdmin) cameras.fetch(event.camera_id);  // created meanwhile
        return;
      }
      const info = this.describe(event);
      let li = event.clip_id != null ? this.clipItems.get(event.clip_id) : null;
      const isNew = !li;
      if (isNew) {
        li = document.createElement("li");
        if (event.clip_id != null) this.clipItems.set(event.clip_id, li);
      }
      li.dataset.type = event.type;
      li.dataset.tone = info.tone || "";
      li.innerHTML = "";
      const when = document.createElement("time");
      when.dateTime = event.at || new Date().toISOString();
      when.textContent = time.time(when.dateTime);
      when.title = time.dateTime(when.dateTime);
      const name = document.createElement("a");
      name.className = "ev-camera";
      name.href = cameras.pageUrl(camera.id);
      name.textContent = camera.name;
      const text = document.createElement("span");
      text.className = "ev-text";
      text.textContent = info.text;
      li.append(when, name, text);
      if (info.progress != null) {
        const bar = document.createElement("progress");
        bar.max = 1;
        bar.value = info.progress;
        bar.setAttribute("aria-label", info.text);
        li.append(bar);
      }
      if (info.link || info.detail) {
        const detail = document.createElement("span");
        detail.className = "ev-detail";
        if (info.link) {
          const a = document.createElement("a");
          a.href = info.link;
          a.textContent = t("Download MP4");
          detail.append(a, info.detail ? ` · ${info.detail}` : "");
        } else {
          detail.textContent = info.detail;
        }
        li.append(detail);
      }
      if (isNew) {
        if (live) this.list.prepend(li);
        else this.list.insertBefore(li, this.list.querySelector(".empty-item"));
        while (this.list.children.length > this.max) {
          const last = this.list.lastElementChild;
          for (const [id, item] of this.clipItems) if (item === last) this.clipItems.delete(id);
          last.remove();
        }
      }
    }
  }

  /* ---------------------------------------------------------------- page set-up */
  window.GTV = {
    config, t, statusLabel, setBadge, announce, time, api, apiAll, ApiError, events, cameras,
    LivePlayer, track, untrack, EventsPanel, rethrow,
  };

  events.on("camera.updated", (event) => {
    const camera = cameras.get(event.camera_id);
    if (!camera) return;
    if (event.deleted) cameras.byId.delete(camera.id);
    else Object.assign(camera, { status: event.status, name: event.name, enabled: event.status !== "disabled" });
  });
  // Statuses may have changed while the socket was down: reload (pages then await cameras.load()).
  events.onReconnect(() => { cameras.load(true); });
  events.connect();
  const panelList = document.getElementById("events-list");
  if (panelList) {
    const panel = new EventsPanel(panelList);
    cameras.load().then(() => panel.start(), () => panel.start());
  }
})();
