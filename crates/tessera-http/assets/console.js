// The admin console's one script. Every page works without it but for the passkey
// sign-in, which needs the browser's WebAuthn API.
"use strict";

// A "select all" box for the user list's bulk actions.
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

// The passkey sign-in: a challenge from the console, the browser's passkey prompt, then
// the form (its CSRF token, the challenge and the answer) posted as any sign-in form is.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("passkey");
  if (!form || !window.PublicKeyCredential || !PublicKeyCredential.parseRequestOptionsFromJSON) return;
  var button = document.getElementById("passkey-sign-in");
  var error = document.getElementById("passkey-error");
  form.hidden = false;
  button.addEventListener("click", function () {
    button.disabled = true;
    error.hidden = true;
    fetch(form.dataset.options, {
      method: "POST",
      body: new URLSearchParams({ csrf: form.elements.csrf.value }),
      credentials: "same-origin",
    })
      .then(function (res) {
        if (!res.ok) throw new Error("the console answered " + res.status);
        return res.json();
      })
      .then(function (answer) {
        form.elements.challenge_id.value = answer.challenge_id;
        var publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(answer.options);
        return navigator.credentials.get({ publicKey: publicKey });
      })
      .then(function (credential) {
        form.elements.credential.value = JSON.stringify(credential.toJSON());
        form.submit();
      })
      .catch(function (e) {
        var name = e && e.name;
        error.textContent = name === "NotAllowedError"
          ? "The passkey sign-in was cancelled or timed out."
          : name === "SecurityError"
            ? "Passkeys do not work at this page's address: open the console at an origin in WEBAUTHN_RP_ORIGINS."
            : "The passkey sign-in could not start. Reload the page and try again.";
        error.hidden = false;
        button.disabled = false;
      });
  });
});
