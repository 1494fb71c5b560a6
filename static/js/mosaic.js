/* The live mosaic: 2x2 or 3x3 players; the user picks the camera of each slot and the choice
 * is saved per user (dashboard/api/mosaic/). */
(function () {
  "use strict";
  const { config, t, api, cameras, events, setBadge, announce, LivePlayer, track, untrack } = window.GTV;
  const mosaic = document.getElementById("mosaic");
  if (!mosaic) return;
  const template = document.getElementById("slot-template");
  const sizeControl = document.getElementById("mosaic-size");
  const status = document.getElementById("mosaic-status");
  const slots = []; // index -> {li, select, player, cameraId}
  let layout = { size: 2, slots: [] };

  function options(select, selected) {
    select.innerHTML = "";
    const empty = document.createElement("option");
    empty.value = "";
    empty.textContent = `— ${t("Empty slot")} —`;
    select.append(empty);
    for (const camera of cameras.list()) {
      const option = document.createElement("option");
      option.value = camera.id;
      option.textContent = `${camera.name} (${camera.code})`;
      select.append(option);
    }
    select.value = selected != null && cameras.get(selected) ? String(selected) : "";
  }

  function buildSlot(index) {
    const li = template.content.firstElementChild.cloneNode(true);
    li.dataset.slot = index;
    const select = li.querySelector("select");
    const label = li.querySelector("label");
    select.id = `slot-${index}`;
    label.htmlFor = select.id;
    label.textContent = t("Camera for slot %(n)s", { n: index + 1 });
    const slot = { li, select, player: null, cameraId: null };
    select.addEventListener("change", () => {
      layout.slots[index] = select.value ? Number(select.value) : null;
      showCamera(slot, layout.slots[index]);
      save();
    });
    slots[index] = slot;
    return slot;
  }

  function showCamera(slot, cameraId) {
    const camera = cameraId != null ? cameras.get(cameraId) : null;
    const li = slot.li;
    const badge = li.querySelector(".badge");
    const open = li.querySelector(".slot-open");
    const overlay = li.querySelector(".tile-overlay");
    if (slot.player && slot.cameraId !== (camera && camera.id)) { untrack(slot.player); slot.player = null; }
    slot.cameraId = camera ? camera.id : null;
    li.dataset.cameraId = camera ? camera.id : "";
    if (!camera) {
      badge.hidden = true;
      open.hidden = true;
      overlay.textContent = t("Empty slot");
      return;
    }
    setBadge(badge, camera.status);
    open.hidden = false;
    open.href = cameras.pageUrl(camera.id);
    open.setAttribute("aria-label", `${camera.name}`);
    if (!slot.player) {
      if (!camera.enabled) { overlay.textContent = t("This camera is disabled."); return; }
      slot.player = track(new LivePlayer(li.querySelector("video"), camera.id, {
        overlay, modeTag: li.querySelector(".mode-tag"),
        profile: "sub",  // the low-resolution substream (the main stream when there is none)
      }));
      slot.player.start();
    }
  }

  function render() {
    const count = layout.size * layout.size;
    mosaic.dataset.size = layout.size;
    for (const radio of sizeControl.querySelectorAll("input")) radio.checked = Number(radio.value) === layout.size;
    for (let index = 0; index < 9; index += 1) {
      const slot = slots[index] || buildSlot(index);
      if (index < count) {
        options(slot.select, layout.slots[index]);
        mosaic.append(slot.li); // in slot order
        showCamera(slot, layout.slots[index]);
      } else {
        if (slot.player) { untrack(slot.player); slot.player = null; slot.cameraId = null; }
        slot.li.remove();
      }
    }
    mosaic.setAttribute("aria-busy", "false");
  }

  /* One save in flight at a time, always of the latest layout: concurrent PUTs could land out
   * of order (an older layout overwriting a newer one), and an older response must not replace
   * choices made while it was on its way. "Saved" is only shown once the latest layout is. */
  let saving = false;
  let pending = false;
  async function save() {
    pending = true;
    status.textContent = t("Saving…");
    if (saving) return;
    saving = true;
    try {
      while (pending) {
        pending = false;
        const saved = await api(config.urls.mosaic, {
          method: "PUT", body: { size: layout.size, slots: layout.slots.slice() },
        });
        if (!pending) layout = saved;
      }
      status.textContent = t("Mosaic saved.");
      announce(t("Mosaic saved."));
    } catch (error) {
      pending = false;
      status.textContent = `${t("The mosaic could not be saved.")} ${error.message}`;
    } finally {
      saving = false;
    }
  }

  sizeControl.addEventListener("change", (event) => {
    layout.size = Number(event.target.value);
    render();
    save();
  });

  events.on("camera.updated", () => {
    for (const slot of slots) {
      if (!slot || slot.cameraId == null) continue;
      const camera = cameras.get(slot.cameraId);
      if (camera) setBadge(slot.li.querySelector(".badge"), camera.status);
    }
  });
  events.onReconnect(() => cameras.load().then(render));

  Promise.all([cameras.load(), api(config.urls.mosaic)]).then(([, data]) => {
    layout = data;
    render();
  }, (error) => {
    status.textContent = error.message;
  });
})();
