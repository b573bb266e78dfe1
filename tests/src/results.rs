//! Results of the long-running commands, kept as data and rendered twice:
//! as readable tables for a person and as one JSON document (`--json`) for
//! CI. The benchmarks record [`Figures`] (a value per run for each
//! measurement); [`Table`] lays out aligned Markdown tables, which is also
//! what `docs/benchmarks.md` pastes.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// Serializes a [`Duration`] as seconds (a float), for `--json` output.
pub fn serialize_seconds<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

/// The median of `values`; 0 when empty.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

/// One measurement: its value in every run.
#[derive(Clone, Debug, Serialize)]
pub struct Figure {
    /// The group it belongs to, e.g. `search (GET /products/)`.
    pub section: String,
    /// What was measured.
    pub name: String,
    /// Its unit (`jobs/s`, `ms`, …; empty for a plain number).
    pub unit: String,
    /// The value of each run, in run order.
    pub values: Vec<f64>,
}

impl Figure {
    /// The median over the runs.
    pub fn median(&self) -> f64 {
        median(&self.values)
    }

    /// The smallest and the largest value.
    pub fn range(&self) -> (f64, f64) {
        let min = self.values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if self.values.is_empty() { (0.0, 0.0) } else { (min, max) }
    }
}

/// Every measurement of one configuration, in the order first recorded.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(transparent)]
pub struct Figures(pub Vec<Figure>);

impl Figures {
    /// Adds one run's `value` of a measurement.
    pub fn record(&mut self, section: &str, name: impl Into<String>, unit: &str, value: f64) {
        let name = name.into();
        match self.0.iter_mut().find(|figure| figure.section == section && figure.name == name) {
            Some(figure) => figure.values.push(value),
            None => {
                self.0.push(Figure { section: section.to_owned(), name, unit: unit.to_owned(), values: vec![value] })
            }
        }
    }

    /// The median of the measurement called `name`, if recorded.
    pub fn median_of(&self, name: &str) -> Option<f64> {
        self.0.iter().find(|figure| figure.name == name).map(Figure::median)
    }

    /// The sections, in the order first recorded.
    pub fn sections(&self) -> Vec<&str> {
        let mut sections: Vec<&str> = Vec::new();
        for figure in &self.0 {
            if !sections.contains(&figure.section.as_str()) {
                sections.push(&figure.section);
            }
        }
        sections
    }

    /// One table per section: measurement, median, range, unit.
    pub fn tables(&self) -> Vec<(String, Table)> {
        self.sections()
            .into_iter()
            .map(|section| {
                let mut table = Table::new(&[
                    ("measurement", Align::Left),
                    ("median", Align::Right),
                    ("range", Align::Right),
                    ("unit", Align::Left),
                ]);
                for figure in self.0.iter().filter(|figure| figure.section == section) {
                    let (min, max) = figure.range();
                    table.row(vec![
                        figure.name.clone(),
                        format_number(figure.median()),
                        format!("{} – {}", format_number(min), format_number(max)),
                        figure.unit.clone(),
                    ]);
                }
                (section.to_owned(), table)
            })
            .collect()
    }
}

impl Figures {
    /// One section's measurements with every run's value in its own column
    /// (for counts whose every run matters, such as lost leases), and the total.
    pub fn per_run_table(&self, section: &str) -> Table {
        let figures: Vec<&Figure> = self.0.iter().filter(|figure| figure.section == section).collect();
        let runs = figures.iter().map(|figure| figure.values.len()).max().unwrap_or(0);
        let headers: Vec<String> = (1..=runs).map(|run| format!("run {run}")).collect();
        let mut columns = vec![("measurement", Align::Left)];
        columns.extend(headers.iter().map(|header| (header.as_str(), Align::Right)));
        columns.push(("total", Align::Right));
        columns.push(("unit", Align::Left));
        let mut table = Table::new(&columns);
        let count = |value: f64| if value.fract() == 0.0 { format!("{value:.0}") } else { format_number(value) };
        for figure in figures {
            let mut cells = vec![figure.name.clone()];
            cells.extend((0..runs).map(|run| figure.values.get(run).map_or_else(String::new, |v| count(*v))));
            cells.push(count(figure.values.iter().sum()));
            cells.push(figure.unit.clone());
            table.row(cells);
        }
        table
    }
}

/// A number with as many decimals as its size deserves: `9144`, `3.8`, `0.42`.
pub fn format_number(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 100.0 {
        format!("{value:.0}")
    } else if magnitude >= 1.0 || magnitude == 0.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// How a column's cells line up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// A Markdown table whose columns are padded to line up in a terminal too.
#[derive(Clone, Debug)]
pub struct Table {
    headers: Vec<String>,
    aligns: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(columns: &[(&str, Align)]) -> Table {
        Table {
            headers: columns.iter().map(|(header, _)| (*header).to_owned()).collect(),
            aligns: columns.iter().map(|(_, align)| *align).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row (missing cells are blank, extra ones dropped).
    pub fn row(&mut self, mut cells: Vec<String>) {
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = |column: usize| {
            std::iter::once(&self.headers[column])
                .chain(self.rows.iter().map(|row| &row[column]))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.headers.len()).map(width).collect();
        let line = |f: &mut fmt::Formatter<'_>, cells: &[String]| -> fmt::Result {
            for ((cell, align), width) in cells.iter().zip(&self.aligns).zip(&widths) {
                match align {
                    Align::Left => write!(f, "| {cell:<width$} ")?,
                    Align::Right => write!(f, "| {cell:>width$} ")?,
                }
            }
            writeln!(f, "|")
        };
        line(f, &self.headers)?;
        for (align, width) in self.aligns.iter().zip(&widths) {
            let dashes = "-".repeat(*width);
            match align {
                Align::Left => write!(f, "|-{dashes}-")?,
                Align::Right => write!(f, "|-{dashes}:")?,
            }
        }
        writeln!(f, "|")?;
        for row in &self.rows {
            line(f, row)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_render_as_aligned_tables_and_as_json() {
        let mut figures = Figures::default();
        for value in [9144.0, 8528.0, 10034.0] {
            figures.record("drain", "drain, 1 worker process", "jobs/s", value);
        }
        figures.record("latency", "enqueue→start p50", "ms", 0.8);
        assert_eq!(figures.median_of("drain, 1 worker process"), Some(9144.0));
        let tables = figures.tables();
        assert_eq!(tables.len(), 2);
        let drain = tables[0].1.to_string();
        assert!(drain.contains("| drain, 1 worker process |   9144 | 8528 – 10034 | jobs/s |"), "{drain}");
        let lines: Vec<&str> = drain.lines().collect();
        assert!(lines.iter().all(|line| line.chars().count() == lines[0].chars().count()), "{drain}");
        let json = serde_json::to_value(&figures).expect("serializes");
        assert_eq!(json[0]["values"][2], 10034.0);
        assert_eq!(json[1]["unit"], "ms");
    }

    #[test]
    fn counts_show_every_run_and_their_total() {
        let mut figures = Figures::default();
        for value in [0.0, 3.0, 0.0] {
            figures.record("lost leases", "end to end, 1 worker", "leases", value);
        }
        let table = figures.per_run_table("lost leases").to_string();
        assert!(table.contains("| end to end, 1 worker |     0 |     3 |     0 |     3 | leases |"), "{table}");
    }
}
