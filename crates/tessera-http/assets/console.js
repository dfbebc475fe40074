// The admin console's one script, an enhancement only: every page works without it.
// A "select all" box for the user list's bulk actions.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var table = document.getElementById("users");
  if (!table) return;
  var boxes = table.querySelectorAll("tbody input[name=ids]");
  var head = table.querySelector("thead th");
  if (!head || boxes.length === 0) return;
  var all = document.createElement("input");
  all.type = "checkbox";
  all.setAttribute("aria-label", "Select every user on this page");
  all.addEventListener("change", function () {
    boxes.forEach(function (b) { b.checked = all.checked; });
  });
  head.appendChild(all);
});
