//! Rankings, runs, one run, trends: each page parses its query with the
//! API's rules ([`Params`]), reads through the functions the API answers
//! from, and renders escaped HTML.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, RawQuery, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use history::RunEntry;
use maud::{Markup, html};
use reports::figures::{Better, FIGURES};

use super::layout::{
    Nav, figure, filter_form, filters_of, metric_select, number_cell, query, when,
};
use super::{html_response, layout, logout_shown, respond, svg};
use crate::State;
use crate::api::{
    ApiError, DEFAULT_PAGE, FILTERS, MAX_PAGE, Params, content_type, encode, find_run,
    served_files, valid_metrics,
};
use crate::rankings::{self, ALIASES, Entry};

/// Parses a page's query with the API's rules, leaving out the empty
/// fields a GET form sends for inputs left blank.
pub(crate) fn params(raw: Option<&str>, extra: &[&str]) -> Result<Params, ApiError> {
    let mut allowed = FILTERS.to_vec();
    allowed.extend_from_slice(extra);
    params_only(raw, &allowed)
}

/// As [`params`], accepting only `allowed` (no filters).
pub(crate) fn params_only(raw: Option<&str>, allowed: &[&str]) -> Result<Params, ApiError> {
    let kept: Vec<&str> = raw
        .unwrap_or("")
        .split('&')
        .filter(|pair| pair.split_once('=').is_some_and(|(_, v)| !v.is_empty()))
        .collect();
    Params::parse(Some(&kept.join("&")), allowed)
}

/// The unit of a recorded figure and which way is better, as words.
fn describe(name: &str) -> (&'static str, &'static str) {
    match reports::figures::find(name) {
        Some(f) if f.better == Better::Higher => (f.unit, "higher is better"),
        Some(f) => (f.unit, "lower is better"),
        None => ("", "lower is better"),
    }
}

/// The link to one run's page.
fn run_link(run_id: &str) -> String {
    format!("/runs/{}", encode(run_id))
}

/// What the last column of a ranking says about an entry and the one
/// above it.
fn versus_above(i: usize, e: &Entry) -> &'static str {
    match (i, e.tied_with_previous, e.difference_tested) {
        (0, _, _) => "",
        (_, false, _) => "significantly different",
        (_, true, true) => "tie: not significant",
        (_, true, false) => "tie: untested (a single run)",
    }
}

