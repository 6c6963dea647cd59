//! The user.conf of the short runs several test binaries make.

/// Short runs: about a second; 480 Server queries, enough for LoadGen's
/// early stopping at p99. Offline's expected QPS is far above what the
/// simulator can answer, so its one query always outlasts min_duration: at
/// 2000, and later at 6000 on a faster host (it answered 6,734 samples/s,
/// 7,362 at 4 output tokens), it finished first and the run was INVALID.
/// Offline's min_duration is shorter, so the query stays small.
pub const QUICK_CONF: &str = "\
*.Server.target_qps = 500
*.Offline.target_qps = 20000
*.*.min_duration = 500
*.Offline.min_duration = 200
*.Server.min_query_count = 480
*.Offline.min_query_count = 40
*.SingleStream.min_query_count = 10
*.SingleStream.target_latency = 50
";
