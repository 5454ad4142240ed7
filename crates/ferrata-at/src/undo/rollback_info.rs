//! From a branch undo log to the `(context, rollback_info)` a row stores and back: Java's
//! compression threshold rule, the global-finished marker, MySQL chunk rows.

use super::compress::{CompressorType, compress, decompress};
use super::context::{BRANCH_ID_KEY, MAX_ALLOWED_PACKET_KEY, SUB_ID_KEY, UndoContext};
use super::error::UndoError;
use super::jackson;
use super::model::BranchUndoLog;

/// `client.undo.compress.threshold` default (`64k`); Java compresses strictly above it.
pub const DEFAULT_COMPRESS_THRESHOLD_BYTES: usize = 64 * 1024;
/// MySQL `max_allowed_packet` Java assumes when the context does not say (MySQL 5.6's).
pub const DEFAULT_MAX_ALLOWED_PACKET_BYTES: u64 = 1024 * 1024;
/// Largest decompressed (and reassembled) undo log accepted when reading.
pub const DEFAULT_MAX_UNDO_LOG_BYTES: usize = 256 * 1024 * 1024;

/// Writer and reader settings, Java's defaults by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndoSettings {
    /// `client.undo.compress.enable`.
    pub compress_enabled: bool,
    /// `client.undo.compress.type`.
    pub compress_type: CompressorType,
    /// `client.undo.compress.threshold`.
    pub compress_threshold_bytes: usize,
    /// Cap on the decompressed log when reading (hostile or corrupt rows).
    pub max_undo_log_bytes: usize,
    /// The Seata whose class names the written logs carry (2.x by default; 1.x Java RMs
    /// sharing the database need `IoSeata`). Both are read.
    pub java_package: jackson::JavaPackage,
}

impl Default for UndoSettings {
    fn default() -> Self {
        UndoSettings {
            compress_enabled: true,
            compress_type: CompressorType::Zip,
            compress_threshold_bytes: DEFAULT_COMPRESS_THRESHOLD_BYTES,
            max_undo_log_bytes: DEFAULT_MAX_UNDO_LOG_BYTES,
            java_package: jackson::JavaPackage::ApacheSeata,
        }
    }
}

/// What one undo_log row stores for a branch (before any MySQL chunking).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedUndoLog {
    pub context: UndoContext,
    pub rollback_info: Vec<u8>,
}

/// Encodes `log` with the jackson serializer and compresses it with the configured type when
/// it is larger than the threshold, as Java's `flushUndoLogs`. `max_allowed_packet` is
/// MySQL's setting as text (recorded as `map`; Java writes `Some("")` elsewhere).
pub fn encode_rollback_info(
    log: &BranchUndoLog,
    settings: &UndoSettings,
    max_allowed_packet: Option<&str>,
) -> Result<EncodedUndoLog, UndoError> {
    let plain = jackson::encode_for(log, settings.java_package);
    let (compressor, rollback_info) =
        if settings.compress_enabled && plain.len() > settings.compress_threshold_bytes {
            (
                settings.compress_type,
                compress(settings.compress_type, &plain)?,
            )
        } else {
            (CompressorType::None, plain)
        };
    Ok(EncodedUndoLog {
        context: UndoContext::for_log(jackson::SERIALIZER_NAME, compressor, max_allowed_packet),
        rollback_info,
    })
}

/// The global-finished marker row's context and content (log_status 1), as Java's
/// `insertUndoLogWithGlobalFinished` writes it.
pub fn global_finished() -> EncodedUndoLog {
    EncodedUndoLog {
        context: UndoContext::for_log(jackson::SERIALIZER_NAME, CompressorType::None, None),
        rollback_info: jackson::GLOBAL_FINISHED_CONTENT.to_vec(),
    }
}

