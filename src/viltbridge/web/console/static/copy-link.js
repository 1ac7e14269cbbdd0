// A "copy" button for a link shown on the page: <button data-copy="…" data-copy-status="id" hidden>. The button
// shows only where the clipboard API exists; without it (or without JS) the link itself is there to select.
document.querySelectorAll("button[data-copy]").forEach(function (button) {
  if (!navigator.clipboard) { return; }
  var status = document.getElementById(button.dataset.copyStatus);
  button.hidden = false;
  button.addEventListener("click", function () {
    navigator.clipboard.writeText(button.dataset.copy).then(
      function () { status.textContent = "Copied."; },
      function () { status.textContent = "Could not copy: select the link above and copy it."; });
  });
});
