// Copy buttons, and re-drawing the compose form when its method changes (its parameters differ).
"use strict";
document.addEventListener("click", function (event) {
  var button = event.target.closest("button.copy");
  if (!button) return;
  var source = document.getElementById(button.dataset.copy);
  if (!source) return;
  var done = function () { button.textContent = "Copied"; setTimeout(function () { button.textContent = "Copy"; }, 1500); };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(source.textContent).then(done);
  } else {  // plain http on another host: the clipboard API is not offered there
    var range = document.createRange();
    range.selectNodeContents(source);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    document.execCommand("copy");
    done();
  }
});
document.addEventListener("change", function (event) {
  if (event.target.id !== "method") return;
  document.querySelectorAll("#compose-form [name^='p:']").forEach(function (input) { input.disabled = true; });
  event.target.form.submit();
});