/// Decodes a row: `chunks` are the contents of the chunk rows named by the context's `subId`,
/// in `subId` order (empty when there is none); they are appended to `rollback_info`, the
/// whole is decompressed, then decoded with the named serializer.
pub fn decode_rollback_info(
    context: &str,
    rollback_info: &[u8],
    chunks: &[&[u8]],
    settings: &UndoSettings,
) -> Result<BranchUndoLog, UndoError> {
    let ctx = UndoContext::parse(context);
    if ctx.serializer() != jackson::SERIALIZER_NAME {
        return Err(UndoError::UnsupportedSerializer(
            ctx.serializer().chars().take(64).collect(),
        ));
    }
    let expected = ctx.sub_ids()?.len();
    if chunks.len() != expected {
        return Err(UndoError::ChunkCount {
            expected,
            found: chunks.len(),
        });
    }
    let limit = settings.max_undo_log_bytes;
    let total = chunks
        .iter()
        .fold(rollback_info.len(), |n, c| n.saturating_add(c.len()));
    if total > limit {
        return Err(UndoError::TooLarge { limit_bytes: limit });
    }
    let joined;
    let stored: &[u8] = if chunks.is_empty() {
        rollback_info
    } else {
        let mut all = Vec::with_capacity(total);
        all.extend_from_slice(rollback_info);
        for chunk in chunks {
            all.extend_from_slice(chunk);
        }
        joined = all;
        &joined
    };
    let compressor = ctx.compressor()?;
    if compressor == CompressorType::None {
        return jackson::decode_with_limit(stored, limit);
    }
    let plain = decompress(compressor, stored, limit)?;
    jackson::decode_with_limit(&plain, limit)
}

/// The rows a MySQL writer stores for one encoded log, as Java's `MySQLUndoLogManager`:
/// content above 80 % of `max_allowed_packet` is cut into pieces of that size; the first
/// stays in the main row, each other one goes into a chunk row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlChunks {
    /// The main row's context (with `subId=<id>,<id>,...,` when there are chunk rows).
    pub main_context: UndoContext,
    pub main_content: Vec<u8>,
    /// Chunk rows: `(branch_id column = fresh id, content)`, in order.
    pub chunks: Vec<(i64, Vec<u8>)>,
    /// The context of every chunk row: `branchId=<real branch id>`.
    pub chunk_context: UndoContext,
}

/// Splits `encoded` for MySQL; `next_id` yields a fresh id per chunk row (Java uses its UUID
/// generator). The packet size comes from the context's `map`, 1 MiB when absent or blank.
pub fn split_mysql_chunks(
    encoded: &EncodedUndoLog,
    branch_id: i64,
    mut next_id: impl FnMut() -> i64,
) -> Result<MysqlChunks, UndoError> {
    let packet = match encoded.context.get(MAX_ALLOWED_PACKET_KEY).map(str::trim) {
        None | Some("") => DEFAULT_MAX_ALLOWED_PACKET_BYTES,
        Some(text) => text
            .parse()
            .map_err(|_| UndoError::InvalidNumber(text.chars().take(64).collect()))?,
    };
    // Java: (int) (maxAllowedPacket * 0.8), i.e. truncated; at least one byte per piece.
    let limit = ((packet as f64 * 0.8) as usize).max(1);
    let mut chunk_context = UndoContext::default();
    chunk_context.set(BRANCH_ID_KEY, &branch_id.to_string());
    let content = &encoded.rollback_info;
    if content.len() <= limit {
        return Ok(MysqlChunks {
            main_context: encoded.context.clone(),
            main_content: content.clone(),
            chunks: Vec::new(),
            chunk_context,
        });
    }
    let mut pieces = content.chunks(limit);
    let first = pieces.next().unwrap_or_default().to_vec();
    let mut chunks = Vec::new();
    let mut sub_ids = String::new();
    for piece in pieces {
        let id = next_id();
        sub_ids.push_str(&format!("{id},"));
        chunks.push((id, piece.to_vec()));
    }
    let mut main_context = encoded.context.clone();
    // Java re-encodes the context through decodeMap, which drops an empty `map=`.
    if main_context.get(MAX_ALLOWED_PACKET_KEY) == Some("") {
        main_context.remove(MAX_ALLOWED_PACKET_KEY);
    }
    main_context.set(SUB_ID_KEY, &sub_ids);
    Ok(MysqlChunks {
        main_context,
        main_content: first,
        chunks,
        chunk_context,
    })
}
