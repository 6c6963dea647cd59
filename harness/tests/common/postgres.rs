//! The PostgreSQL peer (`HARNESS_TEST_PG_URL`, `scripts/peers/postgres.sh`).

/// Drops and creates `schema` on `server`, and returns the URL of `server`
/// with that schema as the search path, so a test sees only its own runs.
pub fn own_schema(server: &str, schema: &str) -> String {
    let mut admin = postgres::Client::connect(server, postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .unwrap();
    let sep = if server.contains('?') { '&' } else { '?' };
    format!("{server}{sep}options=-csearch_path%3D{schema}")
}
