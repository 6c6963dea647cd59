//! The page shell every dashboard page shares: inline CSS (no external
//! fonts, stylesheets or scripts, so it works offline and under a strict
//! Content-Security-Policy), the navigation, the filter form, and how
//! figures and links are written. Every value goes through maud, which
//! escapes it: labels, model names and run ids are user data.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use crate::api::Params;

/// The page a link or the navigation points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Rankings,
    Runs,
    Trends,
    Compare,
    None,
}

/// Responsive: one column of tables that scroll sideways on a phone,
/// the filter form in as many columns as fit.
const CSS: &str = r#"
:root{--fg:#1b1f24;--muted:#57606a;--line:#d0d7de;--bg:#fff;--head:#24292f;--accent:#0969da;--tie:#fff8c5}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:var(--bg)}
header{background:var(--head);color:#fff;padding:.55rem 1rem;display:flex;flex-wrap:wrap;gap:.3rem 1.2rem;align-items:center}
header a{color:#fff;text-decoration:none}
header a[aria-current=page]{text-decoration:underline;text-underline-offset:.3em}
header .brand{font-weight:700;margin-right:.6rem}
header form{margin:0 0 0 auto}
header button{background:transparent;border-color:#8c959f;padding:.15rem .6rem}
main{max-width:1200px;margin:0 auto;padding:1rem}
h1{font-size:1.4rem;margin:.2rem 0 .8rem;word-break:break-word}
h2{font-size:1.15rem;margin:1.6rem 0 .4rem}
a{color:var(--accent)}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:.35rem .6rem;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
th{font-weight:600;background:#f6f8fa}
.num{text-align:right}
tr.tie td{background:var(--tie)}
form.filters{display:grid;grid-template-columns:repeat(auto-fill,minmax(160px,1fr));gap:.5rem .8rem;align-items:end;margin:0 0 1rem}
label{display:flex;flex-direction:column;font-size:.85rem;color:var(--muted);gap:.1rem}
input,select,button{font:inherit;padding:.3rem .45rem;border:1px solid var(--line);border-radius:4px;min-width:0}
button{background:var(--accent);color:#fff;border-color:var(--accent);cursor:pointer}
.muted{color:var(--muted)}
.valid{color:#1a7f37;font-weight:600}
.invalid{color:#cf222e;font-weight:600}
.error{border:1px solid #cf222e;background:#ffebe9;padding:.6rem .8rem;border-radius:4px}
.pager{display:flex;gap:1rem;margin:.8rem 0}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0}
dl.meta dt{color:var(--muted)}
dl.meta dd{margin:0;word-break:break-all}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,520px),1fr));gap:1rem}
figure{margin:0}
figure img{width:100%;height:auto;border:1px solid var(--line)}
figcaption{font-size:.85rem;color:var(--muted)}
svg.trend{width:100%;height:auto;max-height:420px;border:1px solid var(--line);background:#fff}
.swatch{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin-right:.35em;vertical-align:-.05em}
ul.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.3rem 1.2rem}
.login{max-width:420px}
.login label{margin-bottom:.6rem}
@media (max-width:640px){main{padding:.6rem}th,td{padding:.3rem .4rem}dl.meta{grid-template-columns:1fr}dl.meta dt{font-weight:600;margin-top:.3rem}}
"#;

/// A whole page.
pub(crate) fn page(title: &str, current: Nav, logout: bool, body: &Markup) -> Markup {
    let link = |nav: Nav, href: &str, text: &str| {
        html! { a href=(href) aria-current=[(nav == current).then_some("page")] { (text) } }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · harness" }
                // No favicon request (it would be a 401 from the API's fallback).
                link rel="icon" href="data:,";
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    span.brand { "harness results" }
                    nav {
                        (link(Nav::Rankings, "/", "Rankings")) " "
                        (link(Nav::Runs, "/runs", "Runs")) " "
                        (link(Nav::Trends, "/trends/ttft", "Trends")) " "
                        (link(Nav::Compare, "/compare", "Compare"))
                    }
                    @if logout {
                        form method="post" action="/logout" { button type="submit" { "Log out" } }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A figure as the dashboard writes it: three decimals (the full value is
/// in the element's `data-value`).
pub(crate) fn figure(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.3}")
    } else {
        "-".to_owned()
    }
}

/// A number cell: the figure, and its full value for machines.
pub(crate) fn number_cell(value: f64) -> Markup {
    html! { td.num data-value=(value) { (figure(value)) } }
}

/// A recorded start time, shortened to the second (`T` as a space).
pub(crate) fn when(started_at: &str) -> String {
    started_at
        .chars()
        .take(19)
        .collect::<String>()
        .replace('T', " ")
}

/// A query string (with its `?`) from name/value pairs; empty for none.
pub(crate) fn query(pairs: &[(&str, String)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .map(|(name, value)| format!("{name}={}", utf8_percent_encode(value, NON_ALPHANUMERIC)))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// The filters the API accepts, with the label the form shows and the
/// input type.
const FILTER_FIELDS: &[(&str, &str, &str)] = &[
    ("scenario", "Scenario", "text"),
    ("model", "Model", "text"),
    ("dataset", "Dataset", "text"),
    ("label", "Label (--label)", "text"),
    ("system", "System label", "text"),
    ("backend", "Backend URL", "text"),
    ("since", "Since", "date"),
    ("until", "Until (exclusive)", "date"),
];

/// The filters a request set, as name/value pairs (for links that keep
/// them).
pub(crate) fn filters_of(params: &Params) -> Vec<(&'static str, String)> {
    FILTER_FIELDS
        .iter()
        .filter_map(|(name, _, _)| params.get(name).map(|v| (*name, v)))
        .collect()
}

/// The filter form: a plain GET form to `action`; `extra` is placed
/// first (the metric choice, for instance).
pub(crate) fn filter_form(action: &str, params: &Params, extra: &Markup) -> Markup {
    html! {
        form.filters method="get" action=(action) {
            (extra)
            @for (name, text, kind) in FILTER_FIELDS {
                @let value = params.get(name).unwrap_or_default();
                // A date input cannot show an RFC 3339 time: plain text then.
                @let kind = if *kind == "date" && value.len() > 10 { "text" } else { kind };
                label { (text) input type=(kind) name=(name) value=(value); }
            }
            button type="submit" { "Apply" }
        }
    }
}

/// The metric choice of a filter form: the headline names, then every
/// recorded figure.
pub(crate) fn metric_select(valid: &[String], chosen: Option<&str>, any: Option<&str>) -> Markup {
    html! {
        label {
            "Metric"
            select name="metric" {
                @if let Some(any) = any {
                    option value="" selected[chosen.is_none()] { (any) }
                }
                @for m in valid {
                    option value=(m) selected[chosen == Some(m.as_str())] { (m) }
                }
            }
        }
    }
}
