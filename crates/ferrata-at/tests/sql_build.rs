//! Generated image and lock-check queries: exact SQL text and the mapping of their placeholders
//! to the original statement's bind parameters.

use ferrata_at::sql::{
    Dialect, ImageQuery, InsertValue, PkPredicate, Recognized, Statement, UnsupportedReason,
    after_image_query, check_primary_key_untouched, parse, tracked_columns,
};

fn stmt(sql: &str, d: Dialect) -> Statement {
    let r: Recognized = parse(sql, d).expect("parses");
    r.statement
}

fn q(sql: &str, params: &[usize]) -> ImageQuery {
    ImageQuery {
        sql: sql.to_owned(),
        params: params.to_vec(),
    }
}

#[test]
fn mysql_update_before_image_keeps_alias_order_and_limit() {
    let Statement::Update(u) = stmt(
        "UPDATE `Acc` a SET a.money = a.money - ? WHERE a.id = ? AND a.kind IN (?, 'k') ORDER BY a.id DESC LIMIT ?",
        Dialect::MySql,
    ) else {
        panic!()
    };
    assert_eq!(
        u.before_image_query(Dialect::MySql, &["id", "money"]),
        q(
            "SELECT a.`id`, a.`money` FROM `Acc` a WHERE a.id = ? AND a.kind IN (?, 'k') ORDER BY a.id DESC LIMIT ? FOR UPDATE",
            &[2, 3, 4]
        )
    );
}

#[test]
fn postgres_update_before_image_renumbers_parameters_densely() {
    // SET uses $1, WHERE uses $3 and $2: the image query needs only those two, as $1 and $2.
    let Statement::Update(u) = stmt(
        r#"UPDATE "Sales".account AS x SET money = $1 WHERE x.id = $3 AND x.owner = $2 AND x.id <> $3"#,
        Dialect::Postgres,
    ) else {
        panic!()
    };
    assert_eq!(
        u.before_image_query(Dialect::Postgres, &["id", "money"]),
        q(
            r#"SELECT x."id", x."money" FROM "Sales".account x WHERE x.id = $1 AND x.owner = $2 AND x.id <> $1 FOR UPDATE"#,
            &[3, 2]
        )
    );
}

#[test]
fn update_without_where_images_every_row() {
    let Statement::Update(u) = stmt("UPDATE t SET a = ?", Dialect::MySql) else {
        panic!()
    };
    assert_eq!(
        u.before_image_query(Dialect::MySql, &["id", "a"]),
        q("SELECT t.`id`, t.`a` FROM t FOR UPDATE", &[])
    );
}

#[test]
fn delete_before_image() {
    let Statement::Delete(d) = stmt(
        "DELETE FROM shop.item WHERE (order_id, line) IN ((?, ?), (?, 3)) ORDER BY line LIMIT 2",
        Dialect::MySql,
    ) else {
        panic!()
    };
    assert_eq!(
        d.before_image_query(Dialect::MySql, &["order_id", "line", "sku"]),
        q(
            "SELECT shop.item.`order_id`, shop.item.`line`, shop.item.`sku` FROM shop.item WHERE (order_id, line) IN ((?, ?), (?, 3)) ORDER BY line LIMIT 2 FOR UPDATE",
            &[1, 2, 3]
        )
    );
    let Statement::Delete(d) = stmt("DELETE FROM t WHERE id = $1", Dialect::Postgres) else {
        panic!()
    };
    assert_eq!(
        d.before_image_query(Dialect::Postgres, &["id", "v"]),
        q(
            r#"SELECT t."id", t."v" FROM t WHERE id = $1 FOR UPDATE"#,
            &[1]
        )
    );
}

#[test]
fn select_for_update_lock_query() {
    let Statement::SelectForUpdate(s) = stmt(
        "SELECT a.balance FROM account a JOIN owner o ON o.id = a.owner AND o.kind = ? WHERE o.name = ? LIMIT 10 FOR UPDATE",
        Dialect::MySql,
    ) else {
        panic!()
    };
    assert_eq!(
        s.lock_query(Dialect::MySql, 0, &["id"]),
        q(
            "SELECT a.`id` FROM account a JOIN owner o ON o.id = a.owner AND o.kind = ? WHERE o.name = ? LIMIT 10 FOR UPDATE",
            &[1, 2]
        )
    );
    let Statement::SelectForUpdate(s) = stmt(
        "SELECT * FROM t WHERE v = $2 AND k = $1 FOR SHARE",
        Dialect::Postgres,
    ) else {
        panic!()
    };
    assert_eq!(
        s.lock_query(Dialect::Postgres, 0, &["k1", "k2"]),
        q(
            r#"SELECT t."k1", t."k2" FROM t WHERE v = $1 AND k = $2 FOR UPDATE"#,
            &[2, 1]
        )
    );
}

