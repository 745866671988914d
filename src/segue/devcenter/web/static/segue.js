// segue Developer Center: copy buttons, confirmations and the live events feed.
// Vanilla JS, no dependencies; the pages work without it (except live updates).
"use strict";

document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source || !navigator.clipboard) return;
  navigator.clipboard.writeText(source.textContent.trim()).then(() => {
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = label; }, 1500);
  });
});

document.addEventListener("submit", (event) => {
  const message = event.target.dataset && event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

function eventItem(row) {
  const item = document.createElement("li");
  item.className = "event new";
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  const time = document.createElement("time");
  time.dateTime = String(row.received_at_ms);
  time.textContent = row.time;
  const type = document.createElement("span");
  type.className = "badge type";
  type.textContent = row.type;
  const name = document.createElement("span");
  name.className = "ev-name";
  name.textContent = row.name;
  const user = document.createElement("span");
  user.className = "ev-user";
  const kind = document.createElement("span");
  kind.className = "muted";
  kind.textContent = row.user_kind;
  user.append(kind, " " + row.user);
  summary.append(time, type, name, user);
  const pre = document.createElement("pre");
  pre.className = "json";
  pre.textContent = row.json;
  details.append(summary, pre);
  item.append(details);
  return item;
}

function rejectionItem(row) {
  const item = document.createElement("li");
  item.className = "event rejection new";
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  const time = document.createElement("time");
  time.dateTime = String(row.time_ms);
  time.textContent = row.time;
  const code = document.createElement("span");
  code.className = "badge off";
  code.textContent = row.code;
  const message = document.createElement("span");
  message.className = "ev-name";
  message.textContent = row.message;
  const where = document.createElement("span");
  where.className = "ev-user muted";
  where.textContent = `${row.route} · ${row.status}` +
    (row.index === null || row.index === undefined ? "" : ` · item ${row.index}`);
  summary.append(time, code, message, where);
  const pre = document.createElement("pre");
  pre.className = "json";
  pre.textContent = row.preview;
  details.append(summary, pre);
  item.append(details);
  return item;
}

function startLiveFeed(list) {
  let latest = Number(list.dataset.latest || 0);
  const rejectedList = document.getElementById("live-rejections");
  let rejectedLatest = Number((rejectedList && rejectedList.dataset.latest) || 0);
  let paused = false;
  const status = document.getElementById("live-status");
  const toggle = document.getElementById("live-toggle");
  const empty = document.getElementById("live-empty");
  const rejectedEmpty = document.getElementById("rejections-empty");
  function showCount() {
    const n = list.children.length;
    status.textContent = paused
      ? `Paused; showing the newest ${n} event${n === 1 ? "" : "s"}.`
      : `Showing the newest ${n} event${n === 1 ? "" : "s"}; new ones appear as they arrive.`;
  }
  toggle.addEventListener("click", () => {
    paused = !paused;
    toggle.setAttribute("aria-pressed", String(paused));
    toggle.textContent = paused ? "Resume" : "Pause";
    showCount();
  });
  async function poll() {
    if (!paused && !document.hidden) {
      try {
        const url = `${list.dataset.feed}?after=${latest}&rejected_after=${rejectedLatest}`;
        const response = await fetch(url, {
          credentials: "same-origin", headers: { Accept: "application/json" },
        });
        if (response.status === 401) {
          status.textContent = "Your session ended: sign in again to keep watching.";
          return;
        }
        if (response.ok) {
          const body = await response.json();
          const rows = body.events.filter((row) => row.id > latest);
          for (const row of rows.reverse()) {
            list.prepend(eventItem(row));
            latest = Math.max(latest, row.id);
          }
          while (list.children.length > 200) list.lastElementChild.remove();
          if (rows.length && empty) empty.hidden = true;
          const rejected = (body.rejections || []).filter((row) => row.seq > rejectedLatest);
          if (rejectedList) {
            for (const row of rejected.reverse()) {
              rejectedList.prepend(rejectionItem(row));
              rejectedLatest = Math.max(rejectedLatest, row.seq);
            }
            while (rejectedList.children.length > 200) rejectedList.lastElementChild.remove();
            if (rejected.length && rejectedEmpty) rejectedEmpty.hidden = true;
          }
          showCount();
        }
      } catch (_) {
        status.textContent = "Cannot reach segue; retrying…";
      }
    }
    setTimeout(poll, 2000);
  }
  setTimeout(poll, 2000);
}

const feed = document.getElementById("live-events");
if (feed) startLiveFeed(feed);
