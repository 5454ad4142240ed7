//! The AT statements that change rows found through more than the statement's own table or
//! WHERE: upserts (`ON DUPLICATE KEY UPDATE`, `ON CONFLICT`), MySQL `UPDATE … JOIN` and
//! multi-table `DELETE`. Each written table gets its own single-table undo item, so Java's
//! undo executors read them too.

use crate::database::{AtDatabase, TimeZone, arguments};
use crate::error::AtError;
use crate::image::{self, columns_of, key_values};
use crate::query::AtQuery;
use crate::sql::{Insert, InsertValue, MultiDelete, UpdateJoin};
use crate::transaction::AtTransaction;
use crate::undo::{Decimal, Row, SqlType, Value};

impl<DB: AtDatabase> AtTransaction<DB> {
    /// `INSERT … ON DUPLICATE KEY UPDATE` / `ON CONFLICT` / `INSERT IGNORE`: the rows the statement may collide
    /// with (by primary and unique keys) are its before image; after it ran, the same rows and
    /// the new ones are its after image, split into an UPDATE item (rows that existed) and an
    /// INSERT item (rows that are new), as Java does.
    pub(crate) async fn upsert(
        &mut self,
        insert: &Insert,
        query: &AtQuery,
        zone: TimeZone,
    ) -> Result<u64, AtError> {
        let meta = self.table_meta(&insert.table.name.render(DB::SQL)).await?;
        let names: Vec<&str> = meta.columns.iter().map(|c| c.name.as_str()).collect();
        let columns = columns_of(&meta, &names)?;
        let mut unique_keys: Vec<Vec<&str>> =
            vec![meta.primary_key.iter().map(String::as_str).collect()];
        unique_keys.extend(
            meta.unique_keys
                .iter()
                .map(|key| key.iter().map(String::as_str).collect()),
        );
        let conflicts = insert
            .conflict_image_query(DB::SQL, &names, &names, &unique_keys)
            .map_err(AtError::Unsupported)?;
        let values = conflicts
            .binds
            .iter()
            .map(|bind| statement_value(bind, query))
            .collect::<Result<Vec<_>, _>>()?;
        let conn = self.connection()?;
        let before = image::read_rows::<DB>(
            conn,
            &conflicts.sql,
            arguments::<DB>(&values, zone)?,
            &meta,
            &columns,
            zone,
        )
        .await?;
        let changed =
            DB::execute(conn, query.sql(), arguments::<DB>(query.params(), zone)?).await?;
        let mut after = image::rows_by_key::<DB>(
            conn,
            &insert.table,
            &meta,
            &columns,
            &image::keys_of(&meta, &before),
            zone,
        )
        .await?;
        let found = image::read_rows::<DB>(
            conn,
            &conflicts.sql,
            arguments::<DB>(&values, zone)?,
            &meta,
            &columns,
            zone,
        )
        .await?;
        for row in found {
            if !after.iter().any(|a| same_key(&meta, a, &row)) {
                after.push(row);
            }
        }
        let (mut updated_before, mut updated_after, mut inserted) =
            (Vec::new(), Vec::new(), Vec::new());
        for row in after {
            match before.iter().find(|b| same_key(&meta, b, &row)) {
                Some(old) if *old != row => {
                    updated_before.push(old.clone());
                    updated_after.push(row);
                }
                Some(_) => {}
                None => inserted.push(row),
            }
        }
        if !updated_after.is_empty() {
            self.record(
                SqlType::Update,
                &insert.table.name,
                &meta,
                updated_before,
                updated_after,
            )?;
        }
        if !inserted.is_empty() {
            self.record(
                SqlType::Insert,
                &insert.table.name,
                &meta,
                Vec::new(),
                inserted,
            )?;
        }
        Ok(changed)
    }

    /// MySQL `UPDATE t1 JOIN t2 … SET …`: each written table's rows through the join, before
    /// and (by primary key) after; one UPDATE item per table.
    pub(crate) async fn update_join(
        &mut self,
        join: &UpdateJoin,
        query: &AtQuery,
        zone: TimeZone,
    ) -> Result<u64, AtError> {
        let mut images = Vec::new();
        for target in &join.targets {
            let table_ref = &join.tables[target.table];
            let meta = self.table_meta(&table_ref.name.render(DB::SQL)).await?;
            let names = self.update_image_columns(&meta, table_ref, &target.assignments)?;
            let owned: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
            let columns = columns_of(&meta, &names)?;
            let image_query = join.before_image_query(DB::SQL, target.table, &names);
            let before = self
                .read_before(&image_query, query, &meta, &columns, zone)
                .await?;
            images.push((target.table, meta, owned, before));
        }
        let changed = self.run(query, zone).await?;
        for (index, meta, names, before) in images {
            if before.is_empty() {
                continue;
            }
            let table_ref = &join.tables[index];
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let columns = columns_of(&meta, &names)?;
            let after = image::rows_by_key::<DB>(
                self.connection()?,
                table_ref,
                &meta,
                &columns,
                &image::keys_of(&meta, &before),
                zone,
            )
            .await?;
            self.record(SqlType::Update, &table_ref.name, &meta, before, after)?;
        }
        Ok(changed)
    }

    /// MySQL `DELETE t1, t2 FROM …`: each target table's rows through the join, every column;
    /// one DELETE item per table.
    pub(crate) async fn multi_delete(
        &mut self,
        delete: &MultiDelete,
        query: &AtQuery,
        zone: TimeZone,
    ) -> Result<u64, AtError> {
        let mut images = Vec::new();
        for &index in &delete.targets {
            let table_ref = &delete.tables[index];
            let meta = self.table_meta(&table_ref.name.render(DB::SQL)).await?;
            let names: Vec<&str> = meta.columns.iter().map(|c| c.name.as_str()).collect();
            let columns = columns_of(&meta, &names)?;
            let image_query = delete.before_image_query(DB::SQL, index, &names);
            let before = self
                .read_before(&image_query, query, &meta, &columns, zone)
                .await?;
            images.push((index, meta, before));
        }
        let changed = self.run(query, zone).await?;
        for (index, meta, before) in images {
            if before.is_empty() {
                continue;
            }
            self.record(
                SqlType::Delete,
                &delete.tables[index].name,
                &meta,
                before,
                Vec::new(),
            )?;
        }
        Ok(changed)
    }
}

fn same_key(meta: &crate::meta::TableMeta, left: &Row, right: &Row) -> bool {
    let (l, r) = (key_values(meta, left), key_values(meta, right));
    l.len() == r.len()
        && l.iter()
            .zip(&r)
            .all(|(a, b)| crate::database::same_value(&a.value, &b.value, a.jdbc_type))
}

/// The value of a statement's VALUES entry: its bound parameter, or the literal.
fn statement_value(value: &InsertValue, query: &AtQuery) -> Result<Value, AtError> {
    Ok(match value {
        InsertValue::Param(n) => query.params()[n - 1].clone(),
        InsertValue::Number(text) => match text.parse::<i64>() {
            Ok(n) => Value::Long(n),
            Err(_) => Value::Decimal(Decimal::parse(text)?),
        },
        InsertValue::String(text) => Value::String(text.clone()),
        InsertValue::Boolean(b) => Value::Bool(*b),
        InsertValue::Null => Value::Null,
        InsertValue::Default | InsertValue::Expr(_) => {
            return Err(AtError::NotYetSupported(
                "a key value that is an expression or DEFAULT in an upsert",
            ));
        }
    })
}
