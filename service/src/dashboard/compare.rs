//! `/compare?baseline=RUN&candidate=RUN`: two recorded runs compared by
//! `reports::compare`, the function `harness compare` (and the compare
//! API) use, so the page shows the figures, intervals and refusals the
//! command line shows.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{RawQuery, State as AxState};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use reports::compare::{self, Allow, Comparison};

use super::layout::{self, Nav};
use super::{html_response, logout_shown};
use crate::State;
use crate::api::{ApiError, Params, encode, flag, load_runs, run_dir_of};

const PARAMS: &[&str] = &[
    "baseline",
    "candidate",
    "allow_mismatch",
    "allow_failed_runs",
];

fn form(params: &Params) -> Markup {
    let value = |name: &str| params.get(name).unwrap_or_default();
    let checked = |name: &str| params.get(name).as_deref() == Some("true");
    html! {
        form.filters method="get" action="/compare" {
            label { "Baseline run" input type="text" name="baseline" value=(value("baseline")); }
            label { "Candidate run" input type="text" name="candidate" value=(value("candidate")); }
            label { span { input type="checkbox" name="allow_mismatch" value="true" checked[checked("allow_mismatch")]; " compare different workloads" } }
            label { span { input type="checkbox" name="allow_failed_runs" value="true" checked[checked("allow_failed_runs")]; " judge failed runs" } }
            button type="submit" { "Compare" }
        }
    }
}

/// Loads both runs and compares them as `harness compare` does; a refusal
/// is an error with the command line's reasons.
fn load_and_compare(dirs: &[PathBuf], allow: Allow) -> Result<Comparison, ApiError> {
    let runs = load_runs(dirs)?;
    let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
    compare::compare_checked(&runs, &names, &[], allow)
        .map(|(comparison, _)| comparison)
        .map_err(|refusal| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                refusal.message(
                    "compare",
                    "ticking \u{201c}judge failed runs\u{201d}",
                    "ticking \u{201c}compare different workloads\u{201d}",
                ),
            )
        })
}

fn comparison_table(c: &Comparison) -> Markup {
    let role = |i: usize| if i == 0 { "baseline" } else { "candidate" };
    html! {
        @if !c.differences.is_empty() {
            h2 { "Settings that differ" }
            ul {
                @for d in &c.differences {
                    li { (compare::describe(d, &["baseline", "candidate"])) }
                }
            }
        }
        h2 { "Figures" }
        p.muted {
            "B − A is the candidate minus the baseline with its 95% bootstrap interval; "
            "* marks a significant difference (the interval excludes 0). "
            "The p-value is Mann-Whitney's over the two runs' per-query values."
        }
        div.scroll {
            table #comparison {
                thead { tr {
                    th { "Metric" }
                    th.num { "Baseline" } th.num { "Candidate" }
                    th.num { "B − A [95% CI]" } th.num { "p" } th { "Best" }
                } }
                tbody {
                    @for row in &c.rows {
                        @let diff = row.diffs.first().and_then(Option::as_ref);
                        tr data-metric=(row.metric) {
                            td { (row.metric) }
                            @for v in &row.values {
                                @match v {
                                    Some(v) => (layout::number_cell(*v)),
                                    None => td.num.muted { "-" },
                                }
                            }
                            @match diff {
                                Some(d) => td.num data-diff=(d.diff) {
                                    (format!("{:+.3} [{:+.3}, {:+.3}]", d.diff, d.lo, d.hi))
                                    @if d.significant() { " *" }
                                },
                                None => td.num.muted { "-" },
                            }
                            @match row.mann_whitney_p.first().copied().flatten() {
                                Some(p) => td.num { (format!("{p:.4}")) },
                                None => td.num.muted { "-" },
                            }
                            td { (row.ranking.first().map_or("-", |&i| role(i))) }
                        }
                    }
                }
            }
        }
    }
}

/// The compare page: the form, and the comparison once both runs are given.
pub(crate) async fn page(AxState(state): AxState<Arc<State>>, RawQuery(raw): RawQuery) -> Response {
    let (status, body) = match body(&state, raw.as_deref()).await {
        Ok(body) => (StatusCode::OK, body),
        Err((e, form)) => (
            e.status(),
            html! { h1 { "Compare" } (form) p.error style="white-space:pre-line" { (e.message()) } },
        ),
    };
    html_response(
        status,
        &layout::page("Compare", Nav::Compare, logout_shown(&state), &body),
    )
}

async fn body(state: &Arc<State>, raw: Option<&str>) -> Result<Markup, (ApiError, Markup)> {
    let params = super::pages::params_only(raw, PARAMS).map_err(|e| (e, html! {}))?;
    let form = form(&params);
    let fail = |e: ApiError| (e, form.clone());
    let allow = Allow {
        mismatch: flag(&params, "allow_mismatch").map_err(fail)?,
        unsound: flag(&params, "allow_failed_runs").map_err(fail)?,
    };
    let (Some(baseline), Some(candidate)) = (params.get("baseline"), params.get("candidate"))
    else {
        return Ok(html! {
            h1 { "Compare" }
            (form)
            p.muted {
                "Pick a baseline and a candidate on the " a href="/runs" { "runs page" }
                ", or type their run ids. The comparison is harness compare's: the same figures, "
                "intervals and refusals (runs of different workloads, failed runs)."
            }
        });
    };
    let dirs = vec![
        run_dir_of(state, "baseline", Some(baseline.clone()))
            .await
            .map_err(fail)?,
        run_dir_of(state, "candidate", Some(candidate.clone()))
            .await
            .map_err(fail)?,
    ];
    // Bootstrap intervals cost CPU: a bounded number at a time (as the API).
    let _permit = state.heavy().await.map_err(fail)?;
    let comparison = tokio::task::spawn_blocking(move || load_and_compare(&dirs, allow))
        .await
        .map_err(|e| fail(ApiError::internal(&e)))?
        .map_err(fail)?;
    Ok(html! {
        h1 {
            "Compare " a href=(format!("/runs/{}", encode(&baseline))) { (baseline) }
            " → " a href=(format!("/runs/{}", encode(&candidate))) { (candidate) }
        }
        (form)
        (comparison_table(&comparison))
    })
}
