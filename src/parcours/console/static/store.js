// Store area: small enhancements for tablets; every form works without them.
"use strict";

// A double tap sends a form once: its buttons are disabled while the page is being left. (The server
// also acts once per request id, which covers a tap that gets through anyway.)
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || event.defaultPrevented || form.method.toLowerCase() !== "post") {
    return;
  }
  window.setTimeout(() => {
    for (const button of form.querySelectorAll("button[type=submit]")) {
      button.disabled = true;
    }
  }, 0);
});

// Back to a page from the history: its buttons work again.
window.addEventListener("pageshow", () => {
  for (const button of document.querySelectorAll("form button[type=submit][disabled]")) {
    button.disabled = false;
  }
});

// Endless aisle: choosing a pickup store or a relay point in its list also chooses that delivery.
for (const [selectId, radioId] of [["pickup_store", "f-store"], ["relay", "f-relay"]]) {
  const select = document.getElementById(selectId);
  const radio = document.getElementById(radioId);
  if (select && radio) {
    select.addEventListener("change", () => { radio.checked = true; });
  }
}
