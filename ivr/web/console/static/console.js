// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";

  // Live queue: replace the table with a fresh server-rendered fragment every second.
  var queue = document.getElementById("queue");
  if (queue && window.fetch) {
    var refresh = function () {
      fetch(queue.dataset.fragment, {credentials: "same-origin", headers: {"Accept": "text/html"}})
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null && html !== queue.dataset.last) { queue.innerHTML = html; queue.dataset.last = html; } })
        .catch(function () {})
        .finally(function () { setTimeout(refresh, 1000); });
    };
    setTimeout(refresh, 1000);
  }

  // Screen pop: when a call is bridged to my line, show the caller's card on whatever page I am on.
  var pop = document.getElementById("pop");
  if (pop && window.fetch) {
    var after = pop.dataset.after || "0";
    var text = function (tag, value) { var el = document.createElement(tag); el.textContent = value; return el; };
    var poll = function () {
      fetch(pop.dataset.url + "?after=" + encodeURIComponent(after), {credentials: "same-origin"})
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (!data) { return; }
          after = String(data.after);
          if (data.pops.length) {
            var c = data.pops[data.pops.length - 1];
            pop.innerHTML = "";
            pop.appendChild(text("h2", "Caller connected: " + (c.department || "city line")));
            pop.appendChild(text("p", "Said: \u201c" + (c.heard || "(keypad)") + "\u201d"));
            pop.appendChild(text("p", "Intent " + (c.intent || "\u2013") + ", confidence " +
              (c.confidence === null ? "\u2013" : Math.round(c.confidence * 100) + " %") + ", language " + c.language + ", number " + c.from));
            var link = text("a", "Open the call"); link.href = c.url; link.id = "pop-link";
            pop.appendChild(link);
            pop.hidden = false;
            link.focus();
          }
        })
        .catch(function () {})
        .finally(function () { setTimeout(poll, 1500); });
    };
    setTimeout(poll, 500);
  }

  // Editor: a problem's FILE:LINE link selects that line in the text.
  var editor = document.getElementById("editor");
  document.querySelectorAll("#problems a[data-line]").forEach(function (a) {
    a.addEventListener("click", function (event) {
      var line = parseInt(a.dataset.line, 10);
      if (!editor || !line) { return; }
      event.preventDefault();
      var lines = editor.value.split("\n");
      var start = lines.slice(0, line - 1).join("\n").length + (line > 1 ? 1 : 0);
      editor.focus();
      editor.setSelectionRange(start, start + (lines[line - 1] || "").length);
      editor.scrollTop = Math.max(0, (line - 5) * 19);
    });
  });

  // Prompts: play inline instead of following the link.
  var player = document.getElementById("player");
  document.querySelectorAll("a.play").forEach(function (a) {
    a.addEventListener("click", function (event) {
      if (!player || !window.fetch) { return; }
      event.preventDefault();
      fetch(a.dataset.json, {credentials: "same-origin"}).then(function (r) { return r.json(); }).then(function (data) {
        if (data.audio) { player.src = data.audio; player.hidden = false; player.play(); }
        else { alert("No rendered audio here; callers hear: " + data.words); }
      });
    });
  });
})();
