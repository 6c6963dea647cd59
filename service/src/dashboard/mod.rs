//! The web dashboard at `/`: server-rendered HTML pages (no script, no
//! external resource) over the data the JSON API serves, read through the
//! same functions (rankings, trends, run files), so a page and the API
//! never disagree.
//!
//! Access: by default a login form (`/login`) takes one of the API keys
//! and sets an HttpOnly, SameSite=Strict session cookie signed with it
//! ([`session`]); the key itself is never in a URL, a page or the cookie.
//! `harness serve --public-dashboard` serves the pages without login (the
//! /api routes still need a key).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Path as UrlPath, RawQuery, Request, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use crate::State;
use crate::api::ApiError;

mod compare;
mod layout;
mod pages;
mod session;
mod svg;

use layout::Nav;

/// Who may open the dashboard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum DashboardAccess {
    /// Whoever logs in with one of the API keys (read or upload).
    #[default]
    Login,
    /// Everyone who can reach the server (`serve --public-dashboard`).
    Public,
}

/// What every dashboard answer may load: its own images and inline styles
/// (and report.html's embedded `data:` charts); no script, no frame, no
/// other origin.
const CSP: &str = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The dashboard's routes; `api::router` merges them beside /api.
pub(crate) fn routes(state: &Arc<State>) -> Router<Arc<State>> {
    let pages = Router::new()
        .route("/", get(pages::rankings))
        .route("/runs", get(pages::runs))
        .route("/runs/{id}", get(pages::run))
        .route("/runs/{id}/files/{name}", get(run_file))
        .route("/trends", get(pages::trends_choice))
        .route("/trends/{metric}", get(pages::trend))
        .route("/compare", get(compare::page))
        .layer(middleware::from_fn_with_state(
            Arc::clone(state),
            require_login,
        ));
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .merge(pages)
        .layer(middleware::from_fn(security_headers))
}

/// Seconds since the Unix epoch.
fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Whether the pages show a "Log out" button.
pub(crate) fn logout_shown(state: &State) -> bool {
    state.dashboard == DashboardAccess::Login
}

/// The pages behind a session unless the dashboard is public.
async fn require_login(
    AxState(state): AxState<Arc<State>>,
    request: Request,
    next: Next,
) -> Response {
    let allowed = state.dashboard == DashboardAccess::Public
        || session::from_headers(request.headers())
            .is_some_and(|cookie| session::valid(&state.keys, cookie, now()));
    if allowed {
        return next.run(request).await;
    }
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    login_response(StatusCode::UNAUTHORIZED, &target, None)
}

/// Every dashboard answer: the CSP (run files also sandboxed: a report.html
/// from an uploaded run runs no script on this origin), no sniffing, no
/// referrer, no caching of results.
async fn security_headers(request: Request, next: Next) -> Response {
    let file = request.uri().path().contains("/files/");
    with_security_headers(next.run(request).await, file)
}

/// [`security_headers`] on one answer (`file`: a run's file, sandboxed).
fn with_security_headers(mut response: Response, file: bool) -> Response {
    let csp = if file {
        format!("{CSP}; sandbox")
    } else {
        CSP.to_owned()
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Any path no route answers (outside `/api`): a 404 page, with the
/// dashboard's security headers. It shows nothing of the history, so it
/// needs no login.
pub(crate) async fn not_found(AxState(state): AxState<Arc<State>>) -> Response {
    let error = ApiError::new(
        StatusCode::NOT_FOUND,
        "no such page: start from the rankings, runs or trends above",
    );
    with_security_headers(error_page(&state, Nav::None, &error), false)
}

/// A page answer.
pub(crate) fn html_response(status: StatusCode, markup: &Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.clone().into_string(),
    )
        .into_response()
}

/// An error as a page: the API's message and status.
pub(crate) fn error_page(state: &State, current: Nav, error: &ApiError) -> Response {
    let status = error.status();
    let title = status.canonical_reason().unwrap_or("Error");
    let body = html! {
        h1 { (status.as_u16()) " " (title) }
        p.error { (error.message()) }
    };
    html_response(
        status,
        &layout::page(title, current, logout_shown(state), &body),
    )
}

/// A page, or its error.
pub(crate) fn respond(
    state: &State,
    current: Nav,
    result: Result<(String, Markup), ApiError>,
) -> Response {
    match result {
        Ok((title, body)) => html_response(
            StatusCode::OK,
            &layout::page(&title, current, logout_shown(state), &body),
        ),
        Err(e) => error_page(state, current, &e),
    }
}

/// Where a login may send the user back to: a path on this server only.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && n.len() <= 2048
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n
        }
        _ => "/",
    }
}

/// The login form (status 401 where it stands in for a page).
fn login_response(status: StatusCode, next: &str, problem: Option<&str>) -> Response {
    let body = html! {
        div.login {
            h1 { "Log in" }
            p.muted {
                "The dashboard takes any of the service's API keys (read or upload). "
                "The key is sent once, in this form; the browser keeps only a session cookie."
            }
            @if let Some(problem) = problem {
                p.error { (problem) }
            }
            form method="post" action="/login" {
                input type="hidden" name="next" value=(safe_next(Some(next)));
                label { "API key" input type="password" name="key" autocomplete="current-password" required; }
                button type="submit" { "Log in" }
            }
        }
    };
    html_response(status, &layout::page("Log in", Nav::None, false, &body))
}

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

async fn login_page(
    AxState(state): AxState<Arc<State>>,
    axum::extract::Query(q): axum::extract::Query<LoginQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if state.dashboard == DashboardAccess::Public {
        return Redirect::to(next).into_response();
    }
    login_response(StatusCode::OK, next, None)
}

#[derive(Deserialize)]
struct LoginForm {
    key: String,
    next: Option<String>,
}

/// Checks the key (in constant time, as the API does), sets the session
/// cookie and goes back to the page asked for. The key is not logged.
async fn login(
    AxState(state): AxState<Arc<State>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref()).to_owned();
    let Some(cookie) = session::issue(&state.keys, form.key.trim().as_bytes(), now()) else {
        return login_response(
            StatusCode::UNAUTHORIZED,
            &next,
            Some("That is not one of this service's API keys."),
        );
    };
    // Behind a TLS proxy the cookie is also kept off plain HTTP.
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let value = format!(
        "{}={cookie}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        session::COOKIE,
        session::MAX_AGE_S,
        if secure { "; Secure" } else { "" }
    );
    with_cookie(Redirect::to(&next).into_response(), &value)
}

async fn logout() -> Response {
    let value = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        session::COOKIE
    );
    with_cookie(Redirect::to("/").into_response(), &value)
}

fn with_cookie(mut response: Response, value: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(value) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// A run's chart, report or data file: the API's own route (same name
/// checks, same refusal of anything outside the run directory), behind
/// the dashboard's login instead of an API key.
async fn run_file(
    state: AxState<Arc<State>>,
    path: UrlPath<(String, String)>,
    _query: RawQuery,
) -> Response {
    match crate::api::run_file(state, path).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}
