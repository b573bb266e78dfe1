//! What `promtool check metrics` would say about a scrape, checked in Rust so
//! `cargo test` needs nothing else: the lint rules of Prometheus' own
//! linter that apply to a text exposition (HELP on every family, counters
//! named `_total` and nothing else, no `_bucket`/`_count`/`_sum` families
//! that are not histograms, snake_case, base units), plus value sanity
//! (finite, non-negative counters; cumulative histogram buckets whose `+Inf`
//! equals `_count`; no duplicate series). [`cross_check`] reads the same
//! text with an independent parser, the `openmetrics-parser` crate, and
//! requires both readings to agree.

use std::collections::{BTreeMap, BTreeSet};

use openmetrics_parser::{PrometheusType, PrometheusValue};

use super::{Exposition, Sample};

/// Units Prometheus wants written in their base unit, and that unit.
const NON_BASE_UNITS: &[(&str, &str)] = &[
    ("milliseconds", "seconds"),
    ("microseconds", "seconds"),
    ("nanoseconds", "seconds"),
    ("minutes", "seconds"),
    ("hours", "seconds"),
    ("days", "seconds"),
    ("kilobytes", "bytes"),
    ("megabytes", "bytes"),
    ("gigabytes", "bytes"),
    ("kibibytes", "bytes"),
    ("mebibytes", "bytes"),
    ("gibibytes", "bytes"),
    ("percent", "ratio"),
];

/// A sample's series, for finding duplicates and grouping histograms.
fn series_key(sample: &Sample, without: &str) -> String {
    let labels: Vec<String> = sample
        .labels
        .iter()
        .filter(|(name, _)| *name != without)
        .map(|(name, value)| format!("{name}={value:?}"))
        .collect();
    labels.join(",")
}

/// Every lint finding on `exposition`, one sentence each; empty when clean.
pub fn lint(exposition: &Exposition) -> Vec<String> {
    let mut problems = Vec::new();
    for (family, kind) in &exposition.types {
        if exposition.help.get(family).is_none_or(|help| help.trim().is_empty()) {
            problems.push(format!("{family}: no help text"));
        }
        if family.chars().any(|c| c.is_ascii_uppercase()) {
            problems.push(format!("{family}: metric names should be written in snake_case, not camelCase"));
        }
        let is_counter = kind == "counter";
        if is_counter && !family.ends_with("_total") {
            problems.push(format!("{family}: counter metrics should have the \"_total\" suffix"));
        }
        if !is_counter && family.ends_with("_total") {
            problems.push(format!("{family}: non-counter metrics should not have the \"_total\" suffix"));
        }
        if !matches!(kind.as_str(), "histogram" | "summary") {
            for suffix in ["_bucket", "_count", "_sum"] {
                if family.ends_with(suffix) {
                    problems.push(format!("{family}: a {kind} should not have the {suffix:?} suffix"));
                }
            }
        }
        for (unit, base) in NON_BASE_UNITS {
            if family.split('_').any(|word| word == *unit) {
                problems.push(format!("{family}: use the base unit {base:?} instead of {unit:?}"));
            }
        }
    }
    let mut seen = BTreeSet::new();
    for sample in &exposition.samples {
        if let Some(name) = sample.labels.keys().find(|name| name.starts_with("__")) {
            problems.push(format!("{}: label name {name:?} is reserved", sample.name));
        }
        if !seen.insert(format!("{}{{{}}}", sample.name, series_key(sample, ""))) {
            problems.push(format!("{}{:?}: duplicate series", sample.name, sample.labels));
        }
    }
    for (family, kind) in &exposition.types {
        let samples = exposition.samples.iter().filter(|s| s.name == *family);
        match kind.as_str() {
            "counter" => problems.extend(samples.filter(|s| !(s.value.is_finite() && s.value >= 0.0)).map(|s| {
                format!("{family}{:?}: a counter must be finite and non-negative, not {}", s.labels, s.value)
            })),
            "gauge" => problems.extend(
                samples
                    .filter(|s| !s.value.is_finite())
                    .map(|s| format!("{family}{:?}: gauge value {} is not a number", s.labels, s.value)),
            ),
            "histogram" => problems.extend(lint_histogram(exposition, family)),
            _ => {}
        }
    }
    problems
}

/// Buckets cumulative in increasing `le`, `+Inf` present and equal to
/// `_count`, `_sum` present and finite, for every series of `family`.
fn lint_histogram(exposition: &Exposition, family: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let (bucket_name, count_name, sum_name) =
        (format!("{family}_bucket"), format!("{family}_count"), format!("{family}_sum"));
    let mut buckets: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for sample in exposition.samples.iter().filter(|s| s.name == bucket_name) {
        let le = sample.labels.get("le").map(|le| super::parse_value(le));
        match le {
            Some(Ok(le)) => buckets.entry(series_key(sample, "le")).or_default().push((le, sample.value)),
            _ => problems.push(format!("{bucket_name}{:?}: a bucket needs a numeric \"le\" label", sample.labels)),
        }
    }
    let value_of = |name: &str, key: &str| {
        exposition.samples.iter().find(|s| s.name == name && series_key(s, "") == key).map(|s| s.value)
    };
    for (key, series) in &buckets {
        let ordered = series.windows(2).all(|pair| pair[0].0 < pair[1].0);
        let cumulative = series.windows(2).all(|pair| pair[0].1 <= pair[1].1);
        if !ordered || !cumulative {
            problems.push(format!("{family}{{{key}}}: buckets must be cumulative in increasing \"le\": {series:?}"));
        }
        let infinite = series.iter().find(|(le, _)| *le == f64::INFINITY).map(|(_, count)| *count);
        match (infinite, value_of(&count_name, key)) {
            (None, _) => problems.push(format!("{family}{{{key}}}: no +Inf bucket")),
            (_, None) => problems.push(format!("{family}{{{key}}}: no _count")),
            (Some(inf), Some(count)) if inf != count => {
                problems.push(format!("{family}{{{key}}}: +Inf bucket {inf} differs from _count {count}"));
            }
            _ => {}
        }
        if !value_of(&sum_name, key).is_some_and(f64::is_finite) {
            problems.push(format!("{family}{{{key}}}: no finite _sum"));
        }
    }
    problems
}

