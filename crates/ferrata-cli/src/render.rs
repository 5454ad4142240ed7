//! Tables for terminals, from the admin API's JSON (`--json` prints that JSON instead).

use comfy_table::Table;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use serde_json::Value;

use crate::{Command, TxCommand};

/// A JSON value as a cell: strings without quotes, null as "-".
fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(text) => text.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// Milliseconds as `1h2m`, `3m4s`, `5.2s` or `12ms`.
pub fn age(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..=999 => format!("{ms}ms"),
        1_000..=59_999 => format!("{:.1}s", ms as f64 / 1_000.0),
        60_000..=3_599_999 => format!("{}m{}s", ms / 60_000, ms % 60_000 / 1_000),
        _ => format!("{}h{}m", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

fn table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_header(header.to_vec());
    for row in rows {
        table.add_row(row);
    }
    format!("{table}\n")
}

fn items(value: &Value) -> &[Value] {
    value["items"].as_array().map_or(&[], Vec::as_slice)
}

/// `shown of total` under a page.
fn footer(value: &Value) -> String {
    format!("{} of {}\n", items(value).len(), cell(&value["total"]))
}

pub fn human(command: &Command, value: &Value) -> String {
    match command {
        Command::Server => {
            let fields = value
                .as_object()
                .map(|o| o.iter().collect::<Vec<_>>())
                .unwrap_or_default();
            table(
                &["", ""],
                fields.into_iter().map(|(k, v)| vec![k.clone(), cell(v)]),
            )
        }
        Command::Health => String::new(),
        Command::Clients => {
            let rows = items(value).iter().map(|c| {
                ["application_id", "role", "version", "address", "resources"]
                    .iter()
                    .map(|k| cell(&c[*k]))
                    .collect()
            });
            table(
                &["APPLICATION", "ROLE", "VERSION", "ADDRESS", "RESOURCES"],
                rows,
            ) + &footer(value)
        }
        Command::Locks { .. } => {
            let now = now_ms();
            let rows = items(value).iter().map(|l| {
                let since = l["since_ms"]
                    .as_i64()
                    .map_or("-".to_owned(), |t| age(now - t));
                vec![
                    cell(&l["resource_id"]),
                    cell(&l["table"]),
                    cell(&l["pk"]),
                    cell(&l["xid"]),
                    cell(&l["branch_id"]),
                    since,
                ]
            });
            table(
                &["RESOURCE", "TABLE", "PK", "XID", "BRANCH", "HELD FOR"],
                rows,
            ) + &footer(value)
        }
        Command::Tx(TxCommand::List { cluster: true, .. }) => {
            let rows = items(value).iter().map(|t| {
                let mut row = transaction_row(t);
                row.push(cell(&t["driven_by"]));
                row
            });
            let mut header = TRANSACTION_HEADER.to_vec();
            header.push("DRIVEN BY");
            table(&header, rows) + &footer(value)
        }
        Command::Cluster => {
            let nodes = value["nodes"].as_array().map_or(&[][..], Vec::as_slice);
            table(
                &["NODE", "THIS NODE", "HAS TRANSACTIONS", "DRIVEN BY"],
                nodes.iter().map(|n| {
                    ["node", "this_node", "has_transactions", "driven_by"]
                        .iter()
                        .map(|k| cell(&n[*k]))
                        .collect()
                }),
            )
        }
        Command::Tx(TxCommand::List { .. }) => {
            let rows = items(value).iter().map(transaction_row);
            table(&TRANSACTION_HEADER, rows) + &footer(value)
        }
        Command::Tx(TxCommand::Show { .. }) => {
            let mut out = table(
                &TRANSACTION_HEADER,
                [transaction_row(&value["transaction"])],
            );
            let branches = value["branches"].as_array().map_or(&[][..], Vec::as_slice);
            out += &table(
                &[
                    "BRANCH",
                    "TYPE",
                    "STATUS",
                    "RESOURCE",
                    "LOCK KEY",
                    "CLIENT",
                    "IN FLIGHT",
                ],
                branches.iter().map(|b| {
                    [
                        "branch_id",
                        "branch_type",
                        "status",
                        "resource_id",
                        "lock_key",
                        "client_id",
                        "phase2_in_flight",
                    ]
                    .iter()
                    .map(|k| cell(&b[*k]))
                    .collect()
                }),
            );
            let history = value["history"].as_array().map_or(&[][..], Vec::as_slice);
            out += &table(
                &["AT (ms)", "EVENT", "DETAIL"],
                history.iter().map(|e| {
                    let detail: Vec<String> = e
                        .as_object()
                        .into_iter()
                        .flatten()
                        .filter(|(k, _)| *k != "at_ms" && *k != "event")
                        .map(|(k, v)| format!("{k}={}", cell(v)))
                        .collect();
                    vec![cell(&e["at_ms"]), cell(&e["event"]), detail.join(" ")]
                }),
            );
            if value["history_dropped"].as_u64().unwrap_or(0) > 0 {
                out += &format!("({} history entries left out)\n", value["history_dropped"]);
            }
            out
        }
        Command::Tx(_) => format!(
            "{} {}: {}\n",
            cell(&value["action"]),
            cell(&value["xid"]),
            cell(&value["status"])
        ),
    }
}

const TRANSACTION_HEADER: [&str; 7] = [
    "XID",
    "STATUS",
    "APPLICATION",
    "GROUP",
    "NAME",
    "AGE",
    "BRANCHES",
];

fn transaction_row(t: &Value) -> Vec<String> {
    vec![
        cell(&t["xid"]),
        cell(&t["status"]),
        cell(&t["application_id"]),
        cell(&t["group"]),
        cell(&t["name"]),
        age(t["age_ms"].as_i64().unwrap_or(0)),
        cell(&t["branches"]),
    ]
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_naturally() {
        assert_eq!(age(12), "12ms");
        assert_eq!(age(5_230), "5.2s");
        assert_eq!(age(192_000), "3m12s");
        assert_eq!(age(3_720_000), "1h2m");
    }
}
