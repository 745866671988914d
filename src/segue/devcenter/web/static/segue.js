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

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// One row of the live list: a summary line that opens onto the JSON (textContent only).
function liveItem(className, timeMs, timeText, parts, json) {
  const item = el("li", className);
  const details = el("details");
  const summary = el("summary");
  const time = el("time", "", timeText);
  time.dateTime = String(timeMs);
  summary.append(time, ...parts);
  details.append(summary, el("pre", "json", json));
  item.append(details);
  return item;
}

function eventItem(row) {
  const user = el("span", "ev-user");
  user.append(el("span", "muted", row.user_kind), " " + row.user);
  return liveItem("event new", row.received_at_ms, row.time, [
    el("span", "badge type", row.type),
    el("span", "ev-name", row.name),
    user,
  ], row.json);
}

function rejectionItem(row) {
  const item = row.index === null || row.index === undefined ? "" : ` · item ${row.index}`;
  return liveItem("event rejection new", row.time_ms, row.time, [
    el("span", "badge off", row.code),
    el("span", "ev-name", row.message),
    el("span", "ev-user muted", `${row.route} · ${row.status}${item}`),
  ], row.preview);
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
