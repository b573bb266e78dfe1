//! A strict parser for the Prometheus text exposition format (0.0.4), so
//! tests check `/metrics` as a scraper would read it: every line must be a
//! comment, a `# HELP`/`# TYPE` line or a well-formed sample, every sample's
//! family must have HELP and TYPE, and label values are unescaped properly
//! (`route="/products/{id}"` included). [`lint`] adds what Prometheus' own
//! linter checks, and a second reading by an independent parser.

pub mod lint;

use std::collections::{BTreeMap, HashMap};

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Metric name, with any `_bucket`/`_sum`/`_count` suffix.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// A parsed exposition.
#[derive(Clone, Debug, Default)]
pub struct Exposition {
    /// Samples in order.
    pub samples: Vec<Sample>,
    /// `# TYPE` per family.
    pub types: HashMap<String, String>,
    /// `# HELP` per family.
    pub help: HashMap<String, String>,
}

impl Exposition {
    /// Sum of the values of samples named `name` whose labels include every pair in `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
            .map(|s| s.value)
            .sum()
    }

    /// Whether any sample is named `name`.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        other => other.parse().map_err(|_| format!("bad value {other:?}")),
    }
}

fn parse_labels(text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (key, after) = rest.split_once("=\"").ok_or_else(|| format!("bad label in {text:?}"))?;
        if !valid_name(key) {
            return Err(format!("bad label name {key:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err("dangling escape".into()),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => return Err(format!("unterminated label value in {text:?}")),
            }
        };
        labels.insert(key.to_owned(), value);
        rest = &after[end + 1..];
    }
}

/// Parses an exposition; any malformed line is an error naming it.
pub fn parse(text: &str) -> Result<Exposition, String> {
    let mut exposition = Exposition::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(comment) = line.strip_prefix('#') {
            let mut parts = comment.trim_start().splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("HELP"), Some(name), Some(help)) if valid_name(name) => {
                    exposition.help.insert(name.to_owned(), help.to_owned());
                }
                (Some("TYPE"), Some(name), Some(kind)) if valid_name(name) => {
                    if !matches!(kind, "counter" | "gauge" | "histogram" | "summary" | "untyped") {
                        return Err(format!("bad type in {line:?}"));
                    }
                    exposition.types.insert(name.to_owned(), kind.to_owned());
                }
                (Some("HELP" | "TYPE"), _, _) => return Err(format!("malformed {line:?}")),
                _ => {}
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| format!("no value in {line:?}"))?;
        let name = &line[..name_end];
        if !valid_name(name) {
            return Err(format!("bad metric name in {line:?}"));
        }
        let (labels, rest) = match line[name_end..].strip_prefix('{') {
            Some(after) => parse_labels(after)?,
            None => (BTreeMap::new(), &line[name_end..]),
        };
        let value = rest.split_whitespace().next().ok_or_else(|| format!("no value in {line:?}"))?;
        exposition.samples.push(Sample { name: name.to_owned(), labels, value: parse_value(value)? });
    }
    for sample in &exposition.samples {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| sample.name.strip_suffix(suffix).filter(|f| exposition.types.contains_key(*f)))
            .unwrap_or(&sample.name);
        if !exposition.types.contains_key(family) || !exposition.help.contains_key(family) {
            return Err(format!("{} has no TYPE or HELP", sample.name));
        }
    }
    Ok(exposition)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn braces_and_escapes_in_label_values_parse() {
        let text = "# HELP x_total Things.\n# TYPE x_total counter\nx_total{route=\"/p/{id}\",q=\"a\\\"b\"} 2\n";
        let exposition = parse(text).expect("valid");
        assert_eq!(exposition.sum("x_total", &[("route", "/p/{id}")]), 2.0);
        assert_eq!(exposition.samples[0].labels["q"], "a\"b");
    }

    #[test]
    fn malformed_lines_and_undocumented_families_are_errors() {
        assert!(parse("x_total{route=\"a} 1\n").is_err());
        assert!(parse("x_total 1\n").is_err(), "no HELP/TYPE");
        assert!(parse("# TYPE x counter\n# HELP x X.\nx one\n").is_err());
    }
}
