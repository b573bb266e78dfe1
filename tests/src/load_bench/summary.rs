//! The short table for the README: a few medians per durability, next to
//! the targets the issues set.

use serde::Serialize;

use super::{Options, SyncResults};
use crate::results::{Align, Table};

/// One line of the summary.
#[derive(Clone, Debug, Serialize)]
pub struct SummaryRow {
    /// What it shows, with its unit.
    pub title: String,
    /// One cell per `synchronous` setting, in the order measured.
    pub cells: Vec<String>,
    /// The target, if an issue set one.
    pub target: String,
}

/// The rows of the short table for the README: medians, every durability
/// side by side.
pub(super) fn rows(options: &Options, by_sync: &[SyncResults]) -> Vec<SummaryRow> {
    let max_workers = options.workers.iter().copied().max().unwrap_or(1);
    let label = |count: usize| format!("{count} worker{}", if count == 1 { "" } else { "s" });
    let products = options.products;
    let clients = options.clients;
    let mut wanted: Vec<(String, String, &str)> = vec![
        ("checkout accept rate".into(), format!("accepted POST /orders/, {clients} clients"), ""),
        ("checkout latency p50 / p99 (ms)".into(), "latency p50|latency p99".into(), ""),
    ];
    for &count in &options.workers {
        let target = if count == max_workers { "≥ 2,000 (normal)" } else { "" };
        wanted.push((
            format!("end to end, {} (orders/s)", label(count)),
            format!("accepted → confirmed, {}", label(count)),
            target,
        ));
    }
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
    wanted.push(("GET /orders/{id} rate (req/s)".into(), format!("GET /orders/{{id}}, {clients} clients"), ""));
    let mut api_phases = vec!["kassa-api, checkout accept".to_owned(), "kassa-api, search".to_owned()];
    api_phases.push("kassa-api, order reads".to_owned());
    api_phases.extend(options.workers.iter().map(|&count| format!("kassa-api, end to end, {}", label(count))));
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
            .collect::<Vec<_>>()
            .join("^"),
        "≤ 50",
    ));
    wanted
        .into_iter()
        .map(|(title, names, target)| {
            let cells = by_sync.iter().map(|results| cell(&results.figures, &names)).collect();
            SummaryRow { title, cells, target: target.to_owned() }
        })
        .collect()
}

/// A cell: `a|b` shows both medians as `a / b`; `a^b^c` the largest of them.
fn cell(figures: &crate::results::Figures, names: &str) -> String {
    if names.contains('^') {
        let peak = names.split('^').filter_map(|name| figures.median_of(name)).fold(0.0, f64::max);
        return format!("{peak:.0}");
    }
    names
        .split('|')
        .map(|name| {
            figures.median_of(name).map_or_else(
                || "–".to_owned(),
                |value| if value >= 100.0 { format!("{value:.0}") } else { format!("{value:.1}") },
            )
        })
        .collect::<Vec<_>>()
        .join(" / ")
}

/// The summary as a table: measurement, one column per setting, target.
pub(super) fn table(by_sync: &[SyncResults], rows: &[SummaryRow]) -> Table {
    let headers: Vec<String> = by_sync.iter().map(|results| format!("`{}`", results.sync)).collect();
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
