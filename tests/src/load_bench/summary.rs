//! The short table for the README: a few medians per durability, next to
//! the targets the issues set.

use serde::Serialize;

use super::{Options, SetupResults};
use crate::results::{Align, Table};

/// One line of the summary.
#[derive(Clone, Debug, Serialize)]
pub struct SummaryRow {
    /// What it shows, with its unit.
    pub title: String,
    /// One cell per setup, in the order measured.
    pub cells: Vec<String>,
    /// The target, if an issue set one.
    pub target: String,
}

/// The rows of the short table for the README: medians, every setup side
/// by side.
pub(super) fn rows(options: &Options, by_setup: &[SetupResults]) -> Vec<SummaryRow> {
    let max_workers = options.workers.iter().copied().max().unwrap_or(1);
    let label = |count: usize| format!("{count} worker{}", if count == 1 { "" } else { "s" });
    let products = options.products;
    let clients = options.clients;
    let mut wanted: Vec<(String, String, &str)> = vec![
        (
            "baseline: bare sqlx, order + job row per transaction (tx/s)".into(),
            "transactions/s, one order row + one job row each".into(),
            "",
        ),
        (
            format!("checkout accept rate, {clients} clients (req/s)"),
            format!("accepted POST /orders/, {clients} clients"),
            "≥ 6,000 (normal), ≥ 2,000 (full)",
        ),
        ("checkout latency p50 / p99 (ms)".into(), "latency p50|latency p99".into(), "p99 ≤ 50"),
        ("checkout accept / baseline".into(), "checkout accept / baseline".into(), ""),
    ];
    for &count in &options.workers {
        let target = match count {
            1 => "≥ 2,000 (normal), ≥ 800 (full), ≥ 1,000 (PostgreSQL)",
            _ => "not slower than 1 worker",
        };
        wanted.push((
            format!("end to end, {} (orders/s)", label(count)),
            format!("accepted → confirmed, {}", label(count)),
            target,
        ));
    }
    wanted.push((
        format!("end to end, {} / baseline", label(max_workers)),
        format!("end to end, {} / baseline", label(max_workers)),
        "",
    ));
    wanted.push(("backlog drain, 1 worker (orders/s)".into(), "orders confirmed, 1 worker".into(), ""));
    wanted.push((
        format!("open loop at {:.0}/s: confirmed p50 / p99 (ms)", options.open_loop_rate),
        "accepted → confirmed p50|accepted → confirmed p99".into(),
        "p50 ≤ 100 (normal)",
    ));
    wanted.push((
        "open loop: achieved rate, sent / confirmed (orders/s)".into(),
        "offered rate achieved (requests sent)|confirmed rate (first accepted → last confirmed)".into(),
        "",
    ));
    wanted.push((
        "`--with-worker` end to end (orders/s)".into(),
        "accepted → confirmed, --with-worker".into(),
        "orders confirm while the load runs",
    ));
    wanted.push((
        "`--with-worker`: confirmed when the load stopped (%)".into(),
        "share confirmed when the load stopped".into(),
        "> 0",
    ));
    let mut lost_phases = vec!["backlog drain, 1 worker".to_owned()];
    lost_phases.extend(options.workers.iter().map(|&count| format!("end to end, {}", label(count))));
    lost_phases.push("open loop, 1 worker".to_owned());
    lost_phases.push("kassa-api --with-worker".to_owned());
    wanted.push(("lost leases, every phase and run (count)".into(), lost_phases.join(";"), "0"));
    wanted.push((
        format!("search p50 / p99, {products} products (ms)"),
        format!("search p50, {products} products, 1 client(s)|search p99, {products} products, 1 client(s)"),
        "p99 ≤ 5",
    ));
    wanted.push((
        format!("search p50 / p99 under {clients} clients (ms)"),
        format!(
            "search p50, {products} products, {clients} client(s)|search p99, {products} products, {clients} client(s)"
        ),
        "",
    ));
    wanted.push((
        format!("search rate, {clients} clients (req/s)"),
        format!("search rate, {products} products, {clients} client(s)"),
        "≥ 5,000",
    ));
    wanted.push(("GET /orders/{id} rate (req/s)".into(), format!("GET /orders/{{id}}, {clients} clients"), ""));
    let mut api_phases = vec!["kassa-api, checkout accept".to_owned(), "kassa-api, search".to_owned()];
    api_phases.push("kassa-api, order reads".to_owned());
    api_phases.extend(options.workers.iter().map(|&count| format!("kassa-api, end to end, {}", label(count))));
    api_phases.push("kassa-api, open loop".to_owned());
    api_phases.push("kassa-api --with-worker".to_owned());
    wanted.push(("peak RSS kassa-api under load (MiB)".into(), api_phases.join("^"), "≤ 50"));
    wanted.push((
        "peak RSS kassa-api during setup (Argon2) (MiB)".into(),
        "kassa-api, setup (Argon2 registrations and logins)".into(),
        "",
    ));
    wanted.push((
        "peak RSS kassa-worker (MiB)".into(),
        options
            .workers
            .iter()
            .map(|&count| format!("largest kassa-worker, {}", label(count)))
            .chain(std::iter::once("largest kassa-worker, open loop".to_owned()))
            .collect::<Vec<_>>()
            .join("^"),
        "≤ 50",
    ));
    wanted
        .into_iter()
        .map(|(title, names, target)| {
            let cells = by_setup.iter().map(|results| cell(&results.figures, &names)).collect();
            SummaryRow { title, cells, target: target.to_owned() }
        })
        .collect()
}

