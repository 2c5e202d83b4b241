// The web chat page: one websocket, reconnecting with back-off; every text is put into the
// page with DOM calls (createElement, textContent), never innerHTML. Only APIs that WeChat's
// in-app browser (X5/XWeb, Chromium based) has; nothing here needs a newer one.
// Loaded in <head> without defer by every page (one request: each costs seconds on slow 3G).

// 长辈模式 (larger text and buttons, a simpler layout), remembered per browser; applied at
// once, before the first paint.
(function () {
  "use strict";
  var KEY = "bdb-elder";
  var root = document.documentElement;
  var on = false;
  try { on = window.localStorage.getItem(KEY) === "1"; } catch (e) { /* storage blocked */ }

  function apply(value) {
    on = value;
    root.classList.toggle("elder", on);
    var button = document.getElementById("elder-switch");
    if (button) button.setAttribute("aria-pressed", on ? "true" : "false");
  }

  apply(on);
  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("elder-switch");
    if (!button) return;
    apply(on);
    button.addEventListener("click", function () {
      apply(!on);
      try { window.localStorage.setItem(KEY, on ? "1" : "0"); } catch (e) { /* kept for this page */ }
    });
  });
})();

document.addEventListener("DOMContentLoaded", function () {
  "use strict";
  if (!document.getElementById("log")) return; // /desk, login: no chat

  var TAGS = { b: true, i: true, a: true, code: true, pre: true };
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var log = document.getElementById("log");
  var conn = document.getElementById("conn");
  var composer = document.getElementById("composer");
  var box = document.getElementById("message");
  var fileInput = document.getElementById("file");
  var cameraInput = document.getElementById("camera");
  var lookup = document.getElementById("lookup");
  var statusForm = document.getElementById("status-form");
  var staff = document.body.getAttribute("data-staff") === "true";
  var baseTitle = document.title;
  var unread = 0;
  var wantedScreen = new URLSearchParams(location.search).get("open");
  var socket = null;
  var attempts = 0;
  var queue = [];
  var waiting = 0; // messages sent whose answer is not complete yet
  var focusAnswer = false; // a button in the log was pressed: its answer gets the focus
  var state = "connecting";

  function setWaiting(n) {
    waiting = Math.max(0, n);
    if (!waiting && focusAnswer) {
      focusAnswer = false;
      focusLatestAnswer();
    }
    document.body.setAttribute("data-waiting", String(waiting));
  }

  function say(key) {
    state = key;
    var text = conn.getAttribute("data-" + key) || "";
    if (key === "offline" && queue.length) {
      text += (conn.getAttribute("data-pending") || "").replace("{n}", String(queue.length));
    }
    conn.textContent = text;
  }

  function two(n) { return (n < 10 ? "0" : "") + n; }

  // 今天 10:32 / 12月5日 10:32 / 2025年12月5日 10:32, in the browser's own time zone.
  function when(ms) {
    var at = new Date(ms);
    var now = new Date();
    var key = "year";
    if (at.getFullYear() === now.getFullYear()) {
      key = at.getMonth() === now.getMonth() && at.getDate() === now.getDate() ? "today" : "date";
    }
    return (log.getAttribute("data-" + key) || "")
      .replace("{year}", String(at.getFullYear()))
      .replace("{month}", String(at.getMonth() + 1))
      .replace("{day}", String(at.getDate()))
      .replace("{time}", two(at.getHours()) + ":" + two(at.getMinutes()));
  }

  function safeHref(href) {
    try {
      var url = new URL(href, location.href);
      if (["http:", "https:", "tel:", "mailto:"].indexOf(url.protocol) >= 0) return url;
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
        var url = safeHref(node.href || "");
        if (url) {
          el.href = url.href;
          if (url.protocol === "http:" || url.protocol === "https:") {
            el.rel = "noopener noreferrer";
            el.target = "_blank";
          }
        }
      }
      build(el, node.c);
      parent.appendChild(el);
    });
  }

  function show(message) {
    var item = document.createElement("div");
    item.className = "msg " + (message.from === "me" ? "me" : "bot") + (message.notice ? " notice" : "");
    if (message.notice) {
      var tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = log.getAttribute("data-notice") || "";
      item.appendChild(tag); // a notice is told apart by a word, not by its colour alone
    }
    if (message.input) item.setAttribute("data-input", "true");
    build(item, message.text);
    (message.links || []).forEach(function (link) {
      var url = safeHref(link.href);
      if (!url) return;
      var holder = document.createElement("div");
      holder.className = "links";
      var a = document.createElement("a");
      a.href = url.href;
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
            focusAnswer = true;
            mine(b.label);
            send({ type: "button", data: b.data, label: b.label });
          });
          line.appendChild(button);
        });
        buttons.appendChild(line);
      });
      item.appendChild(buttons);
    }
    if (typeof message.at === "number") {
      var time = document.createElement("time");
      time.dateTime = new Date(message.at).toISOString();
      time.textContent = when(message.at);
      item.appendChild(time);
    }
    log.appendChild(item);
    scrollToEnd();
  }

  function scrollToEnd() {
    if (log.scrollHeight > log.clientHeight) {
      log.scrollTop = log.scrollHeight;
    } else if (document.documentElement.scrollHeight > window.innerHeight) {
      window.scrollTo(0, document.documentElement.scrollHeight); // short window: the page scrolls
    }
  }

  // After a press, the answer's first button (or the text box when it asks for text) gets the
  // focus, so a keyboard or screen-reader user continues where the answer is.
  function focusLatestAnswer() {
    var answers = log.querySelectorAll(".msg.bot");
    var last = answers[answers.length - 1];
    var first = last && !last.hasAttribute("data-input") && last.querySelector(".buttons button");
    (first || box).focus();
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

  // The visitor's own message is drawn at once; the server's answer brings only the replies.
  function mine(text) {
    if (text) show({ from: "me", text: [text], at: Date.now() });
  }

  function send(payload) {
    setWaiting(waiting + 1);
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(payload));
    } else {
      queue.push(payload); // sent once, when the socket is open again
      if (state === "offline") say("offline");
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
        if (!data.messages.length) send({ type: "start" }); // the greeting, without a visitor bubble
        if (wantedScreen) {
          send({ type: "open", target: wantedScreen.slice(0, 64) });
          wantedScreen = null;
          history.replaceState(null, "", location.pathname);
        }
      } else if (data.type === "message") {
        show(data.message);
        if (data.message.notice) noticeArrived(data.message);
      } else if (data.type === "answer") {
        data.messages.forEach(show); // the complete answer to a message this page sent
        setWaiting(waiting - 1);
      } else if (data.type === "messages") {
        data.messages.forEach(show); // sent from another tab of this chat, with its answer
      } else if (data.type === "bind") {
        bindBrowser(data.code);
      } else if (data.type === "signed_out") {
        location.replace(location.pathname);
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
    // A binding code is posted to staff/bind (as the server reads it), never shown.
    if (text.split(" ")[0].toLowerCase() !== "/bind") mine(text);
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

  function uploadFrom(input) {
    var file = input.files && input.files[0];
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
    input.value = "";
  }

  [[fileInput, "upload-button"], [cameraInput, "camera-button"]].forEach(function (pair) {
    var input = pair[0];
    if (!input) return;
    input.addEventListener("change", function () { uploadFrom(input); });
    document.getElementById(pair[1]).addEventListener("click", function () { input.click(); });
  });

  // Esc closes the 查询进度 panel and gives the focus back to its summary.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || !lookup || !lookup.open) return;
    lookup.open = false;
    lookup.querySelector("summary").focus();
  });

  // A phone's on-screen keyboard shrinks the visible area: keep the text box in sight.
  if (window.visualViewport) window.visualViewport.addEventListener("resize", function () {
    if (document.activeElement === box) box.scrollIntoView({ block: "nearest" });
  });

  if (statusForm) statusForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var number = document.getElementById("case-number").value.trim();
    var code = document.getElementById("case-code").value.trim();
    if (!number || !code) return;
    var lookupText = "/status " + number + " " + code;
    mine(lookupText);
    send({ type: "text", text: lookupText });
    document.getElementById("case-code").value = "";
  });

  var wanted = new URLSearchParams(location.search).get("case");
  if (wanted && statusForm) {
    document.getElementById("case-number").value = wanted.slice(0, 20);
    lookup.open = true;
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
});
