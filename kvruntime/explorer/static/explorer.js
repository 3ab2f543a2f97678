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