/// A cell: `a|b` shows both medians as `a / b`; `a^b^c` the largest of
/// them; `a;b;c` the sum of every run's value of each in the lost-leases
/// section (other sections reuse the phase names: the `kassa-api
/// --with-worker` peak RSS once counted as 45 leases).
fn cell(figures: &crate::results::Figures, names: &str) -> String {
    if names.contains(';') {
        let total: f64 = names
            .split(';')
            .filter_map(|name| {
                figures.0.iter().find(|figure| figure.section == super::processes::LOST_LEASES && figure.name == name)
            })
            .flat_map(|figure| figure.values.iter())
            .sum();
        return format!("{total:.0}");
    }
    if names.contains('^') {
        let peak = names.split('^').filter_map(|name| figures.median_of(name)).fold(0.0, f64::max);
        return format!("{peak:.0}");
    }
    names
        .split('|')
        .map(|name| figures.median_of(name).map_or_else(|| "–".to_owned(), crate::results::format_number))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// The summary as a table: measurement, one column per setting, target.
pub(super) fn table(by_setup: &[SetupResults], rows: &[SummaryRow]) -> Table {
    let headers: Vec<String> = by_setup
        .iter()
        .map(|results| match results.setup {
            "postgres" => "PostgreSQL".to_owned(),
            sync => format!("SQLite `{sync}`"),
        })
        .collect();
    let mut columns = vec![("measurement", Align::Left)];
    columns.extend(headers.iter().map(|header| (header.as_str(), Align::Right)));
    columns.push(("target", Align::Left));
    let mut table = Table::new(&columns);
    for row in rows {
        let mut cells = vec![row.title.clone()];
        cells.extend(row.cells.iter().cloned());
        cells.push(row.target.clone());
        table.row(cells);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Figures;

    #[test]
    fn cells_show_medians_peaks_and_totals() {
        let mut figures = Figures::default();
        figures.record("baseline", "transactions/s, one order row + one job row each", "tx/s", 9823.0);
        figures.record("ratios", "end to end / baseline", "×", 0.05);
        // The same phase name in another section, first, is not a lease count.
        figures.record("peak RSS", "open loop, 1 worker", "MiB", 45.0);
        let lost_leases = super::super::processes::LOST_LEASES;
        for lost in [2.0, 3.0] {
            figures.record(lost_leases, "end to end, 1 worker", "leases", lost);
        }
        figures.record(lost_leases, "open loop, 1 worker", "leases", 1.0);
        figures.record("rss", "a", "MiB", 40.0);
        figures.record("rss", "b", "MiB", 48.0);
        assert_eq!(cell(&figures, "transactions/s, one order row + one job row each"), "9823");
        assert_eq!(cell(&figures, "end to end / baseline"), "0.05");
        assert_eq!(cell(&figures, "end to end, 1 worker;open loop, 1 worker"), "6");
        assert_eq!(cell(&figures, "a^b"), "48");
        assert_eq!(cell(&figures, "a|b"), "40.0 / 48.0");
    }
}
