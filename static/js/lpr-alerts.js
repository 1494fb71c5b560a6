/* Watchlist alerts on every dashboard page: a banner with a sound when a watched plate passes
 * one of the prefeitura's cameras (``lpr.alert`` on ws/events). */
(function () {
  "use strict";
  if (!window.GTV) return;
  const { t, events, cameras, time, announce } = window.GTV;
  const LPR_PAGE = "/dashboard/lpr/";
  let audio = null;

  function beep() {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      [0, 0.35, 0.7].forEach((offset) => {
        const oscillator = audio.createOscillator();
        const gain = audio.createGain();
        oscillator.frequency.value = 880;
        gain.gain.value = 0.2;
        oscillator.connect(gain).connect(audio.destination);
        oscillator.start(audio.currentTime + offset);
        oscillator.stop(audio.currentTime + offset + 0.2);
      });
    } catch (error) {
      /* no audio (autoplay policy): the banner is still shown */
    }
  }

  function container() {
    let box = document.getElementById("lpr-alerts");
    if (!box) {
      box = document.createElement("div");
      box.id = "lpr-alerts";
      box.className = "lpr-alerts";
      document.body.prepend(box);
    }
    return box;
  }

  function show(event) {
    const camera = cameras.get(event.camera_id);
    const banner = document.createElement("div");
    banner.className = "lpr-alert";
    banner.setAttribute("role", "alert");
    banner.dataset.readId = event.read_id;
    const title = document.createElement("strong");
    title.textContent = t("Watched plate %(plate)s at %(camera)s", {
      plate: event.plate,
      camera: camera ? camera.name : `#${event.camera_id}`,
    });
    const detail = document.createElement("span");
    detail.textContent = ` · ${time.dateTime(event.at)} · ${t("Reason: %(reason)s", { reason: event.reason })} · `;
    const link = document.createElement("a");
    link.href = `${LPR_PAGE}?plate=${encodeURIComponent(event.plate)}`;
    link.textContent = t("See plate reads");
    const close = document.createElement("button");
    close.type = "button";
    close.className = "button small";
    close.textContent = t("Dismiss");
    close.addEventListener("click", () => banner.remove());
    banner.append(title, detail, link, " ", close);
    container().prepend(banner);
    announce(title.textContent);
    beep();
  }

  events.on("lpr.alert", (event) => {
    if (cameras.get(event.camera_id)) show(event);
    else cameras.load(true).then(() => show(event), () => show(event));
  });
})();
