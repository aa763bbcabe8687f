//! The status rows as kubectl-style tables.

use super::{Attention, StatusRow, backends_cell};
use crate::table::{Cell, Style, Table};
use crate::time::age;

/// NAMESPACE ROUTE KIND PARENT ACCEPTED RESOLVED REASON BACKENDS AGE.
pub fn table(rows: &[StatusRow], now: i64) -> Table {
    let mut table = Table::new(&[
        "NAMESPACE",
        "ROUTE",
        "KIND",
        "PARENT",
        "ACCEPTED",
        "RESOLVED",
        "REASON",
        "BACKENDS",
        "AGE",
    ]);
    for row in rows {
        table.rows.push(vec![
            Cell::plain(&row.route.namespace),
            Cell::plain(&row.route.name),
            Cell::plain(&row.route.kind),
            Cell::plain(&row.parent.display),
            Cell::status(&row.accepted),
            Cell::status(&row.resolved_refs),
            reason_cell(row),
            Cell::plain(backends_cell(&row.route.namespace, &row.backends)),
            Cell::plain(age(row.creation_timestamp.as_deref(), now)),
        ]);
    }
    table
}

/// The table plus HOSTNAMES, CONTROLLER, GEN (generation/observed) and
/// PROGRAMMED (the parent Gateway's).
pub fn wide_table(rows: &[StatusRow], now: i64) -> Table {
    let mut table = table(rows, now);
    table
        .headers
        .extend(["HOSTNAMES", "CONTROLLER", "GEN", "PROGRAMMED"].map(str::to_owned));
    for (cells, row) in table.rows.iter_mut().zip(rows) {
        let gen_ = |g: Option<i64>| g.map_or("-".to_owned(), |g| g.to_string());
        cells.extend([
            Cell::plain(if row.hostnames.is_empty() {
                "*".to_owned()
            } else {
                row.hostnames.join(",")
            }),
            Cell::plain(row.controller.clone().unwrap_or_else(|| "-".to_owned())),
            Cell::plain(format!(
                "{}/{}",
                gen_(row.generation),
                gen_(row.observed_generation)
            )),
            Cell::status(
                row.parent_programmed
                    .clone()
                    .unwrap_or_else(|| "-".to_owned()),
            ),
        ]);
    }
    table
}

fn reason_cell(row: &StatusRow) -> Cell {
    let text = if row.reason.is_empty() {
        "-".to_owned()
    } else {
        row.reason.clone()
    };
    let style = match row.attention {
        Some(Attention::NoStatus | Attention::Stale) => Style::Warn,
        Some(Attention::NotReady) => Style::Bad,
        None => Style::Plain,
    };
    Cell::styled(text, style)
}
