//! How replies are printed: aligned tables for people, exact JSON for scripts.
//!
//! A column is one entry in a `*_COLUMNS` list and one cell in the matching row function.

use std::io::{IsTerminal as _, Write};

use comfy_table::{CellAlignment, Table, presets};
use serde::Serialize;
use shared::model::{Consignment, CreatedConsignment, ListedVessel, Load};

/// How to print a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns (lists) or one line (a create).
    Table,
    /// The reply's JSON; lists as JSON Lines, one item a line.
    Json,
}

impl Format {
    /// The format asked for, else `table` when stdout is a terminal and `json` when not.
    pub fn resolve(asked: Option<Self>) -> Self {
        asked.unwrap_or_else(|| if std::io::stdout().is_terminal() { Self::Table } else { Self::Json })
    }
}

/// Whether a column holds numbers (right-aligned) or text.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Text,
    Number,
}

const CONSIGNMENT_COLUMNS: &[(&str, Kind)] = &[
    ("ID", Kind::Text),
    ("DESCRIPTION", Kind::Text),
    ("WEIGHT", Kind::Number),
    ("CONTAINERS", Kind::Number),
    ("VESSEL", Kind::Text),
];

fn consignment_row(consignment: &Consignment) -> Vec<String> {
    vec![
        consignment.id.clone(),
        consignment.description.clone(),
        consignment.weight.to_string(),
        consignment.containers.len().to_string(),
        consignment.vessel_id.clone(),
    ]
}

const VESSEL_COLUMNS: &[(&str, Kind)] = &[
    ("ID", Kind::Text),
    ("NAME", Kind::Text),
    ("CAPACITY", Kind::Number),
    ("MAX WEIGHT", Kind::Number),
    ("AVAILABLE", Kind::Text),
    ("BOOKED", Kind::Number),
    ("REMAINING", Kind::Number),
];

fn load(load: Load) -> String {
    format!("{} ctr, {} kg", load.containers, load.weight)
}

fn vessel_row(listed: &ListedVessel) -> Vec<String> {
    let vessel = &listed.vessel;
    vec![
        vessel.id.clone(),
        vessel.name.clone(),
        vessel.capacity.to_string(),
        vessel.max_weight.to_string(),
        availability(listed).to_owned(),
        load(vessel.booked),
        load(listed.remaining),
    ]
}

/// `no` for a vessel taken out of service, `full` for one with no container or no
/// kilogram left (it can take nothing more), `yes` otherwise.
fn availability(listed: &ListedVessel) -> &'static str {
    if !listed.vessel.available {
        "no"
    } else if listed.remaining.containers == 0 || listed.remaining.weight == 0 {
        "full"
    } else {
        "yes"
    }
}

