//! Recognition of the statements AT handles, on both dialects: tables, columns, values, clauses
//! and the bind parameters each part uses.

use ferrata_at::sql::{
    ConflictTarget, Dialect, Fragment, Ident, InsertValue, OnConflict, PassThroughKind, Recognized,
    RowLock, Statement, TableName, TableRef, parse,
};

fn my(sql: &str) -> Recognized {
    parse(sql, Dialect::MySql).expect("parses")
}

fn pg(sql: &str) -> Recognized {
    parse(sql, Dialect::Postgres).expect("parses")
}

fn text(f: &Option<Fragment>) -> Option<String> {
    f.as_ref().map(ToString::to_string)
}

fn table(parts: &[&str], alias: Option<&str>) -> TableRef {
    TableRef {
        name: TableName {
            parts: parts.iter().map(|p| Ident::new(*p)).collect(),
        },
        alias: alias.map(Ident::new),
    }
}

fn names(idents: &[Ident]) -> Vec<&str> {
    idents.iter().map(|i| i.value.as_str()).collect()
}

#[test]
fn mysql_single_row_insert_with_explicit_key() {
    let r = my("INSERT INTO account (id, name, balance) VALUES (?, ?, 100)");
    assert_eq!(r.param_count, 2);
    let Statement::Insert(i) = r.statement else {
        panic!("{r:?}")
    };
    assert_eq!(i.table, table(&["account"], None));
    assert_eq!(
        names(i.columns.as_deref().unwrap()),
        ["id", "name", "balance"]
    );
    assert_eq!(
        i.rows,
        vec![vec![
            InsertValue::Param(1),
            InsertValue::Param(2),
            InsertValue::Number("100".into())
        ]]
    );
    assert!(!i.ignore);
    assert_eq!(i.on_conflict, None);
    assert_eq!(i.returning, None);
}

#[test]
fn mysql_multi_row_insert_without_key_column() {
    // AUTO_INCREMENT key left out: the executor reads LAST_INSERT_ID.
    let r = my("insert into orders (user_id, amount) values (?, ?), (?, -2.5), (7, NULL)");
    assert_eq!(r.param_count, 3);
    let Statement::Insert(i) = r.statement else {
        panic!("{r:?}")
    };
    assert_eq!(names(i.columns.as_deref().unwrap()), ["user_id", "amount"]);
    assert_eq!(
        i.rows,
        vec![
            vec![InsertValue::Param(1), InsertValue::Param(2)],
            vec![InsertValue::Param(3), InsertValue::Number("-2.5".into())],
            vec![InsertValue::Number("7".into()), InsertValue::Null],
        ]
    );
}

#[test]
fn insert_values_of_every_kind() {
    let r = my("INSERT INTO t VALUES (DEFAULT, 'it''s', TRUE, NOW(), ? + 1)");
    let Statement::Insert(i) = r.statement else {
        panic!("{r:?}")
    };
    assert_eq!(i.columns, None, "no column list means table order");
    assert_eq!(
        i.rows[0][..3],
        [
            InsertValue::Default,
            InsertValue::String("it's".into()),
            InsertValue::Boolean(true)
        ]
    );
    let InsertValue::Expr(now) = &i.rows[0][3] else {
        panic!()
    };
    assert_eq!(now.to_string(), "NOW()");
    let InsertValue::Expr(sum) = &i.rows[0][4] else {
        panic!()
    };
    assert_eq!(sum.to_string(), "$1 + 1");
    assert_eq!(sum.params(), [1]);
}

#[test]
fn mysql_insert_set_form_and_ignore() {
    let r = my("INSERT IGNORE INTO t SET id = ?, a = 'x'");
    let Statement::Insert(i) = r.statement else {
        panic!("{r:?}")
    };
    assert!(i.ignore);
    assert_eq!(names(i.columns.as_deref().unwrap()), ["id", "a"]);
    assert_eq!(
        i.rows,
        vec![vec![InsertValue::Param(1), InsertValue::String("x".into())]]
    );
}

