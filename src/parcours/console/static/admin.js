// Admin pages: a "Copy" button beside each copy-ready text (webhook URLs, the widget's tag, secrets, a new
// write key or token). Without JavaScript the text stays on the page, selectable.
"use strict";

(() => {
  function select(element) {
    const range = document.createRange();
    range.selectNodeContents(element);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  async function copy(element, button) {
    const text = element.textContent.trim();
    let copied = false;
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
        copied = true;
      }
    } catch (error) {
      copied = false;
    }
    if (!copied) {
      select(element); // the browser refuses the clipboard (plain http): the text is selected to copy by hand
      copied = document.execCommand && document.execCommand("copy");
    }
    if (copied) {
      button.textContent = element.dataset.copied;
      window.setTimeout(() => { button.textContent = element.dataset.copy; }, 2000);
    }
  }

  for (const element of document.querySelectorAll("[data-copy]")) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "secondary copy-button";
    button.textContent = element.dataset.copy;
    if (element.dataset.copyName) {
      button.setAttribute("aria-label", `${element.dataset.copy} ${element.dataset.copyName}`);
    }
    button.addEventListener("click", () => { copy(element, button); });
    element.insertAdjacentElement("afterend", button);
  }
})();
