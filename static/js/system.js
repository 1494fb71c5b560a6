/* The "Sistema" page: cameras offline or in error, recording lag, disk, job queue and
 * processes, from /dashboard/api/system/ every few seconds (gtvision/system_status.py). */
(function () {
  "use strict";

  const { config, api, time } = window.GTV;
  const labels = JSON.parse(document.getElementById("gtv-system-labels").textContent);
  const root = document.getElementById("system");
  const updated = document.getElementById("system-updated");

  function label(key, params) {
    let text = labels[key] || key;
    if (params) text = text.replace(/%\((\w+)\)s/g, (match, name) => (name in params ? String(params[name]) : match));
    return text;
  }

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text == null || text === "" ? "–" : String(text);
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function badge(td, status) {
    td.textContent = "";
    const span = document.createElement("span");
    span.className = "badge";
    span.dataset.status = status;
    span.textContent = label(status);
    td.appendChild(span);
  }

  function fill(bodyId, emptyId, items, render) {
    const body = document.getElementById(bodyId);
    const rows = items.map((item) => { const row = document.createElement("tr"); render(row, item); return row; });
    body.replaceChildren(...rows);
    document.getElementById(emptyId).hidden = items.length > 0;
  }

  function cameraLink(camera) {
    const a = document.createElement("a");
    a.href = config.urls.cameraPage.replace(/0\/$/, `${camera.id}/`);
    a.textContent = camera.name;
    return a;
  }

  function render(data) {
    fill("system-cameras", "system-cameras-empty", data.cameras, (row, camera) => {
      row.dataset.cameraId = camera.id;
      row.dataset.lagging = String(camera.lagging);
      cell(row, "").replaceChildren(cameraLink(camera));
      badge(cell(row, ""), camera.pull === "ERROR" ? "error" : camera.status);
      cell(row, camera.last_error, "error-text");
      cell(row, camera.recording_lag_s == null ? null : time.duration(camera.recording_lag_s), "lag");
    });
    const more = document.getElementById("system-cameras-more");
    more.hidden = !data.more_cameras;
    more.textContent = data.more_cameras ? label("more", { count: data.more_cameras }) : "";

    document.getElementById("system-disk-free").textContent = data.disk.free_bytes == null ? "–" : time.bytes(data.disk.free_bytes);
    document.getElementById("system-disk-floor").textContent = data.disk.floor_bytes == null ? "–" : time.bytes(data.disk.floor_bytes);
    const diskState = document.getElementById("system-disk-state");
    diskState.dataset.status = data.disk.ok ? "ok" : "failing";
    diskState.textContent = label(data.disk.ok ? "ok" : "failing");
    diskState.hidden = false;

    fill("system-queue", "system-queue-empty", data.queue, (row, queue) => {
      cell(row, queue.queue);
      cell(row, queue.waiting);
      cell(row, queue.oldest_s == null ? null : time.duration(queue.oldest_s));
    });
    fill("system-processes", "system-processes-empty", data.processes, (row, process) => {
      row.dataset.kind = process.kind;
      cell(row, process.name);
      cell(row, process.kind);
      cell(row, process.cameras);
      cell(row, time.duration(process.age_s));
      badge(cell(row, ""), process.ok ? "ok" : "failing");
    });
    fill("system-nodes", "system-nodes-empty", data.nodes || [], (row, node) => {
      row.dataset.node = node.name;
      cell(row, node.host && node.host !== node.name ? `${node.name} (${node.host})` : node.name);
      cell(row, `${node.cameras} / ${node.capacity}`);
      const names = node.camera_names.join(", ");
      cell(row, node.more_camera_names ? `${names} ${label("more", { count: node.more_camera_names })}` : names);
      cell(row, time.duration(node.heartbeat_age_s));
      const state = cell(row, "");
      badge(state, node.state);
      state.firstChild.dataset.status = node.orphaned_cameras ? "failing" : node.live ? "ok" : node.state;
      if (node.orphaned_cameras) state.append(" ", label("orphaned", { count: node.orphaned_cameras }));
    });
    updated.textContent = label("updated", { time: time.time(data.at) });
    root.setAttribute("aria-busy", "false");
  }

  async function refresh() {
    try {
      render(await api(config.systemUrl));
    } catch (error) {
      updated.textContent = label("unreachable", { error: error && error.message ? error.message : String(error) });
    } finally {
      setTimeout(refresh, (config.refreshS || 5) * 1000);
    }
  }
  refresh();
})();