#[test]
fn postgres_insert_serial_key_with_returning() {
    let r = pg("INSERT INTO orders (user_id, amount) VALUES ($1, $2), ($3, $4) RETURNING id");
    assert_eq!(r.param_count, 4);
    let Statement::Insert(i) = r.statement else {
        panic!("{r:?}")
    };
    assert_eq!(i.rows.len(), 2);
    assert_eq!(i.rows[1], [InsertValue::Param(3), InsertValue::Param(4)]);
    assert_eq!(text(&i.returning).as_deref(), Some("id"));
}

#[test]
fn postgres_insert_nextval_and_default_values() {
    let r = pg("INSERT INTO t (id, v) VALUES (nextval('t_id_seq'), $1)");
    let Statement::Insert(i) = r.statement else {
        panic!("{r:?}")
    };
    let InsertValue::Expr(e) = &i.rows[0][0] else {
        panic!()
    };
    assert_eq!(e.to_string(), "nextval('t_id_seq')");

    let r = pg("INSERT INTO t DEFAULT VALUES");
    let Statement::Insert(i) = r.statement else {
        panic!("{r:?}")
    };
    assert_eq!(i.columns, Some(vec![]));
    assert_eq!(i.rows, vec![Vec::<InsertValue>::new()]);
}

#[test]
fn mysql_on_duplicate_key_update() {
    let r = my(
        "INSERT INTO stock (sku, qty) VALUES (?, ?), ('b', 2) ON DUPLICATE KEY UPDATE qty = qty + VALUES(qty), note = ?",
    );
    assert_eq!(r.param_count, 3);
    let Statement::Insert(i) = r.statement else {
        panic!("{r:?}")
    };
    let Some(OnConflict::DuplicateKeyUpdate { assignments }) = &i.on_conflict else {
        panic!("{i:?}")
    };
    let a: Vec<(String, String)> = assignments
        .iter()
        .map(|a| (a.column.name.value.clone(), a.value.to_string()))
        .collect();
    assert_eq!(
        a,
        [
            ("qty".into(), "qty + VALUES(qty)".into()),
            ("note".into(), "$3".into())
        ]
    );
    assert_eq!(assignments[1].value.params(), [3]);
}

#[test]
fn postgres_on_conflict_do_update_and_do_nothing() {
    let r = pg(
        "INSERT INTO public.stock AS s (sku, qty) VALUES ($1, $2) ON CONFLICT (sku) DO UPDATE SET qty = s.qty + EXCLUDED.qty WHERE s.qty < $3 RETURNING s.qty",
    );
    let Statement::Insert(i) = r.statement else {
        panic!("{r:?}")
    };
    assert_eq!(i.table, table(&["public", "stock"], Some("s")));
    let Some(OnConflict::DoUpdate {
        target,
        assignments,
        condition,
    }) = &i.on_conflict
    else {
        panic!("{i:?}")
    };
    assert_eq!(
        target,
        &Some(ConflictTarget::Columns {
            columns: vec![Ident::new("sku")],
            predicate: None
        })
    );
    assert_eq!(assignments[0].column.name, Ident::new("qty"));
    assert_eq!(assignments[0].value.to_string(), "s.qty + EXCLUDED.qty");
    assert_eq!(text(condition).as_deref(), Some("s.qty < $3"));
    assert_eq!(text(&i.returning).as_deref(), Some("s.qty"));

    let r = pg("INSERT INTO t (id) VALUES ($1) ON CONFLICT DO NOTHING");
    let Statement::Insert(i) = r.statement else {
        panic!("{r:?}")
    };
    assert_eq!(i.on_conflict, Some(OnConflict::DoNothing { target: None }));

    let r = pg("INSERT INTO t (id) VALUES ($1) ON CONFLICT ON CONSTRAINT t_pkey DO NOTHING");
    let Statement::Insert(i) = r.statement else {
        panic!("{r:?}")
    };
    assert_eq!(
        i.on_conflict,
        Some(OnConflict::DoNothing {
            target: Some(ConflictTarget::Constraint(TableName {
                parts: vec![Ident::new("t_pkey")]
            }))
        })
    );
}

