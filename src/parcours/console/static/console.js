// Parcours console: small progressive enhancements; every page works without them.
"use strict";

// Forms marked data-confirm ask before they are sent (unmerge, cancel, refund...).
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
});
