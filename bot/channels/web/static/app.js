// The web chat page: one websocket, reconnecting with back-off; every text is put into the
// page with DOM calls (createElement, textContent), never innerHTML. Only APIs that WeChat's
// in-app browser (X5/XWeb, Chromium based) has; nothing here needs a newer one.
// Loaded in <head> by every page (one request: each costs seconds on slow 3G); deferred on the
// chat page, whose greeting comes in its HTML.

// 长辈模式 (larger text and buttons, a simpler layout), remembered per browser; applied before
// the first paint: by the server on the chat page, by this script (in <head>) elsewhere.
(function () {
  "use strict";
  var KEY = "bdb-elder";
  var root = document.documentElement;
  // The chat page defers this script, so the server reads the choice from a cookie and sends
  // that page already enlarged; the cookie's path is the site's (where static/ lives).
  var script = document.currentScript;
  var site = script ? new URL("..", script.src).pathname : "/";
  var on = root.classList.contains("elder");
  try { on = on || window.localStorage.getItem(KEY) === "1"; } catch (e) { /* storage blocked */ }

  function remember() {
    try { window.localStorage.setItem(KEY, on ? "1" : "0"); } catch (e) { /* kept in the cookie */ }
    document.cookie = "bdb_elder=" + (on ? "1" : "0") + "; path=" + site +
      "; max-age=31536000; SameSite=Lax";
  }

  function apply(value) {
    on = value;
    root.classList.toggle("elder", on);
    var button = document.getElementById("elder-switch");
    if (button) button.setAttribute("aria-pressed", on ? "true" : "false");
  }

  apply(on);
  if (on !== (document.cookie.indexOf("bdb_elder=1") >= 0)) remember(); // chosen before cookies
  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("elder-switch");
    if (!button) return;
    apply(on);
    button.addEventListener("click", function () {
      apply(!on);
      remember();
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
  var ready = false; // the socket is open and its history has arrived: sending is safe
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

  // `replacing`: the greeting the server put in the page, whose place this message takes.
  function show(message, replacing) {
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
          pressable(button, b.data, b.label);
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
    if (replacing && replacing.parentNode === log) {
      // The same words in the same place: no second fade-in, and the focus stays on its button.
      var focused = Array.prototype.indexOf.call(
        replacing.querySelectorAll("button"), document.activeElement);
      item.className += " settled";
      log.replaceChild(item, replacing);
      var again = item.querySelectorAll("button")[focused];
      if (again) again.focus();
      return;
    }
    log.appendChild(item);
    scrollToEnd();
  }

  function pressable(button, data, label) {
    button.addEventListener("click", function () {
      focusAnswer = true;
      send({ type: "button", data: data, label: label });
    });
  }

  // A first visit: the greeting came with the page, its buttons work before the socket opens
  // (pressed, they wait in the queue), and the chat's own /start answer takes its place.
  var greeting = log.querySelector("[data-greeting]");
  if (greeting) Array.prototype.forEach.call(greeting.querySelectorAll("button"), function (b) {
    pressable(b, b.getAttribute("data-data"), b.textContent);
  });

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

  // The visitor's own message is drawn at once (the server's answer brings only the replies);
  // offline, it waits in the queue and its bubble says 待发送 until the new socket sends it.
  function mine(text) {
    if (text) show({ from: "me", text: [text], at: Date.now() });
  }

  function own(payload) {
    var words = payload.type === "text" ? payload.text : payload.label;
    if (payload.type === "text" && words.split(" ")[0].toLowerCase() === "/bind") return "";
    return payload.type === "text" || payload.type === "button" ? words || "" : "";
  }

  function send(payload) {
    setWaiting(waiting + 1);
    if (socket && socket.readyState === WebSocket.OPEN && ready) {
      mine(own(payload));
      socket.send(JSON.stringify(payload));
    } else {
      var words = own(payload);
      queue.push({ payload: payload, item: words ? showPending(words) : null });
      if (state === "offline") say("offline");
    }
  }

  function showPending(words) {
    show({ from: "me", text: [words], buttons: [], links: [] });
    var item = log.lastChild;
    item.className += " pending";
    var tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = conn.getAttribute("data-queued") || "";
    item.insertBefore(tag, item.firstChild);
    return item;
  }

  // A queued message goes out once, after the new socket's history; its bubble becomes an
  // ordinary one then (the server sends no echo to the tab that sent it).
  function flush() {
    while (queue.length) {
      var entry = queue.shift();
      socket.send(JSON.stringify(entry.payload));
      if (entry.item) {
        entry.item.className = entry.item.className.replace(" pending", "");
        var tag = entry.item.querySelector(".tag");
        if (tag) entry.item.removeChild(tag);
      }
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
      // Answers lost with the old socket will not come; the history is awaited, then the queue.
      setWaiting(queue.length + 1);
      // The queue goes after the history: a new chat's /start must be answered first.
    });
    socket.addEventListener("message", function (event) {
      var data;
      try { data = JSON.parse(event.data); } catch (e) { return; }
      if (data.type === "history") {
        setWaiting(waiting - 1);
        if (data.messages.length || !greeting) {
          greeting = null;
          while (log.firstChild) log.removeChild(log.firstChild);
        }
        data.messages.forEach(function (m) { show(m); });
        queue.forEach(function (entry) { if (entry.item) log.appendChild(entry.item); });
        document.body.setAttribute("data-history", String(data.messages.length));
        ready = true;
        if (!data.messages.length) send({ type: "start" }); // the greeting, without a visitor bubble
        flush();
        if (wantedScreen) {
          send({ type: "open", target: wantedScreen.slice(0, 64) });
          wantedScreen = null;
          history.replaceState(null, "", location.pathname);
        }
      } else if (data.type === "message") {
        show(data.message);
        if (data.message.notice) noticeArrived(data.message);
      } else if (data.type === "answer") {
        // The complete answer to a message this page sent; the greeting that came with the
        // page gives way to the chat's own /start answer.
        data.messages.forEach(function (m, i) {
          var into = greeting && i === 0 && m.from === "bot" ? greeting : null;
          if (into) greeting = null;
          show(m, into);
        });
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
      ready = false;
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
