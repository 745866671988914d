// segue Developer Center, Event Delivery: follows a replay's progress.
// Vanilla JS, no dependencies; without it the page still shows the state at load.
"use strict";

function followReplay(box) {
  const bar = document.getElementById("replay-progress");
  const state = document.getElementById("replay-state");
  const detail = document.getElementById("replay-detail");
  async function poll() {
    let again = true;
    try {
      const response = await fetch(box.dataset.poll, {
        credentials: "same-origin", headers: { Accept: "application/json" },
      });
      if (response.status === 401) {
        detail.textContent = "Your session ended: sign in again to follow the replay.";
        return;
      }
      if (response.ok) {
        const doc = await response.json();
        const counts = doc.progress;
        bar.max = Math.max(Number(doc.queued), 1);
        bar.value = Number(counts.done);
        bar.textContent = `${counts.done} of ${doc.queued}`;
        state.textContent = doc.state;
        let text = `${counts.done} of ${doc.queued} done · ${counts.succeeded} delivered`;
        for (const key of ["discarded", "expired", "retrying"]) {
          if (counts[key]) text += ` · ${counts[key]} ${key}`;
        }
        if (doc.state === "failed") text += ` · failed: ${doc.error || "unknown error"}`;
        if (counts.complete) text += " · complete";
        detail.textContent = text;
        again = !(counts.complete || doc.state === "failed");
      }
    } catch (_) {
      detail.textContent = "Cannot reach segue; retrying…";
    }
    if (again) setTimeout(poll, 1000);
  }
  setTimeout(poll, 500);
}

const replayBox = document.getElementById("replay-status");
if (replayBox) followReplay(replayBox);
