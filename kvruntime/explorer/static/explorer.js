// The write token: taken from the URL's #token=... (never sent to the server), kept
// in this tab's sessionStorage, and copied into every write form when it is sent.
(function () {
  "use strict";
  var match = /^#token=(.+)$/.exec(window.location.hash);
  if (match) {
    sessionStorage.setItem("kvruntime-token", decodeURIComponent(match[1]));
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  var input = document.getElementById("token-input");
  input.value = sessionStorage.getItem("kvruntime-token") || "";
  input.addEventListener("change", function () {
    sessionStorage.setItem("kvruntime-token", input.value);
  });
  document.querySelectorAll("form.write").forEach(function (form) {
    form.addEventListener("submit", function () {
      form.querySelector("input[name=token]").value = input.value;
    });
  });
})();

// The db page's live panel: the db's changes as the server sends them (Server-Sent
// Events, filtered as the page is). Keys and values arrive as JSON data and are put
// in textContent only: a hostile key is shown as the text it is.
(function () {
  "use strict";
  var panel = document.getElementById("live");
  if (!panel) {
    return;
  }
  var table = document.getElementById("changes");
  var status = document.getElementById("live-status");
  var KEEP = 100; // rows shown at most, the newest first
  var source = new EventSource(panel.getAttribute("data-src"));
  function cell(row, text, className) {
    var td = document.createElement("td");
    td.textContent = text;
    if (className) {
      td.className = className;
    }
    row.appendChild(td);
  }
  source.addEventListener("ready", function () {
    status.textContent = "live";
  });
  source.addEventListener("change", function (event) {
    var change = JSON.parse(event.data);
    var row = document.createElement("tr");
    row.className = "change " + change.kind;
    cell(row, String(change.seq));
    cell(row, change.kind);
    cell(row, change.key, "key");
    cell(row, change.value === null ? "" : change.value, "value");
    table.insertBefore(row, table.rows[1] || null);
    while (table.rows.length > KEEP + 1) {
      table.deleteRow(table.rows.length - 1);
    }
  });
  source.addEventListener("end", function (event) {
    status.textContent = "ended: " + JSON.parse(event.data);
    source.close();
  });
  source.addEventListener("error", function () {
    if (source.readyState !== EventSource.CLOSED) {
      status.textContent = "reconnecting";
    }
  });
  window.addEventListener("pagehide", function () {
    source.close();
  });
})();
