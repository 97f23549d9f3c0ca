//! HTML building blocks: escaping and the page frame. Every value that
//! comes from a job, a queue name or a request goes through [`escape`].

use axum::response::Html;
use chrono::{DateTime, Utc};

use crate::DASHBOARD_PATH;

/// `text` with `& < > " '` replaced by entities, safe inside elements and quoted attributes.
///
/// ```
/// assert_eq!(hopper_web::html::escape("<script>\"x\"&'y'"), "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;");
/// ```
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `at` as `2024-05-01 12:00:00 UTC`.
///
/// ```
/// let at = chrono::DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z").unwrap().to_utc();
/// assert_eq!(hopper_web::html::time(at), "2024-05-01 12:00:00 UTC");
/// ```
pub fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A span of seconds as `3d 4h`, `5m 2s` or `7s`.
///
/// ```
/// assert_eq!(hopper_web::html::age(0), "0s");
/// assert_eq!(hopper_web::html::age(302), "5m 2s");
/// assert_eq!(hopper_web::html::age(90_000), "1d 1h");
/// ```
pub fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

const STYLE: &str = r#"
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{background:#1d2430;color:#fff;padding:.6rem 1.2rem;display:flex;gap:1.2rem;align-items:center}
header a{color:#cfd8e6;text-decoration:none}header a:hover{color:#fff}
header strong{margin-right:1rem}header form{margin-left:auto}
main{padding:1rem 1.2rem;max-width:1200px}
table{border-collapse:collapse;background:#fff;margin:.5rem 0 1rem;width:100%}
th,td{border-bottom:1px solid #e3e6eb;padding:.35rem .6rem;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}
.state{display:inline-block;padding:0 .45rem;border-radius:.6rem;font-size:12px;background:#e3e6eb}
.state-pending{background:#fff3c4}.state-started{background:#cfe3ff}.state-finished{background:#cdf0d5}
.state-failed{background:#ffd2d2}.state-cancelled{background:#e3e6eb}.state-gone{background:#fff;border:1px dashed #b7bfcb}
pre{background:#fff;border:1px solid #e3e6eb;padding:.6rem;overflow:auto;max-height:24rem}
form.inline{display:inline}button{cursor:pointer}
.cards{display:flex;gap:1rem;flex-wrap:wrap}.card{background:#fff;border:1px solid #e3e6eb;padding:.6rem 1rem;min-width:9rem;color:inherit;text-decoration:none}
a.card:hover{border-color:#8a96a8}.note{background:#eef6ff;border:1px solid #cfe3ff;padding:.4rem .8rem}
.card b{display:block;font-size:22px}.muted{color:#6b7587}.error{color:#b00020}
svg{background:#fff;border:1px solid #e3e6eb}
"#;

/// Follows the dashboard's live stream ([`crate::live`]) and, on each
/// `change` event, replaces `#live` with the same element of a fresh copy
/// of the page, so the page updates without a reload. Not while a form
/// field in it has the focus or holds an edit, which the fresh copy would
/// wipe out (it tries again two seconds later), nor while the tab is
/// hidden (it catches up when shown). `EventSource` reconnects on its own
/// when the stream drops; a stream refused for good is opened again after
/// five seconds. The page's root element carries `data-stream="open"`
/// while the stream is open, `"down"` while it is not. A page whose `#live` is not marked `data-live="on"` (a
/// confirmation) stays as it is.
const LIVE: &str = r#"
(function(){
  const current = () => document.getElementById('live');
  const main = current();
  if(!main || main.dataset.live !== 'on' || !window.EventSource) return;
  let busy = false, again = false, stale = false, retry = null;
  function editing(live){
    const focused = document.activeElement;
    if(focused && live.contains(focused) && focused.matches('input,select,textarea')) return true;
    const edited = (field) => field.type !== 'hidden' && field.value !== field.defaultValue;
    const chosen = (select) => Math.max(0, [...select.options].findIndex((o) => o.defaultSelected));
    return [...live.querySelectorAll('input,textarea')].some(edited)
      || [...live.querySelectorAll('select')].some((s) => s.selectedIndex !== chosen(s));
  }
  async function refresh(){
    if(busy){ again = true; return; }
    clearTimeout(retry);
    if(document.hidden){ stale = true; return; }
    const live = current();
    if(!live || editing(live)){ retry = setTimeout(refresh, 2000); return; }
    busy = true;
    try{
      const r = await fetch(location.href,{headers:{'x-hopper-live':'1'},credentials:'same-origin'});
      if(r.ok){
        const doc = new DOMParser().parseFromString(await r.text(),'text/html');
        const fresh = doc.getElementById('live'), old = current();
        if(fresh && old && !editing(old)) old.replaceWith(fresh);
      }
    }catch(e){}
    busy = false;
    if(again){ again = false; refresh(); }
  }
  document.addEventListener('visibilitychange', () => {
    if(!document.hidden && stale){ stale = false; refresh(); }
  });
  function connect(){
    const events = new EventSource(main.dataset.source);
    let dropped = false;
    events.addEventListener('change', refresh);
    events.addEventListener('open', () => {
      document.documentElement.dataset.stream = 'open';
      if(dropped){ dropped = false; refresh(); }
    });
    events.addEventListener('error', () => {
      document.documentElement.dataset.stream = 'down';
      dropped = true;
      if(events.readyState === EventSource.CLOSED) setTimeout(connect, 5000);
    });
  }
  connect();
})();
"#;

/// A dashboard page that updates itself: the frame, the navigation and
/// `body` (already escaped HTML) inside `<main id="live">`.
///
/// ```
/// let page = hopper_web::html::page("Jobs", "abc", "<p>hi</p>");
/// assert!(page.0.contains("<p>hi</p>"));
/// assert!(page.0.contains("value=\"abc\""));
/// ```
pub fn page(title: &str, csrf: &str, body: &str) -> Html<String> {
    frame(title, csrf, body, true)
}

/// A dashboard page that stays as it was rendered, as a confirmation does.
///
/// ```
/// let page = hopper_web::html::still_page("Delete?", "abc", "<p>sure?</p>");
/// assert!(page.0.contains(r#"data-live="off""#));
/// ```
pub fn still_page(title: &str, csrf: &str, body: &str) -> Html<String> {
    frame(title, csrf, body, false)
}

fn frame(title: &str, csrf: &str, body: &str, live: bool) -> Html<String> {
    let base = DASHBOARD_PATH;
    let live = if live { "on" } else { "off" };
    let title = escape(title);
    let csrf = escape(csrf);
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title} · Hopper</title><style>{STYLE}</style></head>
<body><header><strong>Hopper</strong>
<a href="{base}">Overview</a><a href="{base}/jobs">Jobs</a><a href="{base}/queues">Queues</a><a href="{base}/schedules">Schedules</a>
<form method="post" action="{base}/logout"><input type="hidden" name="csrf" value="{csrf}"><button>Log out</button></form>
</header>
<main id="live" data-live="{live}" data-source="{base}/live"><h1>{title}</h1>
{body}
</main><script>{LIVE}</script></body></html>"#
    ))
}

/// The login form, with an optional error message.
///
/// ```
/// let page = hopper_web::html::login_page(Some("<bad>"));
/// assert!(page.0.contains("&lt;bad&gt;"));
/// ```
pub fn login_page(error: Option<&str>) -> Html<String> {
    let base = DASHBOARD_PATH;
    let error = error
        .map(|e| format!(r#"<p class="error">{}</p>"#, escape(e)))
        .unwrap_or_default();
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Log in · Hopper</title><style>{STYLE}</style></head>
<body><header><strong>Hopper</strong></header><main><h1>Log in</h1>{error}
<form method="post" action="{base}/login">
<label>Admin token <input type="password" name="token" id="token" autofocus required></label>
<button type="submit">Log in</button></form>
<p class="muted">The token is the application's <code>ADMIN_TOKEN</code>, or the one it printed at start.</p>
</main></body></html>"#
    ))
}

/// A state badge.
///
/// ```
/// assert!(hopper_web::html::state(hopper::JobState::Failed).contains("state-failed"));
/// ```
pub fn state(state: hopper::JobState) -> String {
    let name = state.as_str();
    format!(r#"<span class="state state-{name}">{name}</span>"#)
}

/// Hidden inputs carrying `fields`, escaped.
///
/// ```
/// let html = hopper_web::html::hidden_fields(&[("queue", "<q>")]);
/// assert_eq!(html, r#"<input type="hidden" name="queue" value="&lt;q&gt;">"#);
/// ```
pub fn hidden_fields(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(name, value)| {
            format!(
                r#"<input type="hidden" name="{}" value="{}">"#,
                escape(name),
                escape(value)
            )
        })
        .collect()
}

/// A one-button POST form carrying the CSRF token.
///
/// ```
/// let form = hopper_web::html::button("/x", "tok", "Retry", &[("type", "<a>")]);
/// assert!(form.contains(r#"name="csrf" value="tok""#));
/// assert!(form.contains("&lt;a&gt;"));
/// ```
pub fn button(action: &str, csrf: &str, label: &str, fields: &[(&str, &str)]) -> String {
    let hidden = hidden_fields(fields);
    format!(
        r#"<form class="inline" method="post" action="{}"><input type="hidden" name="csrf" value="{}">{hidden}<button type="submit">{}</button></form>"#,
        escape(action),
        escape(csrf),
        escape(label)
    )
}