#[test]
fn mysql_update_with_alias_order_by_limit_and_parameters() {
    let r = my(
        "UPDATE `db`.`Acc` a SET a.money = a.money - ?, note = 'x' WHERE a.id = ? AND a.kind IN (?, 'k') ORDER BY a.id DESC LIMIT ?",
    );
    assert_eq!(r.param_count, 4);
    let Statement::Update(u) = r.statement else {
        panic!("{r:?}")
    };
    assert_eq!(
        u.table.name.parts,
        [Ident::quoted("db"), Ident::quoted("Acc")]
    );
    assert_eq!(u.table.alias, Some(Ident::new("a")));
    assert_eq!(u.assignments[0].column.qualifier, [Ident::new("a")]);
    assert_eq!(u.assignments[0].column.name, Ident::new("money"));
    assert_eq!(u.assignments[0].value.to_string(), "a.money - $1");
    assert_eq!(u.assignments[1].column.qualifier, []);
    assert_eq!(u.assignments[1].value.to_string(), "'x'");
    let w = u.selection.as_ref().unwrap();
    assert_eq!(w.to_string(), "a.id = $2 AND a.kind IN ($3, 'k')");
    assert_eq!(w.params(), [2, 3]);
    assert_eq!(text(&u.order_by).as_deref(), Some("ORDER BY a.id DESC"));
    assert_eq!(text(&u.limit).as_deref(), Some("LIMIT $4"));
}

#[test]
fn update_without_where() {
    let r = pg("UPDATE account SET frozen = true");
    let Statement::Update(u) = r.statement else {
        panic!("{r:?}")
    };
    assert_eq!(u.selection, None);
    assert_eq!(u.order_by, None);
    assert_eq!(u.limit, None);
}

