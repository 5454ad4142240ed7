//! Criterion micro-benchmarks of `ferrata_core::lock::LockManager`: lock-key parsing, taking and
//! releasing a branch's rows next to many held rows, and the conflict path of a hot row.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ferrata_core::lock::{LockHolder, LockKeyLimits, LockManager, LockRow, parse_lock_key};
use ferrata_core::{BranchId, TransactionId};

const RESOURCE: &str = "jdbc:mysql://127.0.0.1:3306/seata";

fn holder(tx: i64, branch: i64) -> LockHolder {
    LockHolder {
        transaction_id: TransactionId(tx),
        branch_id: BranchId(branch),
    }
}

fn rows(key: &str) -> Vec<LockRow<'_>> {
    parse_lock_key(key, LockKeyLimits::NONE).unwrap_or_default()
}

/// A table with `n` branches of `rows` rows each already held.
fn populated(n: i64, per_branch: usize) -> LockManager {
    let mut locks = LockManager::new();
    for tx in 0..n {
        let keys: Vec<String> = (0..per_branch).map(|r| format!("{tx}_{r}")).collect();
        let key = format!("held:{}", keys.join(","));
        let _ = locks.acquire(holder(tx, tx), RESOURCE, &rows(&key));
    }
    locks
}

fn rows_key(n: usize) -> String {
    let pks: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    format!("order_item:{}", pks.join(","))
}

fn parsing(c: &mut Criterion) {
    let mut group = c.benchmark_group("lock_key");
    for (name, key) in [
        ("one_row", "stock_tbl:11".to_owned()),
        (
            "two_tables",
            "stock_tbl:11,12;order_tbl:2611341069705662466".to_owned(),
        ),
        ("hundred_rows", rows_key(100)),
        // A bulk UPDATE: shows how parsing scales with the number of rows.
        ("thousand_rows", rows_key(1000)),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| parse_lock_key(black_box(&key), LockKeyLimits::NONE).map(|r| r.len()))
        });
    }
    group.finish();
}

fn acquire_release(c: &mut Criterion) {
    let mut group = c.benchmark_group("lock_manager");
    for held in [0i64, 10_000, 100_000] {
        let mut locks = populated(held, 2);
        let mut next = 1_000_000i64;
        group.bench_function(format!("acquire_release_2_rows/{held}_held"), |b| {
            b.iter(|| {
                next += 1;
                let key = format!("t:{next}_a,{next}_b");
                let rows = rows(&key);
                let taken = locks.acquire(holder(next, next), RESOURCE, &rows);
                locks.release(BranchId(next), RESOURCE, &rows);
                taken.is_ok()
            })
        });
    }
    let mut hot = LockManager::new();
    let _ = hot.acquire(holder(1, 1), RESOURCE, &rows("bench_hot:1"));
    group.bench_function("conflict_on_hot_row", |b| {
        b.iter(|| {
            hot.acquire(holder(2, 2), RESOURCE, &rows(black_box("bench_hot:1")))
                .is_err()
        })
    });
    let keys: Vec<String> = (0..50)
        .map(|branch| format!("t:{branch}_a,{branch}_b"))
        .collect();
    group.bench_function("release_transaction_of_50_branches", |b| {
        b.iter_batched(
            || {
                let mut locks = LockManager::new();
                for (branch, key) in keys.iter().enumerate() {
                    let _ = locks.acquire(holder(7, branch as i64), RESOURCE, &rows(key));
                }
                locks
            },
            |mut locks| {
                for (branch, key) in keys.iter().enumerate() {
                    locks.release(BranchId(branch as i64), RESOURCE, &rows(key));
                }
                locks.len()
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, parsing, acquire_release);
criterion_main!(benches);
