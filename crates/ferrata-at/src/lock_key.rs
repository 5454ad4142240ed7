//! A branch's lock key in Seata's grammar (`orders:7,9;order_item:7_1,7_2`): every row the
//! branch wrote, by table and primary key, as the TC parses it (semantics 2.1).

use std::collections::HashSet;

/// Builds the lock key of one branch: rows are added per statement, de-duplicated, and kept
/// in the order first seen so the key is stable for a given sequence of statements.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LockKeys {
    /// (table, row tokens in order) in the order tables were first seen.
    tables: Vec<(String, Vec<String>)>,
    /// (table index, row token) of every row, so a large statement de-duplicates in linear time.
    seen: HashSet<(usize, String)>,
}

/// A primary-key value that the lock key grammar cannot carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockKeyError {
    #[error(
        "the primary key of a row in {table} contains a '{character}' ({value:?}); AT cannot lock it (Seata's lock keys separate rows with ',' and tables with ';')"
    )]
    Unrepresentable {
        table: String,
        value: String,
        character: char,
    },
    #[error("table name {0:?} cannot appear in a lock key (it contains ':' or ';')")]
    TableName(String),
}

impl LockKeys {
    pub fn new() -> LockKeys {
        LockKeys::default()
    }

    /// Adds one row of `table` given its primary-key values in key order (composite keys are
    /// joined with `_`, as Java does).
    pub fn add_row<S: AsRef<str>>(&mut self, table: &str, key: &[S]) -> Result<(), LockKeyError> {
        if table.contains([':', ';']) || table.is_empty() {
            return Err(LockKeyError::TableName(table.to_owned()));
        }
        for value in key {
            let value = value.as_ref();
            if let Some(character) = value.chars().find(|c| matches!(c, ',' | ';')) {
                return Err(LockKeyError::Unrepresentable {
                    table: table.to_owned(),
                    value: value.to_owned(),
                    character,
                });
            }
        }
        let token = key.iter().map(AsRef::as_ref).collect::<Vec<_>>().join("_");
        let index = match self.tables.iter().position(|(name, _)| name == table) {
            Some(index) => index,
            None => {
                self.tables.push((table.to_owned(), Vec::new()));
                self.tables.len() - 1
            }
        };
        if self.seen.insert((index, token.clone())) {
            self.tables[index].1.push(token);
        }
        Ok(())
    }

    /// Adds everything of `other` (a later statement of the same branch).
    pub fn merge(&mut self, other: &LockKeys) {
        for (table, rows) in &other.tables {
            for row in rows {
                // Both were validated when added.
                let _ = self.add_row(table, &[row]);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.tables.iter().all(|(_, rows)| rows.is_empty())
    }

    /// Number of distinct rows.
    pub fn len(&self) -> usize {
        self.tables.iter().map(|(_, rows)| rows.len()).sum()
    }
}

impl std::fmt::Display for LockKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first_table = true;
        for (table, rows) in self.tables.iter().filter(|(_, rows)| !rows.is_empty()) {
            if !first_table {
                f.write_str(";")?;
            }
            first_table = false;
            write!(f, "{table}:{}", rows.join(","))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_group_by_table_in_first_seen_order_without_duplicates() {
        let mut keys = LockKeys::new();
        keys.add_row("orders", &["7"]).unwrap();
        keys.add_row("order_item", &["7", "1"]).unwrap();
        keys.add_row("orders", &["9"]).unwrap();
        keys.add_row("orders", &["7"]).unwrap();
        let mut later = LockKeys::new();
        later.add_row("order_item", &["7", "2"]).unwrap();
        later.add_row("order_item", &["7", "1"]).unwrap();
        keys.merge(&later);
        assert_eq!(keys.to_string(), "orders:7,9;order_item:7_1,7_2");
        assert_eq!(keys.len(), 4);
        assert!(!keys.is_empty() && LockKeys::new().is_empty());
        assert_eq!(LockKeys::new().to_string(), "");
    }

    #[test]
    fn separators_in_keys_or_table_names_are_refused() {
        let mut keys = LockKeys::new();
        let error = keys.add_row("account", &["a,b"]).unwrap_err();
        assert!(error.to_string().contains("account"), "{error}");
        assert!(keys.add_row("account", &["a;b"]).is_err());
        assert!(keys.add_row("db:account", &["1"]).is_err());
        assert!(keys.is_empty(), "a refused row adds nothing");
    }
}