fn ranking_table(alias: &str, name: &str, entries: &[Entry], filters: &[(&str, String)]) -> Markup {
    let (unit, better) = describe(name);
    html! {
        section id=(format!("ranking-{alias}")) {
            h2 {
                (alias)
                @if alias != name { " " span.muted { "(" (name) ")" } }
            }
            p.muted {
                "Mean per model and system" @if !unit.is_empty() { ", in " (unit) } "; " (better)
                ". " a href=(format!("/trends/{}{}", encode(alias), query(filters))) { "Trend over time" }
            }
            @if entries.is_empty() {
                p.muted { "No run records this figure for the selected runs." }
            } @else {
                div.scroll {
                    table {
                        thead { tr {
                            th.num { "Rank" } th { "Model" } th { "System" }
                            th.num { "Mean" } th.num { "95% CI" } th.num { "Runs" } th { "vs. the entry above" }
                        } }
                        tbody {
                            @for (i, e) in entries.iter().enumerate() {
                                tr.tie[i > 0 && e.tied_with_previous] data-system=(e.system) {
                                    td.num { (e.rank) @if i > 0 && e.tied_with_previous && e.rank != i + 1 { "=" } }
                                    td { (e.llm_name) }
                                    td { (e.system) }
                                    (number_cell(e.mean_value))
                                    td.num data-low=(e.ci_low) data-high=(e.ci_high) {
                                        (figure(e.ci_low)) " – " (figure(e.ci_high))
                                    }
                                    td.num { (e.sample_count) }
                                    td { (versus_above(i, e)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `/`: the rankings, every headline metric (or the one `metric` names).
pub(crate) async fn rankings(
    AxState(state): AxState<Arc<State>>,
    RawQuery(raw): RawQuery,
) -> Response {
    let result = rankings_body(&state, raw.as_deref()).await;
    respond(&state, Nav::Rankings, result)
}

async fn rankings_body(
    state: &Arc<State>,
    raw: Option<&str>,
) -> Result<(String, Markup), ApiError> {
    let params = params(raw, &["metric"])?;
    let filter = params.filter()?;
    let valid = valid_metrics(state).await?;
    let chosen = params.get("metric");
    let metrics = match &chosen {
        Some(m) if valid.contains(m) => vec![m.clone()],
        Some(m) => return Err(unknown_metric(m)),
        None => ALIASES.iter().map(|(a, _)| (*a).to_owned()).collect(),
    };
    let ranked = state
        .db(move |h| rankings::rank_metrics(h, metrics, &filter))
        .await?;
    let filters = filters_of(&params);
    let body = html! {
        h1 { "Rankings" }
        p.muted {
            "Runs grouped by model and system, ordered by the mean of each metric over their runs, "
            "with a " (rankings::LEVEL * 100.0) "% bootstrap interval of the mean and the number of runs. "
            "A highlighted row ties with the row above: their difference is not significant "
            "(or a side has a single run, so it cannot be tested); tied rows share a rank."
        }
        (filter_form("/", &params, &metric_select(&valid, chosen.as_deref(), Some("headline metrics"))))
        @for (alias, name, entries) in &ranked {
            (ranking_table(alias, name, entries, &filters))
        }
    };
    Ok(("Rankings".to_owned(), body))
}

fn unknown_metric(metric: &str) -> ApiError {
    let shown: String = metric.chars().take(40).collect();
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("unknown metric {shown:?}: choose one from the list"),
    )
}

/// A run's result as a word.
fn result_of(run: &RunEntry) -> (&'static str, String) {
    match run.valid {
        Some(true) => ("valid", "VALID".to_owned()),
        Some(false) => ("invalid", "INVALID".to_owned()),
        None => ("muted", run.status.clone()),
    }
}

fn metric_of(run: &RunEntry, name: &str) -> Option<f64> {
    run.metrics.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
}

/// The figures the runs list shows.
const LIST_FIGURES: &[(&str, &str)] = &[
    ("samples_per_s", "samples/s"),
    ("ttft_p50_ms", "TTFT p50 ms"),
    ("latency_p50_ms", "latency p50 ms"),
];

/// `/runs`: the recorded runs, newest first, a page at a time.
pub(crate) async fn runs(AxState(state): AxState<Arc<State>>, RawQuery(raw): RawQuery) -> Response {
    let result = runs_body(&state, raw.as_deref()).await;
    respond(&state, Nav::Runs, result)
}

async fn runs_body(state: &Arc<State>, raw: Option<&str>) -> Result<(String, Markup), ApiError> {
    let params = params(raw, &["limit", "offset"])?;
    let limit = params.number("limit", DEFAULT_PAGE, MAX_PAGE)?.max(1);
    let offset = params.number("offset", 0, 1_000_000_000)?;
    let mut filter = params.filter()?;
    // One more than shown says whether another page follows (as the API).
    filter.limit = Some(limit + 1);
    filter.offset = Some(offset);
    let mut runs = state.db(move |h| h.list(&filter)).await?;
    let more = runs.len() > limit;
    runs.truncate(limit);
    let filters = filters_of(&params);
    let page_link = |offset: usize| {
        let mut pairs = filters.clone();
        if limit != DEFAULT_PAGE {
            pairs.push(("limit", limit.to_string()));
        }
        if offset > 0 {
            pairs.push(("offset", offset.to_string()));
        }
        format!("/runs{}", query(&pairs))
    };
    let body = html! {
        h1 { "Runs" }
        (filter_form("/runs", &params, &html! {}))
        @if runs.is_empty() {
            p.muted { "No recorded run matches." }
        } @else {
            form method="get" action="/compare" {
                div.scroll {
                    table {
                        thead { tr {
                            th { "Started" } th { "Run" } th { "Model" } th { "Scenario" } th { "Mode" }
                            th { "System" } th { "Result" }
                            @for (_, text) in LIST_FIGURES { th.num { (text) } }
                            th { "Baseline" } th { "Candidate" }
                        } }
                        tbody {
                            @for run in &runs {
                                @let (class, result) = result_of(run);
                                tr data-run=(run.run_id) {
                                    td { (when(&run.started_at)) }
                                    td { a href=(run_link(&run.run_id)) { (run.run_id) } }
                                    td { (run.model) }
                                    td { (run.scenario) }
                                    td { (run.mode) }
                                    td { (rankings::system_of(&run.labels, &run.backends)) }
                                    td { span class=(class) { (result) } }
                                    @for (name, _) in LIST_FIGURES {
                                        @match metric_of(run, name) {
                                            Some(v) => (number_cell(v)),
                                            None => td.num.muted { "-" },
                                        }
                                    }
                                    td { input type="radio" name="baseline" value=(run.run_id) aria-label="baseline"; }
                                    td { input type="radio" name="candidate" value=(run.run_id) aria-label="candidate"; }
                                }
                            }
                        }
                    }
                }
                div.pager {
                    @if offset > 0 {
                        a href=(page_link(offset.saturating_sub(limit))) { "← Newer" }
                    }
                    span.muted { "Runs " (offset + 1) "–" (offset + runs.len()) }
                    @if more {
                        a href=(page_link(offset + limit)) { "Older →" }
                    }
                    button type="submit" { "Compare baseline and candidate" }
                }
            }
        }
    };
    Ok(("Runs".to_owned(), body))
}

/// `/runs/{id}`: one run's settings, figures, charts and report.
pub(crate) async fn run(
    AxState(state): AxState<Arc<State>>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let result = run_body(&state, id).await;
    respond(&state, Nav::Runs, result)
}

/// The recorded figures in the registry's order, then any other.
fn ordered_figures(run: &RunEntry) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = FIGURES
        .iter()
        .filter_map(|f| metric_of(run, f.name).map(|v| (f.name.to_owned(), v)))
        .collect();
    for (name, value) in &run.metrics {
        if !out.iter().any(|(n, _)| n == name) {
            out.push((name.clone(), *value));
        }
    }
    out
}

async fn run_body(state: &Arc<State>, id: String) -> Result<(String, Markup), ApiError> {
    let run = find_run(state, id).await?;
    let dir = PathBuf::from(&run.run_dir);
    let files = tokio::task::spawn_blocking(move || served_files(&dir))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let file_link = |name: &str| format!("/runs/{}/files/{}", encode(&run.run_id), encode(name));
    let charts: Vec<&String> = files
        .iter()
        .filter(|f| content_type(f) == Some("image/png"))
        .collect();
    let report = files.iter().any(|f| f == "report.html");
    let (class, result) = result_of(&run);
    let same_workload = [
        ("model", run.model.clone()),
        ("scenario", run.scenario.clone()),
    ];
    let body = html! {
        h1 { "Run " (run.run_id) }
        p {
            span class=(class) { (result) }
            @if report {
                " · " a href=(file_link("report.html")) { "Full report (report.html)" }
            }
        }
        @if !run.reasons.is_empty() {
            ul.error { @for r in &run.reasons { li { (r) } } }
        }
        dl.meta {
            dt { "Started" } dd { (run.started_at) }
            dt { "Model" } dd { (run.model) }
            dt { "Scenario" } dd { (run.scenario) }
            dt { "Mode" } dd { (run.mode) }
            dt { "System" } dd { (rankings::system_of(&run.labels, &run.backends)) }
            dt { "Backends" } dd { (run.backends.join(", ")) }
            dt { "Dataset" } dd { (run.dataset.as_deref().unwrap_or("-")) }
            dt { "Labels" } dd {
                @if run.labels.is_empty() { "-" }
                @for (k, v) in &run.labels { code { (k) "=" (v) } " " }
            }
            dt { "Status" } dd { (run.status) }
            dt { "Harness" } dd { (run.harness_version) }
            dt { "Run directory" } dd { code { (run.run_dir) } }
        }
        h2 { "Figures" }
        div.scroll {
            table #figures {
                thead { tr { th { "Figure" } th.num { "Value" } th { "Unit" } th { "Better" } th {} } }
                tbody {
                    @for (name, value) in ordered_figures(&run) {
                        @let (unit, better) = describe(&name);
                        @let definition = reports::figures::find(&name).map(|f| f.definition);
                        tr data-figure=(name) {
                            td title=[definition] { (name) }
                            (number_cell(value))
                            td { (unit) }
                            td.muted { (better) }
                            td { a href=(format!("/trends/{}{}", encode(&name), query(&same_workload))) { "trend" } }
                        }
                    }
                }
            }
        }
        h2 { "Charts" }
        @if files.is_empty() {
            p.muted {
                "The run directory is not readable on this server, so its charts and report "
                "cannot be shown; the figures above come from the history."
            }
        } @else if charts.is_empty() {
            p.muted { "The run directory holds no charts." }
        } @else {
            div.charts {
                @for name in &charts {
                    figure {
                        img src=(file_link(name)) alt=(format!("{name} of run {}", run.run_id)) loading="lazy";
                        figcaption { (name) }
                    }
                }
            }
        }
        @let others: Vec<&String> = files.iter().filter(|f| !charts.contains(f)).collect();
        @if !others.is_empty() {
            h2 { "Files" }
            ul { @for name in others { li { a href=(file_link(name)) { (name) } } } }
        }
    };
    Ok((format!("Run {}", run.run_id), body))
}

/// `/trends?metric=...`: the metric form's target; goes to the metric's
/// page, keeping the filters.
pub(crate) async fn trends_choice(
    AxState(state): AxState<Arc<State>>,
    RawQuery(raw): RawQuery,
) -> Response {
    match params(raw.as_deref(), &["metric"]) {
        Ok(params) => {
            let metric = params.get("metric").unwrap_or_else(|| "ttft".to_owned());
            let target = format!("/trends/{}{}", encode(&metric), query(&filters_of(&params)));
            Redirect::to(&target).into_response()
        }
        Err(e) => super::error_page(&state, Nav::Trends, &e),
    }
}

/// `/trends/{metric}`: one metric over time, a line per (model, system),
/// and the points as a table.
pub(crate) async fn trend(
    AxState(state): AxState<Arc<State>>,
    UrlPath(metric): UrlPath<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let result = trend_body(&state, metric, raw.as_deref()).await;
    if let Err(e) = &result
        && e.status() == StatusCode::NOT_FOUND
    {
        return unknown_metric_page(&state, e).await;
    }
    respond(&state, Nav::Trends, result)
}

/// The 404 of an unknown metric, with a link to each valid one.
async fn unknown_metric_page(state: &Arc<State>, error: &ApiError) -> Response {
    let valid = valid_metrics(state).await.unwrap_or_default();
    let body = html! {
        h1 { "404 Not Found" }
        p.error { (error.message()) }
        ul { @for m in &valid { li { a href=(format!("/trends/{}", encode(m))) { (m) } } } }
    };
    html_response(
        StatusCode::NOT_FOUND,
        &layout::page("Not Found", Nav::Trends, logout_shown(state), &body),
    )
}

async fn trend_body(
    state: &Arc<State>,
    metric: String,
    raw: Option<&str>,
) -> Result<(String, Markup), ApiError> {
    let valid = valid_metrics(state).await?;
    if !valid.contains(&metric) {
        return Err(unknown_metric(&metric));
    }
    let params = params(raw, &[])?;
    let filter = params.filter()?;
    let name = rankings::resolve(&metric).to_owned();
    let query_name = name.clone();
    let values = state.db(move |h| h.values(&query_name, &filter)).await?;
    let series = rankings::trend_series(&values);
    let (unit, better) = describe(&name);
    // The table: every point, newest first, coloured as its line.
    let mut rows: Vec<(usize, &rankings::TrendPoint)> = series
        .iter()
        .enumerate()
        .flat_map(|(i, s)| s.points.iter().map(move |p| (i, p)))
        .collect();
    rows.sort_by(|a, b| (&b.1.started_at, &b.1.run_id).cmp(&(&a.1.started_at, &a.1.run_id)));
    let choose = html! {
        (metric_select(&valid, Some(&metric), None))
    };
    let body = html! {
        h1 { "Trend: " (metric) @if metric != name { " " span.muted { "(" (name) ")" } } }
        p.muted {
            "One line per model and system, oldest to newest"
            @if !unit.is_empty() { "; " (unit) } "; " (better) "."
        }
        (filter_form("/trends", &params, &choose))
        (svg::trend_chart(&series, &name, unit))
        @if !series.is_empty() {
            ul.legend {
                @for (i, s) in series.iter().enumerate() {
                    li { span.swatch style=(format!("background:{}", svg::color(i))) {} (s.llm_name) " · " (s.system) }
                }
            }
            div.scroll {
                table #points {
                    thead { tr { th { "Started" } th { "Run" } th { "Model" } th { "System" } th.num { (name) } } }
                    tbody {
                        @for (i, p) in &rows {
                            @let s = &series[*i];
                            tr data-run=(p.run_id) {
                                td { (when(&p.started_at)) }
                                td { a href=(run_link(&p.run_id)) { (p.run_id) } }
                                td { span.swatch style=(format!("background:{}", svg::color(*i))) {} (s.llm_name) }
                                td { (s.system) }
                                (number_cell(p.value))
                            }
                        }
                    }
                }
            }
        }
    };
    Ok((format!("Trend: {metric}"), body))
}
