//! Where a history lives, and how it is shown: a PostgreSQL URL's password
//! never leaves this module except to connect.

use std::convert::Infallible;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Where the history is kept: an embedded SQLite file, or a PostgreSQL
/// server shared by a team.
///
/// `Display` and `Debug` show a URL with its password replaced by `***`.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Database {
    /// An SQLite database file, created when missing.
    Sqlite(PathBuf),
    /// A PostgreSQL server, by `postgres://` or `postgresql://` URL.
    Postgres(PostgresUrl),
}

impl Database {
    /// A `postgres://` or `postgresql://` URL names a PostgreSQL server;
    /// anything else is an SQLite file path.
    pub fn parse(value: &str) -> Database {
        match PostgresUrl::parse(value) {
            Some(url) => Database::Postgres(url),
            None => Database::Sqlite(PathBuf::from(value)),
        }
    }
}

impl FromStr for Database {
    type Err = Infallible;

    fn from_str(value: &str) -> Result<Database, Infallible> {
        Ok(Database::parse(value))
    }
}

impl From<PathBuf> for Database {
    fn from(path: PathBuf) -> Database {
        Database::Sqlite(path)
    }
}

impl From<&Path> for Database {
    fn from(path: &Path) -> Database {
        Database::Sqlite(path.to_path_buf())
    }
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            Database::Postgres(url) => write!(f, "{url}"),
        }
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Database::Postgres(url) => f.debug_tuple("Postgres").field(url).finish(),
        }
    }
}

/// A PostgreSQL connection URL. It shows (`Display`, `Debug`) redacted:
/// the password after `user:` and the values of query parameters that are
/// not known to be harmless become `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl(String);

/// Query parameters shown as given; any other's value (`password`, or a
/// percent-encoded spelling of it) is hidden.
const SHOWN_PARAMETERS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "options",
    "application_name",
    "connect_timeout",
    "sslmode",
    "target_session_attrs",
    "channel_binding",
    "keepalives",
    "keepalives_idle",
    "load_balance_hosts",
];

impl PostgresUrl {
    /// The URL, when `value` starts with `postgres://` or `postgresql://`.
    pub fn parse(value: &str) -> Option<PostgresUrl> {
        ["postgres://", "postgresql://"]
            .iter()
            .any(|prefix| value.starts_with(prefix))
            .then(|| PostgresUrl(value.to_owned()))
    }

    /// The full URL, password included: only for connecting.
    pub(crate) fn secret(&self) -> &str {
        &self.0
    }

    /// The URL with its secrets replaced by `***`.
    pub fn redacted(&self) -> String {
        let (scheme, rest) = self.0.split_once("://").unwrap_or(("", &self.0));
        // tokio-postgres takes everything before the first '@' as the
        // credentials and the part after their first ':' as the password;
        // hide exactly that.
        let (userinfo, rest) = match rest.split_once('@') {
            Some((creds, tail)) => match creds.split_once(':') {
                Some((user, _password)) => (format!("{user}:***@"), tail),
                None => (format!("{creds}@"), tail),
            },
            None => (String::new(), rest),
        };
        let (base, query) = match rest.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (rest, None),
        };
        let mut out = format!("{scheme}://{userinfo}{base}");
        if let Some(query) = query {
            let params: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, value)) if SHOWN_PARAMETERS.contains(&key) => {
                        format!("{key}={value}")
                    }
                    Some((key, _)) => format!("{key}=***"),
                    None => pair.to_owned(),
                })
                .collect();
            out.push('?');
            out.push_str(&params.join("&"));
        }
        out
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(url: &str) -> String {
        Database::parse(url).to_string()
    }

    #[test]
    fn only_postgres_urls_name_a_server() {
        assert!(matches!(
            Database::parse("postgres://h/db"),
            Database::Postgres(_)
        ));
        assert!(matches!(
            Database::parse("postgresql://h/db"),
            Database::Postgres(_)
        ));
        assert_eq!(
            Database::parse("runs/history.sqlite"),
            Database::Sqlite(PathBuf::from("runs/history.sqlite"))
        );
        // Not a URL we connect to: a (strange) file name.
        assert!(matches!(
            Database::parse("mysql://h/db"),
            Database::Sqlite(_)
        ));
    }

    #[test]
    fn passwords_are_hidden_wherever_the_client_would_read_them() {
        let cases = [
            (
                "postgres://alice:s3cret@db.example:5432/results",
                "postgres://alice:***@db.example:5432/results",
            ),
            // A password holding ':' and '/' (unencoded): all of it goes.
            (
                "postgresql://alice:a:b/c@db/results",
                "postgresql://alice:***@db/results",
            ),
            (
                "postgres://alice@db/results?password=s3cret&sslmode=disable",
                "postgres://alice@db/results?password=***&sslmode=disable",
            ),
            (
                "postgres://db/results?pass%77ord=s3cret&options=-csearch_path%3Dci",
                "postgres://db/results?pass%77ord=***&options=-csearch_path%3Dci",
            ),
            ("postgres://db:5432/results", "postgres://db:5432/results"),
        ];
        for (url, expected) in cases {
            assert_eq!(shown(url), expected);
            let debug = format!("{:?}", Database::parse(url));
            assert!(
                !debug.contains("s3cret") && !debug.contains("a:b/c"),
                "{debug}"
            );
            assert!(debug.contains(expected), "{debug}");
        }
    }
}
