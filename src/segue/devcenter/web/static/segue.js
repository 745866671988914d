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

function startLiveFeed(list) {
  let latest = Number(list.dataset.latest || 0);
  let paused = false;
  const status = document.getElementById("live-status");
  const toggle = document.getElementById("live-toggle");
  const empty = document.getElementById("live-empty");
  toggle.addEventListener("click", () => {
    paused = !paused;
    toggle.setAttribute("aria-pressed", String(paused));
    toggle.textContent = paused ? "Resume" : "Pause";
    status.textContent = paused ? "Paused." : "Live: new events appear as they arrive.";
  });
  async function poll() {
    if (!paused && !document.hidden) {
      try {
        const response = await fetch(`${list.dataset.feed}?after=${latest}`, {
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
