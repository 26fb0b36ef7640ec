// Parcours console, inbox: keyboard moves in the list (j / k) and live updates over Server-Sent Events.
// Every page works without this file: the list and the thread are plain links and forms.
"use strict";

(() => {
  // ------------------------------------------------------------------ the list: j / k between rows
  const list = document.getElementById("conversation-list");
  if (list) {
    const hint = document.getElementById("key-hint");
    if (hint) hint.hidden = false;
    document.addEventListener("keydown", (event) => {
      if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
      if (event.key !== "j" && event.key !== "k") return;
      const target = event.target;
      if (target instanceof HTMLElement && target.closest("input, textarea, select, [contenteditable]")) return;
      const links = Array.from(list.querySelectorAll("a.conv-link"));
      if (!links.length) return;
      const current = links.indexOf(document.activeElement);
      let next = event.key === "j" ? current + 1 : current - 1;
      if (current === -1) next = event.key === "j" ? 0 : links.length - 1;
      next = Math.max(0, Math.min(links.length - 1, next));
      links[next].focus();
      links[next].closest("tr")?.scrollIntoView({ block: "nearest" });
      event.preventDefault();
    });
  }

  // ------------------------------------------------------------------------------ live updates
  if (typeof EventSource === "undefined") return;

  function listen(url, onEvent, onReady) {
    const source = new EventSource(url);
    source.addEventListener("ready", () => {
      document.body.dataset.live = "ready";
      if (onReady) onReady();
    });
    source.addEventListener("inbox", (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return;
      }
      onEvent(data);
    });
    source.addEventListener("signed_out", () => source.close());
    source.addEventListener("error", () => {
      document.body.dataset.live = "reconnecting"; // EventSource reconnects by itself
    });
    window.addEventListener("pagehide", () => source.close());
    return source;
  }

  // The list: say how many conversations changed, with a link that shows them.
  const bar = document.getElementById("live-bar");
  if (bar && bar.dataset.liveUrl) {
    const changed = new Set();
    const text = bar.querySelector(".live-text");
    listen(bar.dataset.liveUrl, (data) => {
      if (!data.conversation_id) return;
      changed.add(data.conversation_id);
      const count = changed.size;
      text.textContent = count === 1 ? bar.dataset.one : bar.dataset.many.replace("{count}", String(count));
      bar.hidden = false;
    });
  }

  // A conversation: new messages join the thread as they are stored.
  const thread = document.getElementById("thread");
  if (thread && thread.dataset.liveUrl) {
    const announce = document.getElementById("live-announce");
    const notice = document.getElementById("live-notice");
    let fetching = null;
    let again = false;

    function lastId() {
      let best = null;
      let bestSeq = -1;
      for (const item of thread.querySelectorAll("li.msg[data-seq]")) {
        const seq = Number(item.dataset.seq);
        if (seq > bestSeq) {
          bestSeq = seq;
          best = item.dataset.messageId;
        }
      }
      return best;
    }

    async function fetchNew() {
      if (fetching) {
        again = true; // one more pass once this one ends: nothing is missed
        return fetching;
      }
      fetching = (async () => {
        do {
          again = false;
          const after = lastId();
          const url = thread.dataset.fragmentUrl + (after ? "?after=" + encodeURIComponent(after) : "");
          let response;
          try {
            response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
          } catch {
            return;
          }
          if (!response.ok || response.redirected) return; // signed out: the next page load says so
          const template = document.createElement("template");
          template.innerHTML = await response.text();
          const added = [];
          for (const item of template.content.querySelectorAll("li.msg[data-message-id]")) {
            if (document.getElementById(item.id)) continue;
            item.classList.add("msg-new");
            thread.appendChild(item);
            added.push(item);
          }
          if (added.length && announce) {
            announce.textContent = added.map((item) => item.dataset.announce).join(". ");
          }
          if (added.length) document.body.dataset.liveMessages = String(thread.children.length);
        } while (again);
      })();
      try {
        await fetching;
      } finally {
        fetching = null;
      }
    }

    listen(
      thread.dataset.liveUrl,
      (data) => {
        if (data.conversation_id !== thread.dataset.conversation) return;
        if (/^(assigned|unassigned|status_)/.test(data.type || "") && notice) notice.hidden = false;
        fetchNew();
      },
      fetchNew, // (re)connected: whatever arrived meanwhile
    );
  }
})();
