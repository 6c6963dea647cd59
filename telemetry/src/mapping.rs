//! The server metric mapping table: which series of each server's
//! `/metrics` make up each name of the normalized view ([`names`]).
//!
//! Every scraped series is also kept as scraped (the `server_raw` samples of
//! `metrics.jsonl`); this table only decides what the charts, summaries,
//! the live view and the history read. The README's "Server metrics" table
//! is [`markdown_table`] of this table, and a test keeps the two equal.
//!
//! Within a row, sources are tried in order and the first one present in a
//! scrape wins, so a server exposing both a new and a deprecated name is
//! not counted twice. A scrape comes from one server, so the order only
//! matters within one server's sources.

use rundir::metrics::names;

/// The servers whose metric names the table knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Server {
    /// vLLM (`vllm:*`), v1 and older releases.
    Vllm,
    /// llama.cpp's server (`llamacpp:*`, and `llamacpp_slots:*` that the
    /// collector derives from its `GET /slots`).
    LlamaCpp,
    /// SGLang (`sglang:*`).
    Sglang,
    /// Hugging Face text-generation-inference (`tgi_*`).
    Tgi,
}

impl Server {
    /// Every server, in the table's column order.
    pub const ALL: [Server; 4] = [Server::Vllm, Server::LlamaCpp, Server::Sglang, Server::Tgi];

    /// The column title.
    pub fn title(self) -> &'static str {
        match self {
            Server::Vllm => "vLLM",
            Server::LlamaCpp => "llama.cpp",
            Server::Sglang => "SGLang",
            Server::Tgi => "TGI",
        }
    }
}

/// A cumulative server counter, after mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CounterId {
    /// Prompt tokens processed.
    PromptTokens,
    /// Tokens generated.
    GenerationTokens,
    /// Requests finished normally (`stop`, `length`, ...).
    RequestSuccess,
    /// Requests aborted or failed.
    RequestFailure,
    /// Preemptions.
    Preemptions,
    /// Prompt tokens looked up in the prefix cache.
    PrefixCacheQueries,
    /// Prompt tokens found in the prefix cache.
    PrefixCacheHits,
}

impl CounterId {
    /// Every counter.
    pub const ALL: [CounterId; 7] = [
        CounterId::PromptTokens,
        CounterId::GenerationTokens,
        CounterId::RequestSuccess,
        CounterId::RequestFailure,
        CounterId::Preemptions,
        CounterId::PrefixCacheQueries,
        CounterId::PrefixCacheHits,
    ];

    /// Stable name, used for counts in `server_summary.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            CounterId::PromptTokens => "prompt_tokens",
            CounterId::GenerationTokens => "generation_tokens",
            CounterId::RequestSuccess => "request_success",
            CounterId::RequestFailure => "request_failure",
            CounterId::Preemptions => "preemptions",
            CounterId::PrefixCacheQueries => "prefix_cache_queries",
            CounterId::PrefixCacheHits => "prefix_cache_hits",
        }
    }

    /// The vocabulary name of its per-second rate, if it has one.
    pub fn rate_name(self) -> Option<&'static str> {
        match self {
            CounterId::PromptTokens => Some(names::PROMPT_TOKENS_PER_S),
            CounterId::GenerationTokens => Some(names::GENERATION_TOKENS_PER_S),
            CounterId::RequestSuccess => Some(names::REQUEST_SUCCESS_PER_S),
            CounterId::RequestFailure => Some(names::REQUEST_FAILURE_PER_S),
            CounterId::Preemptions => Some(names::PREEMPTIONS_PER_S),
            CounterId::PrefixCacheQueries | CounterId::PrefixCacheHits => None,
        }
    }
}

/// How a gauge's label sets are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// Added up (request counts).
    Sum,
    /// Averaged (fractions such as KV-cache usage, as vLLM's own logger does
    /// across data-parallel engines).
    Mean,
}

/// Which series of a counter family count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesFilter {
    /// All of them.
    All,
    /// `finished_reason` other than `abort` and `error` (or no such label).
    Finished,
    /// `finished_reason` `abort` or `error`.
    Failed,
}

