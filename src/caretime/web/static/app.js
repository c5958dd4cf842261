// caretime dashboard: the little behaviour htmx does not cover. No build step.
"use strict";

// Hold countdowns: <span data-countdown-to="2026-03-02T15:30:00Z">…</span> counts down each second.
function renderCountdowns() {
  const now = Date.now();
  for (const el of document.querySelectorAll("[data-countdown-to]")) {
    const left = Math.max(0, Math.round((Date.parse(el.dataset.countdownTo) - now) / 1000));
    const minutes = Math.floor(left / 60);
    const seconds = String(left % 60).padStart(2, "0");
    el.textContent = left > 0 ? `${minutes}:${seconds} left` : "expired";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  renderCountdowns();
  setInterval(renderCountdowns, 1000);
  document.body.addEventListener("htmx:afterSettle", renderCountdowns);
});