/// Parses `text` with `openmetrics-parser` (grammar, grouping of families,
/// histogram shape) and checks that it reads the same families, types,
/// series and counter/gauge values as our [`Exposition`] of it.
pub fn cross_check(text: &str, exposition: &Exposition) -> Result<(), String> {
    let theirs = openmetrics_parser::prometheus::parse_prometheus(text)
        .map_err(|e| format!("openmetrics-parser rejects the exposition: {e}"))?;
    let their_families: BTreeSet<&str> = theirs.families.keys().map(String::as_str).collect();
    let our_families: BTreeSet<&str> = exposition.types.keys().map(String::as_str).collect();
    if their_families != our_families {
        return Err(format!("the parsers disagree on the families: {their_families:?} vs {our_families:?}"));
    }
    for (name, family) in &theirs.families {
        let kind = family.family_type.to_string();
        if exposition.types.get(name) != Some(&kind) {
            return Err(format!("{name}: openmetrics-parser reads a {kind}, we read {:?}", exposition.types.get(name)));
        }
        let mut their_values = Vec::new();
        for sample in family.iter_samples() {
            let labels: BTreeMap<String, String> = sample
                .get_labelset()
                .map_err(|e| format!("{name}: {e}"))?
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let value = match (&family.family_type, &sample.value) {
                (PrometheusType::Histogram, PrometheusValue::Histogram(h)) => h.count.map_or(f64::NAN, |c| c as f64),
                (_, PrometheusValue::Counter(c)) => c.value.as_f64(),
                (_, PrometheusValue::Gauge(n) | PrometheusValue::Unknown(n)) => n.as_f64(),
                (_, other) => return Err(format!("{name}: unexpected value {other:?}")),
            };
            their_values.push(format!("{labels:?} {value}"));
        }
        let ours_named = if kind == "histogram" { format!("{name}_count") } else { name.clone() };
        let mut our_values: Vec<String> = exposition
            .samples
            .iter()
            .filter(|s| s.name == ours_named)
            .map(|s| format!("{:?} {}", s.labels, s.value))
            .collect();
        their_values.sort();
        our_values.sort();
        if their_values != our_values {
            return Err(format!("{name}: the parsers read different series:\n  {their_values:?}\n  {our_values:?}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    const CLEAN: &str = "# HELP kassa_jobs_total Jobs.\n# TYPE kassa_jobs_total counter\n\
        kassa_jobs_total{job_type=\"charge\",route=\"/p/{id}\"} 3\n\
        # HELP kassa_wait_seconds Wait.\n# TYPE kassa_wait_seconds histogram\n\
        kassa_wait_seconds_bucket{le=\"0.1\"} 1\nkassa_wait_seconds_bucket{le=\"1\"} 2\n\
        kassa_wait_seconds_bucket{le=\"+Inf\"} 2\nkassa_wait_seconds_sum 0.7\nkassa_wait_seconds_count 2\n";

    #[test]
    fn a_clean_exposition_passes_both_parsers_and_the_lint() {
        let exposition = parse(CLEAN).expect("valid");
        assert_eq!(lint(&exposition), Vec::<String>::new());
        cross_check(CLEAN, &exposition).expect("both parsers agree");
    }

    #[test]
    fn the_lint_finds_what_promtool_would() {
        let text = "# HELP jobs Jobs.\n# TYPE jobs counter\njobs -1\n\
            # HELP wait_milliseconds_total W.\n# TYPE wait_milliseconds_total gauge\nwait_milliseconds_total 1\n\
            # HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n";
        let problems = lint(&parse(text).expect("parses")).join("\n");
        for expected in [
            "jobs: counter metrics should have the \"_total\" suffix",
            "a counter must be finite and non-negative",
            "wait_milliseconds_total: non-counter metrics should not have the \"_total\" suffix",
            "use the base unit \"seconds\" instead of \"milliseconds\"",
            "buckets must be cumulative",
            "+Inf bucket 2 differs from _count 3",
        ] {
            assert!(problems.contains(expected), "{expected:?} not found in:\n{problems}");
        }
    }

    #[test]
    fn families_split_across_the_exposition_are_rejected() {
        let text = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 1\n\
            # HELP b B.\n# TYPE b gauge\nb 1\na_total{x=\"2\"} 1\n";
        let exposition = parse(text).expect("our line parser reads each line");
        assert!(cross_check(text, &exposition).is_err(), "a family must be one group of lines");
    }
}