/// What a row of the normalized view is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A gauge, read at each scrape.
    Gauge(&'static str),
    /// A cumulative counter: a per-second rate per interval, a count per
    /// measured window.
    Counter(CounterId),
    /// A histogram stem: per-interval `<stem>_mean_s` and the bucket bounds
    /// of p50, p90 and p99 (`<stem>_p50_gt_s`, `<stem>_p50_le_s`, ...).
    Histogram(&'static str),
}

/// How one server's series are read for a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// A gauge family, label sets combined.
    Gauge(&'static str, Aggregate),
    /// Σ numerator / Σ denominator over label sets (gauges).
    Ratio(&'static str, &'static str),
    /// Counter families added together; each matches `<name>_total` or,
    /// failing that, `<name>` itself (so a histogram's `_sum` can serve as a
    /// token counter).
    Counter(&'static [&'static str], SeriesFilter),
    /// A histogram family (`_bucket`, `_sum`, `_count`).
    Histogram(&'static str),
}

/// One server's way of filling a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// Which server exposes it.
    pub server: Server,
    /// Which series and how.
    pub read: Read,
    /// A remark for the README (`old`: a deprecated name), or empty.
    pub note: &'static str,
}

/// A row of the normalized view and its sources in order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    /// The normalized name.
    pub target: Target,
    /// Sources, first present wins.
    pub sources: &'static [Source],
}

const fn src(server: Server, read: Read) -> Source {
    Source {
        server,
        read,
        note: "",
    }
}

const fn old(server: Server, read: Read) -> Source {
    Source {
        server,
        read,
        note: "old",
    }
}

use Aggregate::{Mean, Sum};
use Read::{Counter, Gauge, Histogram, Ratio};
use SeriesFilter::{All, Failed, Finished};
use Server::{LlamaCpp, Sglang, Tgi, Vllm};