#[test]
fn update_join_before_image_per_table() {
    let Statement::UpdateJoin(u) = stmt(
        "UPDATE t1 a JOIN t2 b ON a.id = b.aid AND b.k = ? SET a.x = ?, b.y = 2 WHERE a.id = ?",
        Dialect::MySql,
    ) else {
        panic!()
    };
    assert_eq!(
        u.before_image_query(Dialect::MySql, 0, &["id", "x"]),
        q(
            "SELECT a.`id`, a.`x` FROM t1 a JOIN t2 b ON a.id = b.aid AND b.k = ? WHERE a.id = ? GROUP BY a.`id`, a.`x` FOR UPDATE",
            &[1, 3]
        )
    );
    assert_eq!(
        u.before_image_query(Dialect::MySql, 1, &["id", "y"]).sql,
        "SELECT b.`id`, b.`y` FROM t1 a JOIN t2 b ON a.id = b.aid AND b.k = ? WHERE a.id = ? GROUP BY b.`id`, b.`y` FOR UPDATE"
    );
}

#[test]
fn multi_delete_before_image_per_table() {
    let Statement::MultiDelete(d) = stmt(
        "DELETE t1, t2 FROM t1 JOIN t2 ON t1.id = t2.t1_id WHERE t1.id = ?",
        Dialect::MySql,
    ) else {
        panic!()
    };
    assert_eq!(
        d.before_image_query(Dialect::MySql, 1, &["id", "t1_id"]),
        q(
            "SELECT t2.`id`, t2.`t1_id` FROM t1 JOIN t2 ON t1.id = t2.t1_id WHERE t1.id = ? GROUP BY t2.`id`, t2.`t1_id` FOR UPDATE",
            &[1]
        )
    );
}

#[test]
fn after_image_by_single_key() {
    let Statement::Update(u) = stmt("UPDATE `Acc` a SET money = 1", Dialect::MySql) else {
        panic!()
    };
    assert_eq!(
        after_image_query(
            Dialect::MySql,
            &u.table,
            &["id", "money"],
            &["id"],
            3,
            PkPredicate::RowIn
        ),
        "SELECT `id`, `money` FROM `Acc` WHERE `id` IN (?, ?, ?)"
    );
    let Statement::Update(u) = stmt("UPDATE s.acc SET money = 1", Dialect::Postgres) else {
        panic!()
    };
    assert_eq!(
        after_image_query(
            Dialect::Postgres,
            &u.table,
            &["id", "money"],
            &["id"],
            2,
            PkPredicate::RowIn
        ),
        r#"SELECT "id", "money" FROM s.acc WHERE "id" IN ($1, $2)"#
    );
}

#[test]
fn after_image_by_composite_key() {
    let Statement::Delete(d) = stmt("DELETE FROM item WHERE 1 = 1", Dialect::Postgres) else {
        panic!()
    };
    assert_eq!(
        PkPredicate::for_dialect(Dialect::Postgres, 2),
        PkPredicate::RowIn
    );
    assert_eq!(
        after_image_query(
            Dialect::Postgres,
            &d.table,
            &["o", "l", "v"],
            &["o", "l"],
            2,
            PkPredicate::RowIn
        ),
        r#"SELECT "o", "l", "v" FROM item WHERE ("o", "l") IN (($1, $2), ($3, $4))"#
    );
    assert_eq!(
        PkPredicate::for_dialect(Dialect::MySql, 2),
        PkPredicate::OrChain
    );
    assert_eq!(
        PkPredicate::for_dialect(Dialect::MySql, 1),
        PkPredicate::RowIn
    );
    assert_eq!(
        after_image_query(
            Dialect::MySql,
            &d.table,
            &["o", "l", "v"],
            &["o", "l"],
            2,
            PkPredicate::OrChain
        ),
        "SELECT `o`, `l`, `v` FROM item WHERE (`o` = ? AND `l` = ?) OR (`o` = ? AND `l` = ?)"
    );
}

#[test]
fn identifiers_from_metadata_are_escaped() {
    let Statement::Update(u) = stmt("UPDATE t SET a = 1", Dialect::MySql) else {
        panic!()
    };
    assert_eq!(
        after_image_query(
            Dialect::MySql,
            &u.table,
            &["we`ird"],
            &["id"],
            1,
            PkPredicate::RowIn
        ),
        "SELECT `we``ird` FROM t WHERE `id` IN (?)"
    );
    assert_eq!(
        after_image_query(
            Dialect::Postgres,
            &u.table,
            &["we\"ird"],
            &["id"],
            1,
            PkPredicate::RowIn
        ),
        r#"SELECT "we""ird" FROM t WHERE "id" IN ($1)"#
    );
}

