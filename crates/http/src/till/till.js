// The web till's only script: the keypad, the scanner field that keeps focus, charging a
// scanned code without leaving the page (and resending the same sale after a network drop),
// and following an order until it settles. The pages work without it, only less smoothly.
(function () {
  "use strict";
  // ---- The sale screen ----
  var form = document.getElementById("sale");
  if (form) {
    var amount = document.getElementById("amount");
    var tip = document.getElementById("tip");
    var code = document.getElementById("code");
    var target = amount;
    var mark = function () {
      amount.classList.toggle("active-field", target === amount);
      tip.classList.toggle("active-field", target === tip);
    };
    var total = function () {
      var cents = function (v) {
        var m = /^(\d{0,9})(?:[.,](\d{0,2}))?$/.exec(v.trim());
        if (!m) return null;
        return parseInt(m[1] || "0", 10) * 100 + parseInt(((m[2] || "") + "00").slice(0, 2), 10);
      };
      var a = cents(amount.value), t = cents(tip.value);
      var out = document.getElementById("total-value");
      if (out && a !== null && t !== null) {
        var c = a + t;
        out.textContent = out.dataset.symbol + Math.floor(c / 100).toLocaleString("en-US") + "." + String(c % 100).padStart(2, "0");
      }
    };
    amount.addEventListener("focus", function () { target = amount; mark(); });
    tip.addEventListener("focus", function () { target = tip; mark(); });
    amount.addEventListener("input", total);
    tip.addEventListener("input", total);
    document.querySelectorAll("button[data-key]").forEach(function (b) {
      b.addEventListener("click", function () {
        var k = b.dataset.key, v = target.value;
        if (k === "back") v = v.slice(0, -1);
        else if (k === "clear") v = "";
        else if (k === ".") { if (v.indexOf(".") < 0) v = (v || "0") + "."; }
        else if (!/\.\d\d$/.test(v)) v = v + k;
        target.value = v;
        total();
        if (!narrow) code.focus();
      });
    });
    // On a phone (one column) there is no scanner: the amount comes first, so the page
    // stays at the top rather than scrolled to the code field.
    var narrow = window.matchMedia("(max-width: 600px)").matches;
    // On a till's screen the scanner field has focus from the start (set here rather than
    // with `autofocus`, which would scroll a phone past the amount).
    if (!narrow) code.focus();
    // The scanner types into whatever has focus: give it back to the code field whenever
    // focus falls to nothing or to a keypad key.
    if (!narrow) document.addEventListener("focusout", function () {
      setTimeout(function () {
        var a = document.activeElement;
        if (!a || a === document.body || (a.dataset && a.dataset.key)) code.focus();
      }, 0);
    });
    mark();
    total();

    var overlay = document.getElementById("charging");
    var lost = document.getElementById("charging-lost");
    var errorBox = document.getElementById("sale-error");
    var charge = function (body) {
      overlay.hidden = false;
      fetch(form.getAttribute("action"), {
        method: "POST",
        body: body,
        headers: { "x-till-fetch": "1", "content-type": "application/x-www-form-urlencoded" },
        credentials: "same-origin"
      }).then(function (r) { return r.json(); }).then(function (answer) {
        if (answer.redirect) { window.location.assign(answer.redirect); return; }
        overlay.hidden = true;
        lost.hidden = true;
        if (answer.order_id) form.querySelector("input[name=order_id]").value = answer.order_id;
        errorBox.querySelector(".title").textContent = answer.error || "";
        errorBox.hidden = false;
        code.focus();
        code.select();
      }).catch(function () {
        // The sale is on the gateway under its order id: sending the same form again
        // finds it and never charges twice.
        lost.hidden = false;
        setTimeout(function () { charge(body); }, 2000);
      });
    };
    form.addEventListener("submit", function (e) {
      var by = e.submitter;
      if (by && by.name === "wallet") return; // a QR: an ordinary form post
      e.preventDefault();
      charge(new URLSearchParams(new FormData(form)).toString());
    });
  }

  // ---- Late payments: a cancelled sale paid all the same shows on every screen ----
  var late = document.getElementById("late-payments");
  if (late) {
    // Which late payments a piece of HTML shows: replaced only when that changes, so a
    // notice is never swapped under the cashier's finger (each answer draws new refund ids).
    var idsOf = function (html) {
      var found = [], re = /data-order-id="([^"]*)"/g, m;
      while ((m = re.exec(html)) !== null) found.push(m[1]);
      return found.join(" ");
    };
    var shown = idsOf(late.innerHTML);
    var askLate = function () {
      fetch(late.dataset.url, { credentials: "same-origin", cache: "no-store" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html !== null && idsOf(html) !== shown) {
            shown = idsOf(html);
            late.innerHTML = html;
          }
          setTimeout(askLate, 3000);
        })
        .catch(function () { setTimeout(askLate, 3000); });
    };
    setTimeout(askLate, 3000);
  }

  // ---- An order being paid: follow it until it settles ----
  var order = document.getElementById("order");
  // Leaving a QR any way but its own buttons (a link, the tab closed, another address)
  // cancels it: the gateway closes it at the wallet (docs/TILL.md, "Cancel").
  var ownExit = false;
  if (order && order.dataset.cancelUrl) {
    document.querySelectorAll("#cancel-form button, #sign-out").forEach(function (b) {
      b.addEventListener("click", function () { ownExit = true; });
    });
    window.addEventListener("pagehide", function () {
      if (ownExit) return;
      var body = new URLSearchParams({ csrf: order.dataset.csrf, then: "leave" });
      navigator.sendBeacon(order.dataset.cancelUrl, body);
    });
  }
  if (order && order.dataset.final === "false") {
    var seen = order.dataset.status;
    var banner = document.getElementById("connection");
    var poll = function () {
      fetch(order.dataset.statusUrl, { credentials: "same-origin", cache: "no-store" })
        .then(function (r) {
          if (r.status === 401) { window.location.assign("/pos/sign-in?expired=1"); return null; }
          if (!r.ok) throw new Error("HTTP " + r.status);
          return r.json();
        })
        .then(function (s) {
          if (!s) return;
          banner.hidden = true;
          if (s.status !== seen) { ownExit = true; window.location.reload(); return; }
          setTimeout(poll, 1000);
        })
        .catch(function () {
          banner.hidden = false;
          setTimeout(poll, 1000);
        });
    };
    setTimeout(poll, 1000);
  }

  // ---- Today: the list follows payments and refunds as they finish ----
  var sales = document.getElementById("day");
  if (sales && sales.dataset.stateUrl) {
    var followDay = function () {
      fetch(sales.dataset.stateUrl, { credentials: "same-origin", cache: "no-store" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (s) {
          if (s && s.state && s.state !== sales.dataset.state) { window.location.reload(); return; }
          setTimeout(followDay, 3000);
        })
        .catch(function () { setTimeout(followDay, 3000); });
    };
    setTimeout(followDay, 3000);
  }

  // ---- The QR's countdown ----
  var countdown = document.getElementById("countdown");
  if (countdown) {
    var left = parseInt(countdown.dataset.secondsLeft, 10);
    var show = function () {
      if (left <= 0) {
        countdown.textContent = "0:00";
        var expired = document.getElementById("qr-expired");
        if (expired) expired.hidden = false;
        return;
      }
      countdown.textContent = Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0");
      left -= 1;
      setTimeout(show, 1000);
    };
    show();
  }

  // ---- Receipt ----
  var print = document.getElementById("print");
  if (print) print.addEventListener("click", function () { window.print(); });
})();
