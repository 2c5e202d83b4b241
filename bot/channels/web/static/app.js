// The web chat page: one websocket, reconnecting with back-off; every text is put into the
// page with DOM calls (createElement, textContent), never innerHTML.
(function () {
  "use strict";

  var TAGS = { b: true, i: true, a: true, code: true, pre: true };
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var log = document.getElementById("log");
  var conn = document.getElementById("conn");
  var composer = document.getElementById("composer");
  var box = document.getElementById("message");
  var fileInput = document.getElementById("file");
  var statusForm = document.getElementById("status-form");
  var staff = document.body.getAttribute("data-staff") === "true";
  var baseTitle = document.title;
  var unread = 0;
  var wantedScreen = new URLSearchParams(location.search).get("open");
  var socket = null;
  var attempts = 0;
  var queue = [];
  var waiting = 0; // messages sent whose answer is not complete yet

  function setWaiting(n) {
    waiting = Math.max(0, n);
    document.body.setAttribute("data-waiting", String(waiting));
  }

  function say(key) {
    conn.textContent = conn.getAttribute("data-" + key) || "";
  }

  function safeHref(href) {
    try {
      var url = new URL(href, location.href);
      if (["http:", "https:", "tel:", "mailto:"].indexOf(url.protocol) >= 0) return url.href;
    } catch (e) { /* not a URL */ }
    return null;
  }

  function build(parent, nodes) {
    (nodes || []).forEach(function (node) {
      if (typeof node === "string") {
        parent.appendChild(document.createTextNode(node));
        return;
      }
      if (!node || !TAGS[node.t]) return;
      var el = document.createElement(node.t);
      if (node.t === "a") {
        var href = safeHref(node.href || "");
        if (href) {
          el.href = href;
          el.rel = "noopener noreferrer";
          el.target = "_blank";
        }
      }
      build(el, node.c);
      parent.appendChild(el);
    });
  }

  function show(message) {
    var item = document.createElement("div");
    item.className = "msg " + (message.from === "me" ? "me" : "bot") + (message.notice ? " notice" : "");
    build(item, message.text);
    (message.links || []).forEach(function (link) {
      var href = safeHref(link.href);
      if (!href) return;
      var holder = document.createElement("div");
      holder.className = "links";
      var a = document.createElement("a");
      a.href = href;
      a.textContent = link.label;
      a.setAttribute("download", "");
      holder.appendChild(a);
      item.appendChild(holder);
    });
    if (message.buttons && message.buttons.length) {
      var buttons = document.createElement("div");
      buttons.className = "buttons";
      message.buttons.forEach(function (row) {
        var line = document.createElement("div");
        line.className = "row";
        row.forEach(function (b) {
          var button = document.createElement("button");
          button.type = "button";
          button.textContent = b.label;
          button.addEventListener("click", function () {
            send({ type: "button", data: b.data, label: b.label });
          });
          line.appendChild(button);
        });
        buttons.appendChild(line);
      });
      item.appendChild(buttons);
    }
    log.appendChild(item);
    log.scrollTop = log.scrollHeight;
  }

  // Staff pages: unread notices in the tab title while the page is not looked at, and a
  // desktop notification when the browser allows it.
  function looking() {
    return !document.hidden && document.hasFocus();
  }

  function markRead() {
    unread = 0;
    document.title = baseTitle;
    document.body.setAttribute("data-unread", "0");
  }

  function noticeArrived(message) {
    if (!staff || looking()) return;
    unread += 1;
    document.title = "(" + unread + ") " + baseTitle;
    document.body.setAttribute("data-unread", String(unread));
    if (window.Notification && Notification.permission === "granted") {
      var body = document.createElement("div");
      build(body, message.text);
      new Notification(baseTitle, { body: body.textContent.slice(0, 200) });
    }
  }

  function post(path, body) {
    return fetch(path, {
      method: "POST", credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf, "Content-Type": "application/json" },
      body: JSON.stringify(body || {})
    });
  }

  // `/bind CODE` needs a cookie, so the page posts the code; a new page loads as staff.
  function bindBrowser(code) {
    post("staff/bind", { code: code }).then(function (response) {
      return response.json();
    }).then(function (result) {
      if (result.ok) {
        location.replace(location.pathname);
      } else {
        setWaiting(waiting - 1);
      }
    }).catch(function () {
      setWaiting(waiting - 1);
    });
  }

  function send(payload) {
    setWaiting(waiting + 1);
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(payload));
    } else {
      queue.push(payload);
    }
  }

  function connect() {
    var url = new URL("ws", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    url.search = "";
    url.hash = "";
    say("connecting");
    socket = new WebSocket(url.href);
    socket.addEventListener("open", function () {
      attempts = 0;
      say("online");
      document.body.setAttribute("data-connected", "true");
      setWaiting(queue.length); // answers lost with the old socket will not come
      while (queue.length) socket.send(JSON.stringify(queue.shift()));
    });
    socket.addEventListener("message", function (event) {
      var data;
      try { data = JSON.parse(event.data); } catch (e) { return; }
      if (data.type === "history") {
        while (log.firstChild) log.removeChild(log.firstChild);
        data.messages.forEach(show);
        document.body.setAttribute("data-history", String(data.messages.length));
        if (!data.messages.length) send({ type: "text", text: "/start" });
        if (wantedScreen) {
          send({ type: "open", target: wantedScreen.slice(0, 64) });
          wantedScreen = null;
          history.replaceState(null, "", location.pathname);
        }
      } else if (data.type === "message") {
        show(data.message);
        if (data.message.notice) noticeArrived(data.message);
      } else if (data.type === "bind") {
        bindBrowser(data.code);
      } else if (data.type === "signed_out") {
        location.replace(location.pathname);
      } else if (data.type === "idle") {
        setWaiting(waiting - 1);
      } else if (data.type === "limited") {
        setWaiting(waiting - 1);
        say("limited");
      }
    });
    socket.addEventListener("close", function () {
      document.body.removeAttribute("data-connected");
      say("offline");
      // Back-off with jitter: 0.5 s, 1 s, 2 s … up to 30 s (background tabs drop sockets).
      var delay = Math.min(30000, 500 * Math.pow(2, attempts)) * (0.8 + Math.random() * 0.4);
      attempts += 1;
      setTimeout(connect, delay);
    });
  }

  function submitMessage() {
    var text = box.value;
    if (!text.trim()) return;
    send({ type: "text", text: text });
    box.value = "";
    box.focus();
  }

  composer.addEventListener("submit", function (event) {
    event.preventDefault();
    submitMessage();
  });
  // Enter sends, Shift+Enter is a new line; not while an IME (拼音) is composing.
  box.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submitMessage();
    }
  });

  if (fileInput) fileInput.addEventListener("change", function () {
    var file = fileInput.files && fileInput.files[0];
    if (!file) return;
    setWaiting(waiting + 1);
    var body = new FormData();
    body.append("file", file);
    fetch("upload", {
      method: "POST", body: body, credentials: "same-origin", headers: { "X-CSRF-Token": csrf }
    }).then(function (response) {
      // 409 (no upload asked for) and 413 (too large): the chat already says why.
      if (!response.ok && response.status !== 409 && response.status !== 413) {
        setWaiting(waiting - 1);
        say("upload-failed");
      }
    }).catch(function () {
      setWaiting(waiting - 1);
      say("upload-failed");
    });
    fileInput.value = "";
  });

  if (fileInput) document.getElementById("upload-button").addEventListener("click", function () {
    fileInput.click();
  });

  if (statusForm) statusForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var number = document.getElementById("case-number").value.trim();
    var code = document.getElementById("case-code").value.trim();
    if (!number || !code) return;
    send({ type: "text", text: "/status " + number + " " + code });
    document.getElementById("case-code").value = "";
  });

  var wanted = new URLSearchParams(location.search).get("case");
  if (wanted && statusForm) {
    document.getElementById("case-number").value = wanted.slice(0, 20);
    document.getElementById("lookup").open = true;
  }
  if (staff) {
    var notifyButton = document.getElementById("notify-button");
    if (window.Notification && Notification.permission === "default") {
      notifyButton.hidden = false;
      notifyButton.addEventListener("click", function () {
        Notification.requestPermission().then(function () { notifyButton.hidden = true; });
      });
    }
    document.getElementById("unbind-button").addEventListener("click", function () {
      post("staff/unbind").then(function (response) {
        if (response.ok) location.replace(location.pathname);
        else say("unbind-failed");
      }).catch(function () { say("unbind-failed"); });
    });
    document.addEventListener("visibilitychange", function () { if (looking()) markRead(); });
    window.addEventListener("focus", markRead);
    markRead();
  }
  connect();
})();