#[test]
fn postgres_update_reuses_and_reorders_parameters() {
    let r = pg(r#"update account set money = $2 where id = $1 and "Name" = $1 returning money"#);
    assert_eq!(r.param_count, 2);
    let Statement::Update(u) = r.statement else {
        panic!("{r:?}")
    };
    assert_eq!(u.assignments[0].value.params(), [2]);
    assert_eq!(
        text(&u.selection).as_deref(),
        Some(r#"id = $1 AND "Name" = $1"#)
    );
    assert_eq!(text(&u.returning).as_deref(), Some("money"));
}

#[test]
fn composite_keys_in_in_lists() {
    let r = my("DELETE FROM order_item WHERE (order_id, line) IN ((?, ?), (?, 3))");
    let Statement::Delete(d) = r.statement else {
        panic!("{r:?}")
    };
    assert_eq!(
        text(&d.selection).as_deref(),
        Some("(order_id, line) IN (($1, $2), ($3, 3))")
    );
    assert_eq!(d.selection.unwrap().params(), [1, 2, 3]);
}

#[test]
fn delete_with_alias_order_by_limit_and_without_where() {
    let r = my("DELETE FROM t WHERE id > ? ORDER BY id LIMIT 10");
    let Statement::Delete(d) = r.statement else {
        panic!("{r:?}")
    };
    assert_eq!(d.table, table(&["t"], None));
    assert_eq!(text(&d.order_by).as_deref(), Some("ORDER BY id"));
    assert_eq!(text(&d.limit).as_deref(), Some("LIMIT 10"));

    let r = pg("DELETE FROM s.t AS x WHERE x.id = $1");
    let Statement::Delete(d) = r.statement else {
        panic!("{r:?}")
    };
    assert_eq!(d.table, table(&["s", "t"], Some("x")));

    let r = pg("DELETE FROM t");
    let Statement::Delete(d) = r.statement else {
        panic!("{r:?}")
    };
    assert_eq!(d.selection, None);
}

#[test]
fn mysql_update_join_assigns_columns_to_tables() {
    let r = my(
        "UPDATE t1 a JOIN t2 b ON a.id = b.aid AND b.k = ? SET a.x = ?, b.y = 2, a.z = a.z + 1 WHERE a.id = ?",
    );
    assert_eq!(r.param_count, 3);
    let Statement::UpdateJoin(u) = r.statement else {
        panic!("{r:?}")
    };
    assert_eq!(
        u.tables,
        [table(&["t1"], Some("a")), table(&["t2"], Some("b"))]
    );
    assert_eq!(
        u.from.to_string(),
        "t1 a JOIN t2 b ON a.id = b.aid AND b.k = $1"
    );
    let per_table: Vec<(usize, Vec<String>)> = u
        .targets
        .iter()
        .map(|t| {
            (
                t.table,
                t.assignments
                    .iter()
                    .map(|a| a.column.name.value.clone())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        per_table,
        [(0, vec!["x".into(), "z".into()]), (1, vec!["y".into()])]
    );
    assert_eq!(u.assignments_of(0)[0].value.params(), [2]);
    assert_eq!(text(&u.selection).as_deref(), Some("a.id = $3"));
}

#[test]
fn mysql_update_join_by_table_name() {
    let r = my(
        "UPDATE orders INNER JOIN users ON orders.uid = users.id SET orders.status = 'x' WHERE users.id = ?",
    );
    let Statement::UpdateJoin(u) = r.statement else {
        panic!("{r:?}")
    };
    assert_eq!(u.targets.len(), 1);
    assert_eq!(u.targets[0].table, 0);
}

#[test]
fn mysql_multi_table_delete() {
    let r = my("DELETE t1, t2 FROM t1 JOIN t2 ON t1.id = t2.t1_id WHERE t1.id = ?");
    let Statement::MultiDelete(d) = r.statement else {
        panic!("{r:?}")
    };
    assert_eq!(d.tables, [table(&["t1"], None), table(&["t2"], None)]);
    assert_eq!(d.targets, [0, 1]);
    assert_eq!(d.from.to_string(), "t1 JOIN t2 ON t1.id = t2.t1_id");
    assert_eq!(text(&d.selection).as_deref(), Some("t1.id = $1"));

    // Aliases as targets, and the USING form.
    let r = my("DELETE b FROM orders a LEFT JOIN items b ON a.id = b.oid WHERE a.id = ?");
    let Statement::MultiDelete(d) = r.statement else {
        panic!("{r:?}")
    };
    assert_eq!(d.targets, [1]);
    let r = my(
        "DELETE FROM items USING orders JOIN items ON orders.id = items.oid WHERE orders.id = ?",
    );
    let Statement::MultiDelete(d) = r.statement else {
        panic!("{r:?}")
    };
    assert_eq!(d.targets, [1]);
}

#[test]
fn select_for_update_and_share() {
    let r = my("SELECT id, balance FROM account WHERE id = ? FOR UPDATE");
    let Statement::SelectForUpdate(s) = r.statement else {
        panic!("{r:?}")
    };
    assert_eq!(s.tables, [table(&["account"], None)]);
    assert_eq!(s.lock, RowLock::Update);
    assert_eq!(text(&s.selection).as_deref(), Some("id = $1"));

    let r = my("SELECT * FROM t WHERE id = ? LOCK IN SHARE MODE;");
    let Statement::SelectForUpdate(s) = r.statement else {
        panic!("{r:?}")
    };
    assert_eq!(s.lock, RowLock::Share);
    assert_eq!(text(&s.selection).as_deref(), Some("id = $1"));

    let r = pg("SELECT id FROM t WHERE id = $1 ORDER BY id LIMIT 5 FOR SHARE");
    let Statement::SelectForUpdate(s) = r.statement else {
        panic!("{r:?}")
    };
    assert_eq!(s.lock, RowLock::Share);
    assert_eq!(text(&s.order_by).as_deref(), Some("ORDER BY id"));
    assert_eq!(text(&s.limit).as_deref(), Some("LIMIT 5"));

    let r = my("SELECT * FROM t WHERE a = ? LIMIT ?, ? FOR UPDATE");
    let Statement::SelectForUpdate(s) = r.statement else {
        panic!("{r:?}")
    };
    assert_eq!(text(&s.limit).as_deref(), Some("LIMIT $2, $3"));
}

#[test]
fn select_for_update_over_a_join() {
    let r = pg(
        "SELECT a.id FROM account a JOIN owner o ON o.id = a.owner WHERE o.name = $1 FOR UPDATE OF a",
    );
    let Statement::SelectForUpdate(s) = r.statement else {
        panic!("{r:?}")
    };
    assert_eq!(
        s.tables,
        [table(&["account"], Some("a")), table(&["owner"], Some("o"))]
    );
    assert_eq!(
        s.from.to_string(),
        "account a JOIN owner o ON o.id = a.owner"
    );
}

#[test]
fn comments_and_hints_are_ignored() {
    let r = my(
        "/* app=pay */ SELECT /*+ MAX_EXECUTION_TIME(100) */ id FROM t -- trailing\n WHERE id = ? /* x */ FOR UPDATE",
    );
    let Statement::SelectForUpdate(s) = r.statement else {
        panic!("{r:?}")
    };
    assert_eq!(text(&s.selection).as_deref(), Some("id = $1"));

    let r = my("UPDATE /* hint */ t SET a = ? -- why\nWHERE id = ?");
    let Statement::Update(u) = r.statement else {
        panic!("{r:?}")
    };
    assert_eq!(u.assignments[0].value.params(), [1]);
    assert_eq!(text(&u.selection).as_deref(), Some("id = $2"));
}

#[test]
fn question_marks_inside_strings_and_comments_are_not_parameters() {
    let r = my("UPDATE t SET a = '?' /* ? */ WHERE b = ? AND c = 'why?'");
    assert_eq!(r.param_count, 1);
    let Statement::Update(u) = r.statement else {
        panic!("{r:?}")
    };
    assert_eq!(text(&u.selection).as_deref(), Some("b = $1 AND c = 'why?'"));
}

#[test]
fn quoted_and_schema_qualified_names() {
    let r = pg(r#"UPDATE "Sales"."Order" SET "Total" = $1 WHERE "Id" = $2"#);
    let Statement::Update(u) = r.statement else {
        panic!("{r:?}")
    };
    assert_eq!(u.table.name.render(Dialect::Postgres), r#""Sales"."Order""#);
    assert_eq!(u.table.name.schema(), Some(&Ident::quoted("Sales")));
    assert_eq!(u.table.name.table().normalized(Dialect::Postgres), "Order");
    assert_eq!(u.table.name.unquoted(), "Sales.Order");
    assert!(
        u.assignments[0]
            .column
            .name
            .matches("Total", Dialect::Postgres)
    );
    assert!(
        !u.assignments[0]
            .column
            .name
            .matches("total", Dialect::Postgres)
    );

    let r = pg("UPDATE Sales.Orders SET Total = 1");
    let Statement::Update(u) = r.statement else {
        panic!("{r:?}")
    };
    assert_eq!(u.table.name.table().normalized(Dialect::Postgres), "orders");
    assert!(
        u.assignments[0]
            .column
            .name
            .matches("total", Dialect::Postgres)
    );

    let r = my("UPDATE `my db`.`order` SET `Total` = 1");
    let Statement::Update(u) = r.statement else {
        panic!("{r:?}")
    };
    assert_eq!(u.table.name.render(Dialect::MySql), "`my db`.`order`");
    assert!(
        u.assignments[0]
            .column
            .name
            .matches("total", Dialect::MySql)
    );
}

#[test]
fn pass_through_statements() {
    for (sql, kind) in [
        ("SELECT * FROM t WHERE id = ?", PassThroughKind::Select),
        ("SELECT 1", PassThroughKind::Select),
        ("SHOW TABLES", PassThroughKind::Show),
        ("EXPLAIN SELECT * FROM t", PassThroughKind::Show),
        ("SET NAMES utf8mb4", PassThroughKind::Session),
        ("USE db", PassThroughKind::Session),
    ] {
        assert_eq!(my(sql).statement, Statement::PassThrough(kind), "{sql}");
    }
    assert_eq!(
        pg("SELECT * FROM t WHERE id = $1").statement,
        Statement::PassThrough(PassThroughKind::Select)
    );
}

#[test]
fn syntax_errors_are_errors() {
    assert!(parse("UPDATE SET WHERE", Dialect::MySql).is_err());
    assert!(parse("   -- nothing\n", Dialect::MySql).is_err());
    assert!(parse("SELECT '\u{1}'", Dialect::MySql).is_err());
}
