//! The console's style sheet and its one small script, served from the
//! manager itself (`/console/static/…`): nothing is loaded from outside.

pub(crate) const CSS: &str = r#"
:root { --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --bg: #ffffff; --panel: #f6f8fa;
        --accent: #0b5cad; --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
a { color: var(--accent); }
a:focus, button:focus, input:focus, select:focus, summary:focus { outline: 3px solid #f0b400; outline-offset: 2px; }
.skip { position: absolute; left: -999px; top: 0; background: #fff; padding: .5em; }
.skip:focus { left: .5em; }
header { background: #0d1b2a; color: #fff; padding: .6em 1em; display: flex; flex-wrap: wrap; gap: .5em 1.5em; align-items: center; }
header .brand { font-weight: 700; letter-spacing: .02em; }
header nav { display: flex; flex-wrap: wrap; gap: .25em .9em; }
header nav a { color: #cfe3ff; text-decoration: none; padding: .2em .1em; }
header nav a[aria-current="page"] { color: #fff; border-bottom: 2px solid #f0b400; }
header .who { margin-left: auto; display: flex; gap: .6em; align-items: center; font-size: .9em; }
header form { margin: 0; }
main { padding: 1em; max-width: 1100px; margin: 0 auto; }
h1 { font-size: 1.4em; margin: .2em 0 .6em; }
h2 { font-size: 1.1em; margin: 1.2em 0 .4em; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; margin: .4em 0 1em; }
th, td { text-align: left; padding: .4em .6em; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--panel); font-weight: 600; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .9em; }
.state { display: inline-block; padding: 0 .45em; border-radius: 1em; font-size: .85em; border: 1px solid currentColor; }
.state.ready, .state.serving, .state.active { color: var(--ok); }
.state.starting, .state.pending, .state.draining { color: var(--warn); }
.state.failed, .state.inactive { color: var(--bad); }
.alert { border: 1px solid var(--bad); background: #ffebe9; color: #82071e; padding: .6em .8em; border-radius: 6px; margin: .6em 0; }
.notice { border: 1px solid var(--ok); background: #dafbe1; color: #0f5323; padding: .6em .8em; border-radius: 6px; margin: .6em 0; }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 1em; margin: .8em 0; }
form.stack { display: grid; gap: .7em; max-width: 32em; }
label { display: grid; gap: .2em; font-weight: 600; }
label span.hint { font-weight: 400; color: var(--muted); font-size: .9em; }
input[type=text], input[type=password], select { font: inherit; padding: .45em .5em; border: 1px solid var(--line); border-radius: 6px; width: 100%; }
input[type=file] { font: inherit; }
button, .button { font: inherit; padding: .45em 1em; border-radius: 6px; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; text-decoration: none; display: inline-block; }
button.secondary, .button.secondary { background: #fff; color: var(--accent); }
button.danger { background: var(--bad); border-color: var(--bad); }
.inline { display: inline; margin: 0; }
form.row label.row { display: flex; }
form.row select { width: auto; min-width: 12em; }
header .who button { white-space: nowrap; }
.row { display: flex; flex-wrap: wrap; gap: .6em; align-items: center; }
progress { width: 100%; height: 1.2em; }
.muted { color: var(--muted); }
@media (max-width: 600px) {
  body { font-size: 16px; }
  header { padding: .5em .7em; }
  header .who { margin-left: 0; width: 100%; justify-content: space-between; }
  main { padding: .7em; }
  th, td { padding: .35em .4em; }
}
"#;

/// Live refresh of `[data-refresh]` sections, and uploads with a progress
/// bar. Pages work without it: forms post normally and a `<noscript>`
/// refresh stands in for the live sections.
pub(crate) const JS: &str = r#"
(function () {
  function refresh(el) {
    var url = el.getAttribute('data-refresh');
    setInterval(function () {
      fetch(url, { credentials: 'same-origin' }).then(function (r) {
        if (r.ok) { return r.text().then(function (t) { el.innerHTML = t; }); }
      }).catch(function () {});
    }, 2000);
  }
  function bindUpload(form) {
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      var bar = document.getElementById('upload-progress');
      var status = document.getElementById('upload-status');
      if (bar) { bar.hidden = false; bar.value = 0; }
      if (status) { status.textContent = 'Uploading…'; }
      var xhr = new XMLHttpRequest();
      xhr.open('POST', form.action);
      xhr.upload.onprogress = function (ev) {
        if (ev.lengthComputable && bar) { bar.max = ev.total; bar.value = ev.loaded; }
      };
      xhr.onload = function () {
        var to = xhr.responseURL ? new URL(xhr.responseURL) : null;
        if (xhr.status < 400 && to && to.pathname !== new URL(form.action, location.href).pathname) {
          location.href = xhr.responseURL;
          return;
        }
        var doc = new DOMParser().parseFromString(xhr.responseText, 'text/html');
        var main = doc.querySelector('main');
        if (main) {
          document.querySelector('main').replaceWith(main);
          init();
          var alert = document.querySelector('[role=alert]');
          if (alert) { alert.focus(); }
        }
      };
      xhr.onerror = function () {
        if (status) { status.textContent = 'The upload failed: the manager could not be reached.'; }
      };
      xhr.send(new FormData(form));
    });
  }
  function init() {
    document.querySelectorAll('[data-refresh]').forEach(refresh);
    document.querySelectorAll('form[data-upload]').forEach(bindUpload);
  }
  init();
})();
"#;
