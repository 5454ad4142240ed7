//! Fuzz target: arbitrary SQL text through ferrata-at's recognizer (both dialects), then every
//! image query built from what it recognized. Nothing may panic, and every statement parameter
//! an image query or an INSERT row refers to must exist: the executor indexes the statement's
//! values with these ordinals. Input: one byte choosing the dialect, then the text.
#![no_main]

use ferrata_at::sql::{
    Dialect, ImageQuery, InsertValue, PkPredicate, Statement, after_image_query, parse,
};
use libfuzzer_sys::fuzz_target;

const COLUMNS: [&str; 3] = ["id", "v", "w"];
const KEY: [&str; 1] = ["id"];

fn check(query: &ImageQuery, param_count: usize) {
    for &n in &query.params {
        assert!(
            (1..=param_count).contains(&n),
            "parameter {n} of {param_count} in {:?}",
            query.sql
        );
    }
}

fn check_value(value: &InsertValue, param_count: usize) {
    if let InsertValue::Param(n) = value {
        assert!((1..=param_count).contains(n), "parameter {n} of {param_count}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, text)) = data.split_first() else {
        return;
    };
    let dialect = if which % 2 == 0 {
        Dialect::MySql
    } else {
        Dialect::Postgres
    };
    let sql = String::from_utf8_lossy(text);
    let Ok(recognized) = parse(&sql, dialect) else {
        return;
    };
    let params = recognized.param_count;
    match &recognized.statement {
        Statement::Update(update) => {
            check(&update.before_image_query(dialect, &COLUMNS), params);
            let _ = after_image_query(dialect, &update.table, &COLUMNS, &KEY, 2, PkPredicate::OrChain);
        }
        Statement::Delete(delete) => check(&delete.before_image_query(dialect, &COLUMNS), params),
        Statement::Insert(insert) => {
            for value in insert.rows.iter().flatten() {
                check_value(value, params);
            }
            let unique_keys = [vec!["id"], vec!["v", "w"]];
            if let Ok(query) = insert.conflict_image_query(dialect, &COLUMNS, &COLUMNS, &unique_keys) {
                for value in &query.binds {
                    check_value(value, params);
                }
            }
            let _ = after_image_query(dialect, &insert.table, &COLUMNS, &KEY, 3, PkPredicate::RowIn);
        }
        Statement::SelectForUpdate(select) => {
            for table in 0..select.tables.len() {
                check(&select.lock_query(dialect, table, &KEY), params);
            }
        }
        Statement::UpdateJoin(join) => {
            for target in &join.targets {
                check(&join.before_image_query(dialect, target.table, &COLUMNS), params);
                let _ = join.assignments_of(target.table);
            }
        }
        Statement::MultiDelete(delete) => {
            for &table in &delete.targets {
                check(&delete.before_image_query(dialect, table, &COLUMNS), params);
            }
        }
        Statement::PassThrough(_) | Statement::Unsupported { .. } => {}
    }
});
