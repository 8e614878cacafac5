// chatkeep serve: streaming turns, keyboard, copy buttons, colour scheme, and scroll keeping.
// Everything the page shows of stored content arrives as server-rendered, sanitized HTML or is set
// as text (textContent): this file never builds markup from content.
(function () {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const main = document.getElementById("main");
  let running = null;

  // -- scrolling: open at the newest message, or at the one the address names ------------------
  function atBottom() { return main.scrollHeight - main.scrollTop - main.clientHeight < 80; }
  function toBottom() { main.scrollTop = main.scrollHeight; }
  function openAtTarget() {
    const target = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (target) target.scrollIntoView({ block: "center" }); else toBottom();
  }
  openAtTarget();

  // Earlier messages are put above what is shown: keep the reader where they were.
  let keep = null;
  document.body.addEventListener("htmx:beforeSwap", (e) => {
    if (e.detail.target && e.detail.target.classList.contains("earlier")) keep = main.scrollHeight - main.scrollTop;
  });
  document.body.addEventListener("htmx:afterSwap", () => {
    if (keep !== null) { main.scrollTop = main.scrollHeight - keep; keep = null; }
  });

  // -- notices -------------------------------------------------------------------------------
  const notice = document.getElementById("notice");
  let noticeTimer = 0;
  function tell(text) {
    notice.textContent = text;
    notice.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { notice.hidden = true; }, 8000);
  }
  document.body.addEventListener("htmx:responseError", (e) => tell(e.detail.xhr.responseText || "The server refused that."));
  document.body.addEventListener("htmx:sendError", () => tell("The chatkeep server cannot be reached."));

  // -- copy buttons on code blocks ---------------------------------------------------------------
  function copy(text, button) {
    const done = () => { button.textContent = "Copied"; setTimeout(() => { button.textContent = "Copy"; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, () => tell("The browser did not allow copying."));
      return;
    }
    const area = document.createElement("textarea");
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
    done();
  }
  function decorate(root) {
    root.querySelectorAll(".content pre.code").forEach((pre) => {
      if (pre.parentElement.classList.contains("code-block")) return;
      const wrap = document.createElement("div");
      wrap.className = "code-block";
      pre.replaceWith(wrap);
      wrap.append(pre);
      const button = document.createElement("button");
      button.type = "button";
      button.className = "button small copy";
      button.textContent = "Copy";
      button.setAttribute("aria-label", "Copy this code");
      button.addEventListener("click", () => copy(pre.innerText, button));
      wrap.append(button);
    });
  }
  decorate(document);
  document.body.addEventListener("htmx:load", (e) => decorate(e.detail.elt));

  // -- colour scheme -----------------------------------------------------------------------------
  const themeButton = document.getElementById("theme-toggle");
  function showTheme() {
    themeButton.setAttribute("aria-label", "Colour scheme: " + (document.documentElement.dataset.theme || "automatic"));
  }
  themeButton.addEventListener("click", () => {
    const order = { "": "dark", dark: "light", light: "" };
    const next = order[document.documentElement.dataset.theme || ""];
    if (next) document.documentElement.dataset.theme = next; else delete document.documentElement.dataset.theme;
    try { if (next) localStorage.setItem("chatkeep-theme", next); else localStorage.removeItem("chatkeep-theme"); } catch (e) { /* not kept */ }
    showTheme();
  });
  showTheme();

  document.querySelectorAll(".filters .filter").forEach((button) => {
    button.addEventListener("click", () => {
      document.querySelectorAll(".filters .filter").forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
    });
  });

  // -- turns: send, edit, regenerate, streamed ---------------------------------------------------
  const list = document.getElementById("messages");
  const composer = document.getElementById("composer");

  function conversationUrl(id) { return "/c/" + id.split("/").map(encodeURIComponent).join("/"); }

  function bubble(role, text, state) {
    const item = document.createElement("li");
    item.className = "message role-" + role + " " + state;
    const article = document.createElement("article");
    const head = document.createElement("header");
    head.className = "message-head";
    const name = document.createElement("h2");
    name.className = "role";
    name.textContent = role;
    head.append(name);
    const content = document.createElement("div");
    content.className = "content";
    content.append(document.createTextNode(text));
    article.append(head, content);
    item.append(article);
    return item;
  }

  // Screen readers hear a turn's progress once, not every piece of text as it streams in.
  function announce(text) {
    const status = document.getElementById("turn-status");
    if (status) status.textContent = text;
  }

  function showError(text) {
    const box = document.getElementById("turn-error");
    if (box) { box.textContent = text; box.hidden = false; } else { tell(text); }
  }

  function setBusy(busy) {
    if (!composer) return;
    composer.querySelector("#send").disabled = busy;
    composer.querySelector("#stop").hidden = !busy;
    document.querySelectorAll(".regenerate, .edit-form button").forEach((b) => { b.disabled = busy; });
  }

  async function runTurn(url, fields, options) {
    if (running || !list) return false;
    const follow = atBottom();
    const inserted = [];
    const reply = bubble("assistant", "", "streaming");
    const text = reply.querySelector(".content").firstChild;
    const target = options.target ? document.getElementById("m-" + options.target) : null;
    if (target) { while (target.nextElementSibling) target.nextElementSibling.remove(); target.remove(); }
    if (options.pending !== undefined) { const mine = bubble("user", options.pending, "pending"); list.append(mine); inserted.push(mine); }
    list.append(reply);
    if (follow) toBottom();
    const errorBox = document.getElementById("turn-error");
    if (errorBox) errorBox.hidden = true;

    function place(html, anchor) {
      inserted.splice(0).forEach((node) => node.remove());
      const anchorNode = anchor ? document.getElementById("m-" + anchor) : null;
      if (anchorNode && anchorNode.parentNode === list) {
        while (anchorNode.nextElementSibling && anchorNode.nextElementSibling !== reply) anchorNode.nextElementSibling.remove();
      } else if (anchor === null) {
        Array.from(list.children).forEach((node) => { if (node !== reply) node.remove(); });
      }
      const template = document.createElement("template");
      template.innerHTML = html;
      Array.from(template.content.children).forEach((node) => {
        list.insertBefore(node, reply.isConnected ? reply : null);
        inserted.push(node);
        htmx.process(node);
        decorate(node);
      });
    }

    function handle(event, data) {
      if (event === "conversation") {
        const address = conversationUrl(data.id);
        history.replaceState(null, "", address);
        if (composer) { composer.dataset.url = address + "/send"; composer.dataset.stop = address + "/stop"; }
        htmx.trigger(document.body, "conversations-changed");
      } else if (event === "prompt") {
        place(data.html, data.anchor);
      } else if (event === "delta") {
        text.appendData(data);
      } else if (event === "turn") {
        announce("The reply is saved.");
        reply.remove();
        place(data.html, data.anchor);
        htmx.trigger(document.body, "conversations-changed");
      } else if (event === "error") {
        showError(data.message);
      }
      if (follow) toBottom();
    }

    running = { stop: composer ? composer.dataset.stop : null };
    setBusy(true);
    announce("Writing the reply…");
    let saved = true;
    try {
      const response = await fetch(url, {
        method: "POST", credentials: "same-origin", body: new URLSearchParams(fields),
        headers: { "X-CSRF-Token": csrf, "Content-Type": "application/x-www-form-urlencoded" },
      });
      if (!response.ok) { saved = false; throw new Error(await response.text()); }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let event = "message", data = null;
          block.split("\n").forEach((line) => {
            if (line.startsWith("event: ")) event = line.slice(7);
            else if (line.startsWith("data: ")) data = JSON.parse(line.slice(6));
          });
          if (data !== null) handle(event, data);
        }
      }
    } catch (error) {
      showError(error.message || "The chatkeep server cannot be reached.");
    } finally {
      running = null;
      setBusy(false);
      if (reply.isConnected && !text.data) reply.remove();
      else reply.classList.remove("streaming");
    }
    return saved;
  }

  function modelField() {
    const field = composer && composer.querySelector('input[name="model"]');
    return field ? field.value : "";
  }

  if (composer) {
    const prompt = composer.querySelector("#prompt");
    composer.addEventListener("submit", async (e) => {
      e.preventDefault();
      const text = prompt.value;
      if (!text.trim() || running) return;
      prompt.value = "";
      const saved = await runTurn(composer.dataset.url, { text: text, model: modelField() }, { pending: text });
      if (!saved && !prompt.value) prompt.value = text;
    });
    prompt.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); composer.requestSubmit(); }
    });
    composer.querySelector("#stop").addEventListener("click", stop);
  }

  function stop() {
    if (!running || !running.stop) return;
    fetch(running.stop, { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrf } });
  }

  document.addEventListener("submit", (e) => {
    const form = e.target.closest(".edit-form");
    if (!form) return;
    e.preventDefault();
    const text = form.querySelector("textarea").value;
    if (text.trim()) runTurn(form.dataset.url, { text: text, model: modelField() }, { target: form.dataset.target });
  });
  document.addEventListener("click", (e) => {
    const button = e.target.closest("button.regenerate");
    if (button && button.dataset.url) runTurn(button.dataset.url, { model: modelField() }, { target: button.dataset.target });
  });

  // -- keyboard ----------------------------------------------------------------------------------
  function moveConversation(step) {
    const links = Array.from(document.querySelectorAll("#conversation-list .conversation-item a"));
    if (!links.length) return;
    const at = links.findIndex((a) => a.getAttribute("aria-current") === "page");
    const next = links[at === -1 ? (step > 0 ? 0 : links.length - 1) : at + step];
    if (next) location.href = next.href;
  }
  const keys = {
    KeyN: () => { location.href = "/new"; },
    Slash: () => { const s = document.getElementById("search"); s.focus(); s.select(); },
    KeyJ: () => moveConversation(1),
    KeyK: () => moveConversation(-1),
    KeyI: () => { const p = document.getElementById("prompt"); if (p) p.focus(); },
  };
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey) return;
    const typing = e.target.closest && e.target.closest("input, textarea, select, [contenteditable]");
    if (e.key === "Escape") {
      if (running) stop(); else if (typing) e.target.blur();
      return;
    }
    if (typing && !e.altKey) return;
    const action = keys[e.code] || (e.key === "/" ? keys.Slash : null);
    if (action && (e.altKey || !e.shiftKey)) { e.preventDefault(); action(); }
  });
})();
