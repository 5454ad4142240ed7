//! Parsed statements by SQL text, bounded in entries and bytes, shared across tasks. Sharded
//! mutexes held only for a map look-up keep contention low; parsing happens outside any lock.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, PoisonError};

use super::parser::{SqlError, parse};
use super::types::{Dialect, Recognized};

const SHARDS: usize = 16;

/// What one cached statement is charged: its text (held twice, as key and in the parsed
/// fragments) and a fixed allowance for the parsed structure.
fn cost(sql: &str) -> usize {
    2 * sql.len() + 512
}

#[derive(Debug)]
struct Entry {
    value: Arc<Recognized>,
    /// Second-chance bit: set on a hit, so that eviction (CLOCK order) spares hot statements.
    referenced: bool,
}

fn slot(dialect: Dialect) -> usize {
    match dialect {
        Dialect::MySql => 0,
        Dialect::Postgres => 1,
    }
}

#[derive(Debug, Default)]
struct Shard {
    /// One map per dialect, so a look-up borrows the text instead of building a key.
    maps: [HashMap<Arc<str>, Entry>; 2],
    /// Insertion order, for CLOCK eviction.
    order: VecDeque<(Dialect, Arc<str>)>,
    bytes: usize,
}

impl Shard {
    fn len(&self) -> usize {
        self.maps[0].len() + self.maps[1].len()
    }

    fn evict_one(&mut self) {
        while let Some(key) = self.order.pop_front() {
            let map = &mut self.maps[slot(key.0)];
            let Some(entry) = map.get_mut(&key.1) else {
                continue;
            };
            if entry.referenced {
                entry.referenced = false;
                self.order.push_back(key);
                continue;
            }
            map.remove(&key.1);
            self.bytes -= cost(&key.1);
            return;
        }
    }
}

/// A cache of recognized statements keyed by dialect and exact SQL text. Share it with `Arc`.
#[derive(Debug)]
pub struct StatementCache {
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
    entries_per_shard: usize,
    bytes_per_shard: usize,
}

impl Default for StatementCache {
    /// 4,096 statements and 16 MiB, whichever is reached first.
    fn default() -> Self {
        StatementCache::new(4096, 16 << 20)
    }
}

impl StatementCache {
    /// A cache holding at most `max_entries` statements and about `max_bytes` (see the cost
    /// rule above); both limits are split evenly over the shards.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        StatementCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
            entries_per_shard: max_entries.div_ceil(SHARDS),
            bytes_per_shard: max_bytes.div_ceil(SHARDS),
        }
    }

    fn shard(&self, dialect: Dialect, sql: &str) -> &Mutex<Shard> {
        let h = self.hasher.hash_one((dialect, sql));
        &self.shards[(h as usize) % SHARDS]
    }

    /// The recognized statement for `sql`, parsed on first use. Syntax errors are not cached.
    pub fn get_or_parse(&self, sql: &str, dialect: Dialect) -> Result<Arc<Recognized>, SqlError> {
        let shard = self.shard(dialect, sql);
        {
            let mut s = shard.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(entry) = s.maps[slot(dialect)].get_mut(sql) {
                entry.referenced = true;
                return Ok(entry.value.clone());
            }
        }
        let value = Arc::new(parse(sql, dialect)?);
        let c = cost(sql);
        if c > self.bytes_per_shard || self.entries_per_shard == 0 {
            return Ok(value);
        }
        let mut s = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(existing) = s.maps[slot(dialect)].get(sql) {
            // Another task parsed it meanwhile: keep one copy.
            return Ok(existing.value.clone());
        }
        while s.len() >= self.entries_per_shard || s.bytes + c > self.bytes_per_shard {
            if s.len() == 0 {
                break;
            }
            s.evict_one();
        }
        let text: Arc<str> = Arc::from(sql);
        s.bytes += c;
        s.order.push_back((dialect, text.clone()));
        s.maps[slot(dialect)].insert(
            text,
            Entry {
                value: value.clone(),
                referenced: false,
            },
        );
        Ok(value)
    }

    /// Statements held now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes charged now (see the cost rule).
    pub fn bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).bytes)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_bounded_in_entries_and_bytes() {
        let cache = StatementCache::new(64, 64 * 1024);
        for i in 0..5_000 {
            let sql = format!("UPDATE t SET a = {i} WHERE id = ?");
            cache.get_or_parse(&sql, Dialect::MySql).unwrap();
            assert!(cache.len() <= 64 + SHARDS, "entries {}", cache.len());
            assert!(
                cache.bytes() <= 64 * 1024 + SHARDS,
                "bytes {}",
                cache.bytes()
            );
        }
        assert!(cache.len() > 16);
    }

    #[test]
    fn bytes_bound_evicts_long_statements() {
        let cache = StatementCache::new(10_000, 32 * 1024);
        let padding = "x".repeat(900);
        for i in 0..1_000 {
            let sql = format!("SELECT '{padding}' FROM t WHERE id = {i}");
            cache.get_or_parse(&sql, Dialect::Postgres).unwrap();
        }
        assert!(cache.bytes() <= 32 * 1024, "bytes {}", cache.bytes());
        assert!(cache.len() < 100);
    }

    #[test]
    fn hit_returns_the_same_parse_and_dialects_are_separate() {
        let cache = StatementCache::default();
        let a = cache
            .get_or_parse("DELETE FROM t WHERE id = 1", Dialect::MySql)
            .unwrap();
        let b = cache
            .get_or_parse("DELETE FROM t WHERE id = 1", Dialect::MySql)
            .unwrap();
        let c = cache
            .get_or_parse("DELETE FROM t WHERE id = 1", Dialect::Postgres)
            .unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(c.dialect, Dialect::Postgres);
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn hot_statement_survives_eviction() {
        let cache = StatementCache::new(SHARDS * 4, 1 << 30);
        let hot = "UPDATE hot SET a = 1 WHERE id = ?";
        let first = cache.get_or_parse(hot, Dialect::MySql).unwrap();
        for i in 0..2_000 {
            cache.get_or_parse(hot, Dialect::MySql).unwrap();
            let sql = format!("UPDATE t SET a = {i} WHERE id = ?");
            cache.get_or_parse(&sql, Dialect::MySql).unwrap();
        }
        let again = cache.get_or_parse(hot, Dialect::MySql).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
    }

    #[test]
    fn syntax_errors_are_not_cached() {
        let cache = StatementCache::default();
        assert!(
            cache
                .get_or_parse("UPDATE SET WHERE", Dialect::MySql)
                .is_err()
        );
        assert!(cache.is_empty());
    }

    #[test]
    fn shared_across_threads() {
        let cache = Arc::new(StatementCache::new(128, 1 << 20));
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let cache = cache.clone();
                std::thread::spawn(move || {
                    for i in 0..500 {
                        let sql = format!("DELETE FROM t{} WHERE id = ?", (i * 7 + t) % 300);
                        cache.get_or_parse(&sql, Dialect::MySql).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert!(cache.len() <= 128 + SHARDS);
    }
}