/// The mapping table.
///
/// Definitions differ a little between servers, and the table maps each
/// server's closest figure: llama.cpp's `prompt_tokens_total` excludes tokens
/// reused from its cache, so the cached count is added back (vLLM counts all
/// prompt tokens); llama.cpp has no KV-cache gauge any more, so the
/// collector reads its `GET /slots` (context tokens of the busy slots over
/// all slots' context); TGI has no token counters, so the `_sum` of its
/// per-request token histograms stands in; SGLang's `token_usage` is the
/// fraction of its KV pool's tokens in use.
pub const MAPPINGS: &[Mapping] = &[
    Mapping {
        target: Target::Gauge(names::REQUESTS_RUNNING),
        sources: &[
            src(Vllm, Gauge("vllm:num_requests_running", Sum)),
            src(LlamaCpp, Gauge("llamacpp:requests_processing", Sum)),
            src(Sglang, Gauge("sglang:num_running_reqs", Sum)),
            src(Tgi, Gauge("tgi_batch_current_size", Sum)),
        ],
    },
    Mapping {
        target: Target::Gauge(names::REQUESTS_WAITING),
        sources: &[
            src(Vllm, Gauge("vllm:num_requests_waiting", Sum)),
            src(LlamaCpp, Gauge("llamacpp:requests_deferred", Sum)),
            src(Sglang, Gauge("sglang:num_queue_reqs", Sum)),
            src(Tgi, Gauge("tgi_queue_size", Sum)),
        ],
    },
    Mapping {
        target: Target::Gauge(names::KV_CACHE_USAGE_FRAC),
        sources: &[
            src(Vllm, Gauge("vllm:kv_cache_usage_perc", Mean)),
            old(Vllm, Gauge("vllm:gpu_cache_usage_perc", Mean)),
            src(
                LlamaCpp,
                Ratio("llamacpp_slots:busy_context_tokens", "llamacpp_slots:n_ctx"),
            ),
            old(LlamaCpp, Gauge("llamacpp:kv_cache_usage_ratio", Mean)),
            src(Sglang, Gauge("sglang:token_usage", Mean)),
        ],
    },
    Mapping {
        target: Target::Counter(CounterId::PromptTokens),
        sources: &[
            src(Vllm, Counter(&["vllm:prompt_tokens"], All)),
            src(
                LlamaCpp,
                Counter(
                    &["llamacpp:prompt_tokens", "llamacpp:prompt_tokens_cached"],
                    All,
                ),
            ),
            src(Sglang, Counter(&["sglang:prompt_tokens"], All)),
            src(Tgi, Counter(&["tgi_request_input_length_sum"], All)),
        ],
    },
    Mapping {
        target: Target::Counter(CounterId::GenerationTokens),
        sources: &[
            src(Vllm, Counter(&["vllm:generation_tokens"], All)),
            src(LlamaCpp, Counter(&["llamacpp:tokens_predicted"], All)),
            src(Sglang, Counter(&["sglang:generation_tokens"], All)),
            src(Tgi, Counter(&["tgi_request_generated_tokens_sum"], All)),
        ],
    },
    Mapping {
        target: Target::Counter(CounterId::RequestSuccess),
        sources: &[
            src(Vllm, Counter(&["vllm:request_success"], Finished)),
            src(Sglang, Counter(&["sglang:num_requests"], All)),
            src(Tgi, Counter(&["tgi_request_success"], All)),
        ],
    },
    Mapping {
        target: Target::Counter(CounterId::RequestFailure),
        sources: &[
            src(Vllm, Counter(&["vllm:request_success"], Failed)),
            src(Sglang, Counter(&["sglang:num_aborted_requests"], All)),
            src(Tgi, Counter(&["tgi_request_failure"], All)),
        ],
    },
    Mapping {
        target: Target::Counter(CounterId::Preemptions),
        sources: &[
            src(Vllm, Counter(&["vllm:num_preemptions"], All)),
            src(Sglang, Counter(&["sglang:num_retracted_requests"], All)),
        ],
    },
    Mapping {
        target: Target::Counter(CounterId::PrefixCacheQueries),
        sources: &[
            src(Vllm, Counter(&["vllm:prefix_cache_queries"], All)),
            old(Vllm, Counter(&["vllm:gpu_prefix_cache_queries"], All)),
            src(
                LlamaCpp,
                Counter(
                    &["llamacpp:prompt_tokens", "llamacpp:prompt_tokens_cached"],
                    All,
                ),
            ),
            src(Sglang, Counter(&["sglang:prompt_tokens"], All)),
        ],
    },
    Mapping {
        target: Target::Counter(CounterId::PrefixCacheHits),
        sources: &[
            src(Vllm, Counter(&["vllm:prefix_cache_hits"], All)),
            old(Vllm, Counter(&["vllm:gpu_prefix_cache_hits"], All)),
            src(LlamaCpp, Counter(&["llamacpp:prompt_tokens_cached"], All)),
            src(Sglang, Counter(&["sglang:cached_tokens"], All)),
        ],
    },
    // Gauges of the hit rate, for servers without hit counters; the
    // counters' ratio wins where both exist.
    Mapping {
        target: Target::Gauge(names::PREFIX_CACHE_HIT_FRAC),
        sources: &[Source {
            server: Vllm,
            read: Gauge("vllm:gpu_prefix_cache_hit_rate", Mean),
            note: "v0; the hits / queries counts above win",
        }],
    },
    Mapping {
        target: Target::Histogram(names::TTFT),
        sources: &[
            src(Vllm, Histogram("vllm:time_to_first_token_seconds")),
            src(Sglang, Histogram("sglang:time_to_first_token_seconds")),
        ],
    },
    Mapping {
        target: Target::Histogram(names::ITL),
        sources: &[
            src(Vllm, Histogram("vllm:inter_token_latency_seconds")),
            old(Vllm, Histogram("vllm:time_per_output_token_seconds")),
            src(Sglang, Histogram("sglang:inter_token_latency_seconds")),
            old(Sglang, Histogram("sglang:time_per_output_token_seconds")),
        ],
    },
    Mapping {
        target: Target::Histogram(names::TPOT),
        sources: &[
            src(
                Vllm,
                Histogram("vllm:request_time_per_output_token_seconds"),
            ),
            src(Tgi, Histogram("tgi_request_mean_time_per_token_duration")),
        ],
    },
    Mapping {
        target: Target::Histogram(names::E2E),
        sources: &[
            src(Vllm, Histogram("vllm:e2e_request_latency_seconds")),
            src(Sglang, Histogram("sglang:e2e_request_latency_seconds")),
            src(Tgi, Histogram("tgi_request_duration")),
        ],
    },
    Mapping {
        target: Target::Histogram(names::QUEUE),
        sources: &[
            src(Vllm, Histogram("vllm:request_queue_time_seconds")),
            src(Sglang, Histogram("sglang:queue_time_seconds")),
            src(Tgi, Histogram("tgi_request_queue_duration")),
        ],
    },
    Mapping {
        target: Target::Histogram(names::PREFILL),
        sources: &[src(Vllm, Histogram("vllm:request_prefill_time_seconds"))],
    },
    Mapping {
        target: Target::Histogram(names::DECODE),
        sources: &[src(Vllm, Histogram("vllm:request_decode_time_seconds"))],
    },
];

