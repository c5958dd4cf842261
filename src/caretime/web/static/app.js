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

// The browser's time zone, reported in a cookie so the server renders times in it (unless a
// zone was chosen on the preferences page). A page rendered before the server knew it is
// reloaded once, and only if the cookie really was stored (no reload loop without cookies).
const BROWSER_TZ_COOKIE = "caretime_browser_tz";

function reportBrowserZone() {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (!zone) return;
  const current = document.cookie.split("; ").find((c) => c.startsWith(BROWSER_TZ_COOKIE + "="));
  if (current === `${BROWSER_TZ_COOKIE}=${zone}`) return;
  document.cookie = `${BROWSER_TZ_COOKIE}=${zone}; path=/; max-age=31536000; SameSite=Lax`;
  const stored = document.cookie.includes(`${BROWSER_TZ_COOKIE}=`);
  if (stored && document.body.hasAttribute("data-zone-unknown")) window.location.reload();
}

document.addEventListener("DOMContentLoaded", () => {
  reportBrowserZone();
  renderCountdowns();
  setInterval(renderCountdowns, 1000);
  document.body.addEventListener("htmx:afterSettle", renderCountdowns);
});
