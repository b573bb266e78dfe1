//! Small pieces of SQL that differ between the backends, and a builder for
//! statements whose shape depends on the request (filters, multi-row
//! inserts). Everything else in the store is written once in SQL both
//! SQLite and PostgreSQL accept, with `$1`-style parameters.

use sqlx::any::AnyArguments;
use sqlx::query::{Query, QueryAs};
use sqlx::{Any, FromRow};

use crate::db::Backend;

/// A list of ids passed as one JSON array parameter `$n`, usable after `in`.
pub(crate) fn id_list(backend: Backend, param: usize) -> String {
    match backend {
        Backend::Sqlite => format!("(select value from json_each(${param}))"),
        Backend::Postgres => format!("(select (jsonb_array_elements_text(${param}::jsonb))::bigint)"),
    }
}

/// The JSON array for [`id_list`].
pub(crate) fn json_ids(ids: &[i64]) -> String {
    serde_json::Value::from(ids.to_vec()).to_string()
}

/// A case-insensitive equality test of `column` against parameter `$n`.
pub(crate) fn equals_ignoring_case(backend: Backend, column: &str, param: usize) -> String {
    match backend {
        Backend::Sqlite => format!("{column} = ${param} collate nocase"),
        Backend::Postgres => format!("lower({column}) = lower(${param})"),
    }
}

/// `column` as a case-insensitive sort key.
pub(crate) fn case_insensitive(backend: Backend, column: &str) -> String {
    match backend {
        Backend::Sqlite => format!("{column} collate nocase"),
        Backend::Postgres => format!("lower({column})"),
    }
}

/// One bound value of a built statement.
#[derive(Clone, Debug)]
pub(crate) enum Bind {
    /// An integer.
    Int(i64),
    /// Text.
    Text(String),
    /// An integer or NULL.
    OptInt(Option<i64>),
    /// Text or NULL.
    OptText(Option<String>),
}

/// A statement assembled piece by piece, numbering its parameters.
#[derive(Clone, Debug, Default)]
pub(crate) struct Statement {
    sql: String,
    binds: Vec<Bind>,
}

impl Statement {
    /// A statement starting with `sql`.
    pub(crate) fn new(sql: impl Into<String>) -> Statement {
        Statement { sql: sql.into(), binds: Vec::new() }
    }

    /// Appends SQL text.
    pub(crate) fn push(&mut self, sql: &str) -> &mut Statement {
        self.sql.push_str(sql);
        self
    }

    /// Adds a bound value and returns its placeholder, `$n`.
    pub(crate) fn bind(&mut self, value: Bind) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }

    /// Appends the placeholder of a new bound value.
    pub(crate) fn push_bind(&mut self, value: Bind) -> &mut Statement {
        let placeholder = self.bind(value);
        self.sql.push_str(&placeholder);
        self
    }

    /// Appends another statement as it is: its placeholders are not
    /// renumbered, so this statement must have no bound values yet.
    pub(crate) fn append(&mut self, other: Statement) -> &mut Statement {
        debug_assert!(self.binds.is_empty(), "appending would misnumber the parameters");
        self.sql.push_str(&other.sql);
        self.binds.extend(other.binds);
        self
    }

    /// The statement's text.
    #[cfg(test)]
    pub(crate) fn sql(&self) -> &str {
        &self.sql
    }

    /// The number the next bound value will get.
    pub(crate) fn next_param(&self) -> usize {
        self.binds.len() + 1
    }

    /// The statement, for `execute`.
    pub(crate) fn query(&self) -> Query<'_, Any, AnyArguments> {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(self.sql.clone()));
        for bind in &self.binds {
            query = match bind {
                Bind::Int(value) => query.bind(*value),
                Bind::Text(value) => query.bind(value.as_str()),
                Bind::OptInt(value) => query.bind(*value),
                Bind::OptText(value) => query.bind(value.as_deref()),
            };
        }
        query
    }

    /// The statement, fetching the first column of each row as `T`.
    pub(crate) fn query_scalar<T>(&self) -> sqlx::query::QueryScalar<'_, Any, T, AnyArguments>
    where
        T: sqlx::Type<Any> + for<'r> sqlx::Decode<'r, Any> + Send + Unpin,
        (T,): for<'r> FromRow<'r, sqlx::any::AnyRow>,
    {
        let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(self.sql.clone()));
        for bind in &self.binds {
            query = match bind {
                Bind::Int(value) => query.bind(*value),
                Bind::Text(value) => query.bind(value.as_str()),
                Bind::OptInt(value) => query.bind(*value),
                Bind::OptText(value) => query.bind(value.as_deref()),
            };
        }
        query
    }

    /// The statement, fetching rows as `T`.
    pub(crate) fn query_as<T>(&self) -> QueryAs<'_, Any, T, AnyArguments>
    where
        T: for<'r> FromRow<'r, sqlx::any::AnyRow>,
    {
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(self.sql.clone()));
        for bind in &self.binds {
            query = match bind {
                Bind::Int(value) => query.bind(*value),
                Bind::Text(value) => query.bind(value.as_str()),
                Bind::OptInt(value) => query.bind(*value),
                Bind::OptText(value) => query.bind(value.as_deref()),
            };
        }
        query
    }
}