/// A borderless table in the style of kubectl: upper-case headers, columns two spaces apart.
pub(crate) fn table(columns: &[(&str, Kind)], rows: impl IntoIterator<Item = Vec<String>>) -> Table {
    let mut table = Table::new();
    table.load_style(presets::NOTHING).set_header(columns.iter().map(|(name, _)| *name));
    for row in rows {
        table.add_row(row);
    }
    for (column, (_, kind)) in table.column_iter_mut().zip(columns) {
        column.set_padding((0, 2));
        if matches!(kind, Kind::Number) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

/// Renders a table as lines with no trailing spaces.
pub(crate) fn render(table: &Table) -> String {
    table.lines().map(|line| line.trim_end().to_owned()).collect::<Vec<_>>().join("\n")
}

/// Prints consignments: a table, or one JSON object a line.
pub fn consignments(out: &mut impl Write, format: Format, consignments: &[Consignment]) -> std::io::Result<()> {
    match format {
        Format::Table => {
            writeln!(out, "{}", render(&table(CONSIGNMENT_COLUMNS, consignments.iter().map(consignment_row))))
        }
        Format::Json => json_lines(out, consignments),
    }
}

/// Prints vessels: a table, or one JSON object a line.
pub fn vessels(out: &mut impl Write, format: Format, vessels: &[ListedVessel]) -> std::io::Result<()> {
    match format {
        Format::Table => writeln!(out, "{}", render(&table(VESSEL_COLUMNS, vessels.iter().map(vessel_row)))),
        Format::Json => json_lines(out, vessels),
    }
}

/// Prints the keys `shippy auth init` made or kept: a table, or one JSON object a line.
pub fn keys(out: &mut impl Write, format: Format, keys: &[crate::auth::Key]) -> std::io::Result<()> {
    const COLUMNS: &[(&str, Kind)] =
        &[("ROLE", Kind::Text), ("PUBLIC KEY", Kind::Text), ("STATUS", Kind::Text), ("SEED FILE", Kind::Text)];
    match format {
        Format::Table => {
            let rows = keys.iter().map(|key| {
                vec![
                    key.role.to_owned(),
                    key.public_key.clone(),
                    key.status.to_string(),
                    key.seed_file.display().to_string(),
                ]
            });
            writeln!(out, "{}", render(&table(COLUMNS, rows)))
        }
        Format::Json => json_lines(out, keys),
    }
}

/// One line about a created consignment, as `create` prints it on a terminal.
pub fn created_line(created: &CreatedConsignment) -> String {
    let consignment = &created.consignment;
    format!(
        "created {} on {}: {:?}, {} kg in {} container{}",
        consignment.id,
        consignment.vessel_id,
        consignment.description,
        consignment.weight,
        consignment.containers.len(),
        if consignment.containers.len() == 1 { "" } else { "s" },
    )
}

/// Prints a reply as pretty JSON, as `shippy` always has.
pub fn pretty(out: &mut impl Write, reply: &impl Serialize) -> std::io::Result<()> {
    writeln!(out, "{}", serde_json::to_string_pretty(reply).map_err(std::io::Error::other)?)
}

/// Prints each item as one line of compact JSON.
pub fn json_lines<T: Serialize>(out: &mut impl Write, items: &[T]) -> std::io::Result<()> {
    for item in items {
        writeln!(out, "{}", serde_json::to_string(item).map_err(std::io::Error::other)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use shared::model::Vessel;

    use super::*;

    fn vessel(id: &str, name: &str, capacity: u32, max_weight: u64) -> ListedVessel {
        let booked = Load { containers: 3, weight: 55_000 };
        let vessel = Vessel {
            id: id.into(),
            capacity,
            max_weight,
            name: name.into(),
            available: true,
            owner_id: String::new(),
            booked,
        };
        vessel.into()
    }

    #[test]
    fn vessels_table_is_aligned() {
        let mut out = Vec::new();
        let fleet =
            [vessel("vessel001", "Boaty McBoatface", 500, 200_000), vessel("v2", "Seawise Giant", 2_000, 560_000)];
        vessels(&mut out, Format::Table, &fleet).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "ID         NAME              CAPACITY  MAX WEIGHT  AVAILABLE           BOOKED            REMAINING\n\
             vessel001  Boaty McBoatface       500      200000  yes        3 ctr, 55000 kg   497 ctr, 145000 kg\n\
             v2         Seawise Giant         2000      560000  yes        3 ctr, 55000 kg  1997 ctr, 505000 kg\n"
        );
    }

    #[test]
    fn a_vessel_with_no_room_left_shows_as_full() {
        let mut out = Vec::new();
        let full_up = vessel("a", "A", 3, 100_000);
        let heavy = vessel("b", "B", 10, 55_000);
        let mut off = vessel("c", "C", 500, 200_000);
        off.vessel.available = false;
        vessels(&mut out, Format::Table, &[full_up, heavy, off, vessel("d", "D", 500, 200_000)]).unwrap();
        let text = String::from_utf8(out).unwrap();
        let available: Vec<&str> = text.lines().skip(1).map(|line| line.split_whitespace().nth(4).unwrap()).collect();
        assert_eq!(available, ["full", "full", "no", "yes"], "{text}");
    }

    #[test]
    fn lists_print_as_json_lines() {
        let mut out = Vec::new();
        vessels(&mut out, Format::Json, &[vessel("a", "A", 1, 2), vessel("b", "B", 3, 4)]).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        assert_eq!(lines[1]["id"], "b");
        assert_eq!(lines.len(), 2);
    }
}
