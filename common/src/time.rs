//! Time as stored (Unix milliseconds) and as shown (RFC 3339).

/// Serialises Unix milliseconds as an RFC 3339 UTC timestamp.
pub mod rfc3339_ms {
    use serde::Serializer;

    /// Writes `ms` as `2026-11-26T16:31:56.123Z`.
    pub fn serialize<S: Serializer>(ms: &i64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_ms(*ms))
    }
}

/// Serialises optional Unix milliseconds as an RFC 3339 timestamp or null.
pub mod rfc3339_ms_option {
    use serde::Serializer;

    /// Writes `ms` as RFC 3339, or null.
    pub fn serialize<S: Serializer>(ms: &Option<i64>, serializer: S) -> Result<S::Ok, S::Error> {
        match ms {
            Some(ms) => serializer.serialize_str(&super::format_ms(*ms)),
            None => serializer.serialize_none(),
        }
    }
}

/// Formats Unix milliseconds as RFC 3339 with millisecond precision.
pub fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn milliseconds_format_as_utc() {
        assert_eq!(super::format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::format_ms(1_764_174_716_123), "2025-11-26T16:31:56.123Z");
    }
}
