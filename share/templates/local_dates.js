// Dates and times the server wrote (twoi2c_hub/dates.py), in the reader's own locale: a day
// <time class="twoi2c-date" datetime="2027-01-01"> as "1 Jan 2027" or "1. Jan. 2027", a
// month (twoi2c-month, "2026-12") as "December 2026" or "Dezember 2026", and a moment
// (twoi2c-time, UTC) in the reader's time zone with its name, the UTC one kept as a tooltip.
// Days and months are calendar days of UTC: written in UTC, never shifted by a time zone.
// Numbers the server wrote (<data class="twoi2c-number" value="1234.56">) with the reader's
// separators and as many decimals as the value has: "1,234.56" or "1.234,56".
(function () {
  var formats = {
    "twoi2c-date": new Intl.DateTimeFormat(undefined, {year: "numeric", month: "short", day: "numeric", timeZone: "UTC"}),
    "twoi2c-month": new Intl.DateTimeFormat(undefined, {year: "numeric", month: "long", timeZone: "UTC"}),
    "twoi2c-time": new Intl.DateTimeFormat(undefined, {year: "numeric", month: "short", day: "numeric",
                                                        hour: "2-digit", minute: "2-digit", timeZoneName: "short"})
  };
  document.querySelectorAll("time.twoi2c-date, time.twoi2c-month, time.twoi2c-time").forEach(function (t) {
    var value = t.getAttribute("datetime") || "";
    var kind = Object.keys(formats).filter(function (k) { return t.classList.contains(k); })[0];
    var moment = new Date(kind === "twoi2c-month" ? value + "-01" : value);
    if (isNaN(moment)) return;
    if (kind === "twoi2c-time") t.title = t.textContent;
    t.textContent = formats[kind].format(moment);
  });
  var numbers = {};  // one format per number of decimals
  document.querySelectorAll("data.twoi2c-number").forEach(function (d) {
    var value = d.getAttribute("value") || "";
    if (!/^-?\d+(\.\d+)?$/.test(value)) return;
    var decimals = (value.split(".")[1] || "").length;
    numbers[decimals] = numbers[decimals] || new Intl.NumberFormat(undefined, {minimumFractionDigits: decimals, maximumFractionDigits: decimals});
    d.textContent = numbers[decimals].format(Number(value));
  });
})();