/// Every family name the table reads (without `_total`/`_bucket`), sorted.
pub fn source_names() -> Vec<&'static str> {
    let mut out = Vec::new();
    for m in MAPPINGS {
        for s in m.sources {
            match s.read {
                Read::Gauge(name, _) | Read::Histogram(name) => out.push(name),
                Read::Ratio(a, b) => out.extend([a, b]),
                Read::Counter(families, _) => out.extend_from_slice(families),
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The normalized name(s) a row produces, as the README shows them.
pub fn target_label(target: Target) -> String {
    match target {
        Target::Gauge(name) => format!("`{name}`"),
        Target::Counter(id) => match id.rate_name() {
            Some(rate) => format!("`{rate}` (count `{}`)", id.as_str()),
            None => format!("count `{}`", id.as_str()),
        },
        Target::Histogram(stem) => {
            format!("`{stem}_mean_s`, `{stem}_{{p50,p90,p99}}_{{gt,le}}_s`")
        }
    }
}

/// How a source reads, as the README shows it.
pub fn read_label(read: Read) -> String {
    match read {
        Read::Gauge(name, _) => format!("`{name}`"),
        Read::Ratio(a, b) => format!("`{a}` / `{b}`"),
        Read::Counter(families, filter) => {
            let sum = families
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(" + ");
            match filter {
                SeriesFilter::All => sum,
                SeriesFilter::Finished => format!("{sum} without `finished_reason` abort/error"),
                SeriesFilter::Failed => format!("{sum} with `finished_reason` abort/error"),
            }
        }
        Read::Histogram(name) => format!("`{name}`"),
    }
}

/// One source in a table cell: how it reads, then `(mean; note)` as they
/// apply.
fn source_cell(source: &Source) -> String {
    let mut remarks = Vec::new();
    if matches!(source.read, Read::Gauge(_, Aggregate::Mean)) {
        remarks.push("mean");
    }
    if !source.note.is_empty() {
        remarks.push(source.note);
    }
    let text = read_label(source.read);
    if remarks.is_empty() {
        text
    } else {
        format!("{text} ({})", remarks.join("; "))
    }
}

/// The table as Markdown: one row per normalized name, one column per
/// server; several sources in a cell are tried left to right.
pub fn markdown_table() -> String {
    let mut out = String::from("| normalized name |");
    for s in Server::ALL {
        out.push(' ');
        out.push_str(s.title());
        out.push_str(" |");
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(Server::ALL.len()));
    out.push('\n');
    for m in MAPPINGS {
        out.push_str("| ");
        out.push_str(&target_label(m.target));
        out.push_str(" |");
        for server in Server::ALL {
            let cells: Vec<String> = m
                .sources
                .iter()
                .filter(|s| s.server == server)
                .map(source_cell)
                .collect();
            out.push(' ');
            if cells.is_empty() {
                out.push('-');
            } else {
                out.push_str(&cells.join(", else "));
            }
            out.push_str(" |");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_name_is_listed_once_and_sorted() {
        let names = source_names();
        assert!(names.contains(&"vllm:gpu_cache_usage_perc"));
        assert!(names.contains(&"llamacpp:tokens_predicted"));
        assert!(names.contains(&"sglang:token_usage"));
        assert!(names.contains(&"tgi_queue_size"));
        assert!(names.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn every_counter_and_server_has_a_row() {
        for id in CounterId::ALL {
            assert!(
                MAPPINGS.iter().any(|m| m.target == Target::Counter(id)),
                "{id:?}"
            );
        }
        for server in Server::ALL {
            for target in [
                Target::Gauge(names::REQUESTS_RUNNING),
                Target::Gauge(names::REQUESTS_WAITING),
                Target::Counter(CounterId::PromptTokens),
                Target::Counter(CounterId::GenerationTokens),
            ] {
                let row = MAPPINGS.iter().find(|m| m.target == target);
                assert!(
                    row.is_some_and(|m| m.sources.iter().any(|s| s.server == server)),
                    "{server:?} has no source for {target:?}"
                );
            }
        }
    }
}
