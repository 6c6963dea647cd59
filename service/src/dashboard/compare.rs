//! `/compare?baseline=RUN&candidate=RUN`: two recorded runs side by side.

use std::sync::Arc;

use axum::extract::{RawQuery, State as AxState};
use axum::response::Response;
use maud::html;

use super::layout::Nav;
use super::respond;
use crate::State;

/// The compare page.
pub(crate) async fn page(
    AxState(state): AxState<Arc<State>>,
    RawQuery(_raw): RawQuery,
) -> Response {
    let body = html! {
        h1 { "Compare" }
        p.muted { "Pick a baseline and a candidate on the runs page." }
    };
    respond(&state, Nav::Compare, Ok(("Compare".to_owned(), body)))
}
