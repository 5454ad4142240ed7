//! Fuzz target: an `undo_log` row as another RM (or a damaged database) could leave it, through
//! ferrata-at's reader: the `context` column, then `rollback_info` (decompressed, then parsed as
//! Seata's Jackson layout), with and without MySQL chunk rows. Input: one byte giving the
//! context's length, the context, then the row's bytes. Whatever is accepted must re-encode and
//! read back.
#![no_main]

use ferrata_at::undo::{UndoSettings, decode_rollback_info, encode_rollback_info};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&len, rest)) = data.split_first() else {
        return;
    };
    let (context, stored) = rest.split_at(usize::from(len).min(rest.len()));
    let context = String::from_utf8_lossy(context);
    let settings = UndoSettings {
        // Small, so a decompression bomb is refused quickly; the limit itself is unit-tested.
        max_undo_log_bytes: 1 << 20,
        ..UndoSettings::default()
    };
    let (first, second) = stored.split_at(stored.len() / 2);
    for chunks in [&[][..], &[first, second][..]] {
        if let Ok(log) = decode_rollback_info(&context, stored, chunks, &settings) {
            let encoded = encode_rollback_info(&log, &settings, None)
                .unwrap_or_else(|e| panic!("an accepted log does not re-encode: {e}"));
            let again = decode_rollback_info(
                &encoded.context.to_string(),
                &encoded.rollback_info,
                &[],
                &settings,
            );
            assert!(again.is_ok(), "a re-encoded log does not read back: {again:?}");
        }
    }
});