#[test]
fn tracked_columns_follow_java_only_care_update_columns() {
    let Statement::Update(u) = stmt(
        "UPDATE t SET Money = ?, note = ? WHERE id = ?",
        Dialect::MySql,
    ) else {
        panic!()
    };
    let cols = tracked_columns(
        Dialect::MySql,
        &["id", "owner", "money", "note", "updated_at"],
        &["id"],
        &["updated_at"],
        &u.assignments,
    );
    assert_eq!(cols, ["id", "money", "note", "updated_at"]);
}

#[test]
fn primary_key_updates_are_refused() {
    let Statement::Update(u) = stmt("UPDATE acc SET ID = ?, v = 1", Dialect::MySql) else {
        panic!()
    };
    let err =
        check_primary_key_untouched(Dialect::MySql, &u.table, &["id"], &u.assignments).unwrap_err();
    assert_eq!(
        err.to_string(),
        "AT mode does not support updating primary-key column id of table acc: rows are tracked by their primary key"
    );
    let Statement::Update(u) = stmt("UPDATE acc SET v = 1", Dialect::MySql) else {
        panic!()
    };
    assert_eq!(
        check_primary_key_untouched(Dialect::MySql, &u.table, &["id"], &u.assignments),
        Ok(())
    );
    // PostgreSQL: a quoted "ID" is another column than the folded id.
    let Statement::Update(u) = stmt(r#"UPDATE acc SET "ID" = 1"#, Dialect::Postgres) else {
        panic!()
    };
    assert_eq!(
        check_primary_key_untouched(Dialect::Postgres, &u.table, &["id"], &u.assignments),
        Ok(())
    );
}

#[test]
fn mysql_upsert_conflict_image_by_every_supplied_key() {
    let Statement::Insert(i) = stmt(
        "INSERT INTO stock (id, sku, qty) VALUES (?, ?, 1), (DEFAULT, 'b', ?) ON DUPLICATE KEY UPDATE qty = qty + 1",
        Dialect::MySql,
    ) else {
        panic!()
    };
    let q = i
        .conflict_image_query(
            Dialect::MySql,
            &["id", "sku", "qty"],
            &[],
            &[vec!["id"], vec!["sku"]],
        )
        .unwrap();
    // Row 2 has no id value (DEFAULT), so it is looked up by sku only.
    assert_eq!(
        q.sql,
        "SELECT `id`, `sku`, `qty` FROM stock WHERE (`id` = ?) OR (`sku` = ?) OR (`sku` = ?) FOR UPDATE"
    );
    assert_eq!(
        q.binds,
        [
            InsertValue::Param(1),
            InsertValue::Param(2),
            InsertValue::String("b".into())
        ]
    );
}

#[test]
fn postgres_upsert_conflict_image_composite_key_without_column_list() {
    let Statement::Insert(i) = stmt(
        "INSERT INTO item VALUES ($2, $1, 'x') ON CONFLICT (o, l) DO UPDATE SET v = EXCLUDED.v",
        Dialect::Postgres,
    ) else {
        panic!()
    };
    let q = i
        .conflict_image_query(
            Dialect::Postgres,
            &["o", "l", "v"],
            &["o", "l", "v"],
            &[vec!["o", "l"]],
        )
        .unwrap();
    assert_eq!(
        q.sql,
        r#"SELECT "o", "l", "v" FROM item WHERE ("o" = $1 AND "l" = $2) FOR UPDATE"#
    );
    assert_eq!(q.binds, [InsertValue::Param(2), InsertValue::Param(1)]);
}

#[test]
fn upsert_without_key_values_is_refused() {
    let Statement::Insert(i) = stmt(
        "INSERT INTO t (v) VALUES (?) ON DUPLICATE KEY UPDATE v = ?",
        Dialect::MySql,
    ) else {
        panic!()
    };
    let err = i
        .conflict_image_query(Dialect::MySql, &["id", "v"], &[], &[vec!["id"]])
        .unwrap_err();
    assert_eq!(
        err,
        UnsupportedReason::NoUniqueKeyValue("INSERT ... ON DUPLICATE KEY UPDATE")
    );
    assert_eq!(
        err.to_string(),
        "AT mode cannot image this INSERT ... ON DUPLICATE KEY UPDATE: no row supplies a complete primary-key or unique-key value; use a plain INSERT or UPDATE"
    );
}
