//! Encoding and decoding of the embedded log's bytes: segment header, checksummed frames and
//! records. The layout is specified once, in docs/RELIABILITY.md, "Embedded store format";
//! the names here follow it.

use ferrata_core::{BranchId, BranchSession, GlobalSession, Record, TransactionId};
use ferrata_proto::{BranchStatus, BranchType, GlobalStatus};

use crate::StoreError;

pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"FERRWAL\0";
/// Written into every new segment. Version 2 added the seal frame; version-1 segments (which
/// never have one) are still read.
pub(crate) const FORMAT_VERSION: u16 = 2;
pub(crate) const OLDEST_READABLE_VERSION: u16 = 1;
/// Header flag: the segment starts with a checkpoint (a snapshot of the whole live state).
pub(crate) const FLAG_CHECKPOINT: u16 = 1;
/// Bytes in a segment header.
pub(crate) const SEGMENT_HEADER_LEN: usize = 24;

/// Bytes before a frame's payload (length and checksum).
pub(crate) const FRAME_HEADER_LEN: usize = 8;
/// One `append` is one batch frame, which is what makes a batch atomic: a torn write fails the
/// checksum of the whole batch.
pub(crate) const KIND_BATCH: u8 = 1;
/// Marks the checkpoint complete.
pub(crate) const KIND_CHECKPOINT_END: u8 = 2;
/// The last frame of a segment that appends moved on from, naming the next, so recovery can
/// tell a complete segment from one that lost its tail, and notice a missing segment.
pub(crate) const KIND_SEAL: u8 = 3;

pub(crate) const OP_GLOBAL_ADD: u8 = 1;
pub(crate) const OP_GLOBAL_UPDATE: u8 = 2;
pub(crate) const OP_GLOBAL_REMOVE: u8 = 3;
pub(crate) const OP_BRANCH_ADD: u8 = 4;
pub(crate) const OP_BRANCH_UPDATE: u8 = 5;
pub(crate) const OP_BRANCH_REMOVE: u8 = 6;
/// Ferrata's own: the id high-water mark (not a Seata opcode).
pub(crate) const OP_ID_RESERVE: u8 = 100;

/// A decoded segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub version: u16,
    pub flags: u16,
    pub sequence: u64,
}

impl SegmentHeader {
    pub(crate) fn is_checkpoint(&self) -> bool {
        self.flags & FLAG_CHECKPOINT != 0
    }
}

pub(crate) fn encode_header(sequence: u64, flags: u16) -> [u8; SEGMENT_HEADER_LEN] {
    let mut out = [0u8; SEGMENT_HEADER_LEN];
    out[0..8].copy_from_slice(&SEGMENT_MAGIC);
    out[8..10].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
    out[10..12].copy_from_slice(&flags.to_be_bytes());
    out[12..20].copy_from_slice(&sequence.to_be_bytes());
    let crc = crc32fast::hash(&out[0..20]);
    out[20..24].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Why a header was rejected; the version case is separate because it needs another message.
#[derive(Debug)]
pub(crate) enum HeaderError {
    Invalid(String),
    Version(u16),
}

pub(crate) fn decode_header(
    bytes: &[u8; SEGMENT_HEADER_LEN],
) -> Result<SegmentHeader, HeaderError> {
    if bytes[0..8] != SEGMENT_MAGIC {
        return Err(HeaderError::Invalid(
            "not a Ferrata log segment (bad magic)".into(),
        ));
    }
    let stored = u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    if crc32fast::hash(&bytes[0..20]) != stored {
        return Err(HeaderError::Invalid(
            "segment header checksum mismatch".into(),
        ));
    }
    let version = u16::from_be_bytes([bytes[8], bytes[9]]);
    if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(HeaderError::Version(version));
    }
    let flags = u16::from_be_bytes([bytes[10], bytes[11]]);
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&bytes[12..20]);
    Ok(SegmentHeader {
        version,
        flags,
        sequence: u64::from_be_bytes(seq),
    })
}

/// Checksum of a frame: covers the length field too, so a damaged length is caught.
pub(crate) fn frame_crc(len_bytes: [u8; 4], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len_bytes);
    hasher.update(payload);
    hasher.finalize()
}

/// Builds one batch frame in place at the end of a buffer, so a whole `append` (or a
/// checkpoint chunk) is encoded without intermediate allocations and written with one call.
#[derive(Debug)]
pub(crate) struct BatchFrame {
    start: usize,
    count: u32,
}

impl BatchFrame {
    pub(crate) fn begin(buf: &mut Vec<u8>) -> BatchFrame {
        let start = buf.len();
        // Frame header and record count are patched in `finish`.
        buf.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
        buf.push(KIND_BATCH);
        buf.extend_from_slice(&[0u8; 4]);
        BatchFrame { start, count: 0 }
    }

    pub(crate) fn count(&self) -> u32 {
        self.count
    }

    pub(crate) fn push(&mut self, buf: &mut Vec<u8>, record: &Record) -> Result<(), StoreError> {
        self.count = self
            .count
            .checked_add(1)
            .ok_or_else(|| StoreError::Encode("more than 2^32 records in one batch".into()))?;
        encode_record(buf, record)
    }

    /// Removes the frame again (used when it would hold no records).
    pub(crate) fn abandon(self, buf: &mut Vec<u8>) {
        buf.truncate(self.start);
    }

    /// Fills in the count, length and checksum.
    pub(crate) fn finish(self, buf: &mut [u8]) -> Result<(), StoreError> {
        let count_at = self.start + FRAME_HEADER_LEN + 1;
        buf[count_at..count_at + 4].copy_from_slice(&self.count.to_be_bytes());
        finish_frame(buf, self.start)
    }
}

/// Appends a checkpoint-end frame recording how many records the checkpoint holds.
pub(crate) fn push_checkpoint_end(buf: &mut Vec<u8>, records: u64) -> Result<(), StoreError> {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
    buf.push(KIND_CHECKPOINT_END);
    buf.extend_from_slice(&records.to_be_bytes());
    finish_frame(buf, start)
}

/// Appends a seal frame naming the segment that follows.
pub(crate) fn push_seal(buf: &mut Vec<u8>, next_segment: u64) -> Result<(), StoreError> {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; FRAME_HEADER_LEN]);
    buf.push(KIND_SEAL);
    buf.extend_from_slice(&next_segment.to_be_bytes());
    finish_frame(buf, start)
}

fn finish_frame(buf: &mut [u8], start: usize) -> Result<(), StoreError> {
    let payload_len = buf.len() - start - FRAME_HEADER_LEN;
    let len = u32::try_from(payload_len).map_err(|_| {
        StoreError::Encode(format!(
            "batch of {payload_len} bytes exceeds the 4 GiB frame limit; append fewer records per call"
        ))
    })?;
    let len_bytes = len.to_be_bytes();
    let crc = frame_crc(len_bytes, &buf[start + FRAME_HEADER_LEN..]);
    buf[start..start + 4].copy_from_slice(&len_bytes);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

fn put_str(buf: &mut Vec<u8>, field: &str, value: &str) -> Result<(), StoreError> {
    let len = u32::try_from(value.len()).map_err(|_| {
        StoreError::Encode(format!(
            "field {field} is {} bytes, over 4 GiB",
            value.len()
        ))
    })?;
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(value.as_bytes());
    Ok(())
}

/// Appends one record: op byte, then its fields big-endian, strings as u32 length + UTF-8.
pub(crate) fn encode_record(buf: &mut Vec<u8>, record: &Record) -> Result<(), StoreError> {
    match record {
        Record::GlobalAdd(g) => {
            buf.push(OP_GLOBAL_ADD);
            buf.extend_from_slice(&g.transaction_id.0.to_be_bytes());
            buf.push(g.status.code());
            buf.extend_from_slice(&g.timeout_ms.to_be_bytes());
            buf.extend_from_slice(&g.begin_time_ms.to_be_bytes());
            put_str(buf, "xid", &g.xid)?;
            put_str(buf, "application_id", &g.application_id)?;
            put_str(
                buf,
                "transaction_service_group",
                &g.transaction_service_group,
            )?;
            put_str(buf, "transaction_name", &g.transaction_name)?;
            put_str(buf, "application_data", &g.application_data)?;
        }
        Record::GlobalUpdate {
            transaction_id,
            status,
        } => {
            buf.push(OP_GLOBAL_UPDATE);
            buf.extend_from_slice(&transaction_id.0.to_be_bytes());
            buf.push(status.code());
        }
        Record::GlobalRemove { transaction_id } => {
            buf.push(OP_GLOBAL_REMOVE);
            buf.extend_from_slice(&transaction_id.0.to_be_bytes());
        }
        Record::BranchAdd(b) => {
            buf.push(OP_BRANCH_ADD);
            buf.extend_from_slice(&b.transaction_id.0.to_be_bytes());
            buf.extend_from_slice(&b.branch_id.0.to_be_bytes());
            buf.push(b.branch_type.code());
            buf.push(b.status.code());
            put_str(buf, "resource_id", &b.resource_id)?;
            put_str(buf, "lock_key", &b.lock_key)?;
            put_str(buf, "client_id", &b.client_id)?;
            put_str(buf, "application_data", &b.application_data)?;
        }
        Record::BranchUpdate {
            transaction_id,
            branch_id,
            status,
            application_data,
        } => {
            buf.push(OP_BRANCH_UPDATE);
            buf.extend_from_slice(&transaction_id.0.to_be_bytes());
            buf.extend_from_slice(&branch_id.0.to_be_bytes());
            buf.push(status.code());
            match application_data {
                None => buf.push(0),
                Some(data) => {
                    buf.push(1);
                    put_str(buf, "application_data", data)?;
                }
            }
        }
        Record::BranchRemove {
            transaction_id,
            branch_id,
        } => {
            buf.push(OP_BRANCH_REMOVE);
            buf.extend_from_slice(&transaction_id.0.to_be_bytes());
            buf.extend_from_slice(&branch_id.0.to_be_bytes());
        }
        Record::IdReserve { next_free_id } => {
            buf.push(OP_ID_RESERVE);
            buf.extend_from_slice(&next_free_id.to_be_bytes());
        }
    }
    Ok(())
}

/// Reads a checksummed payload. Errors are plain reasons; the caller adds file and offset.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())
            .ok_or_else(|| {
                format!(
                    "record truncated: needs {n} more bytes at payload offset {}",
                    self.pos
                )
            })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn string(&mut self, field: &str) -> Result<String, String> {
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("field {field} is not valid UTF-8"))
    }

    fn global_status(&mut self) -> Result<GlobalStatus, String> {
        let code = self.u8()?;
        GlobalStatus::from_code(code).ok_or_else(|| format!("unknown global status code {code}"))
    }

    fn branch_status(&mut self) -> Result<BranchStatus, String> {
        let code = self.u8()?;
        BranchStatus::from_code(code).ok_or_else(|| format!("unknown branch status code {code}"))
    }

    /// Decodes the record starting at the current position.
    pub(crate) fn record(&mut self) -> Result<Record, String> {
        let op = self.u8()?;
        let record = match op {
            OP_GLOBAL_ADD => {
                let transaction_id = TransactionId(self.i64()?);
                let status = self.global_status()?;
                let timeout_ms = self.i32()?;
                let begin_time_ms = self.i64()?;
                Record::GlobalAdd(GlobalSession {
                    transaction_id,
                    status,
                    timeout_ms,
                    begin_time_ms,
                    xid: self.string("xid")?,
                    application_id: self.string("application_id")?,
                    transaction_service_group: self.string("transaction_service_group")?,
                    transaction_name: self.string("transaction_name")?,
                    application_data: self.string("application_data")?,
                })
            }
            OP_GLOBAL_UPDATE => Record::GlobalUpdate {
                transaction_id: TransactionId(self.i64()?),
                status: self.global_status()?,
            },
            OP_GLOBAL_REMOVE => Record::GlobalRemove {
                transaction_id: TransactionId(self.i64()?),
            },
            OP_BRANCH_ADD => {
                let transaction_id = TransactionId(self.i64()?);
                let branch_id = BranchId(self.i64()?);
                let type_code = self.u8()?;
                let branch_type = BranchType::from_code(type_code)
                    .ok_or_else(|| format!("unknown branch type code {type_code}"))?;
                let status = self.branch_status()?;
                Record::BranchAdd(BranchSession {
                    transaction_id,
                    branch_id,
                    branch_type,
                    status,
                    resource_id: self.string("resource_id")?,
                    lock_key: self.string("lock_key")?,
                    client_id: self.string("client_id")?,
                    application_data: self.string("application_data")?,
                })
            }
            OP_BRANCH_UPDATE => {
                let transaction_id = TransactionId(self.i64()?);
                let branch_id = BranchId(self.i64()?);
                let status = self.branch_status()?;
                let application_data = match self.u8()? {
                    0 => None,
                    1 => Some(self.string("application_data")?),
                    other => return Err(format!("bad application-data presence byte {other}")),
                };
                Record::BranchUpdate {
                    transaction_id,
                    branch_id,
                    status,
                    application_data,
                }
            }
            OP_BRANCH_REMOVE => Record::BranchRemove {
                transaction_id: TransactionId(self.i64()?),
                branch_id: BranchId(self.i64()?),
            },
            OP_ID_RESERVE => Record::IdReserve {
                next_free_id: self.i64()?,
            },
            other => return Err(format!("unknown record opcode {other}")),
        };
        Ok(record)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may panic
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_global_status() -> impl Strategy<Value = GlobalStatus> {
        proptest::sample::select(GlobalStatus::ALL)
    }

    fn any_branch_status() -> impl Strategy<Value = BranchStatus> {
        proptest::sample::select(BranchStatus::ALL)
    }

    fn any_record() -> impl Strategy<Value = Record> {
        let global = (
            any::<i64>(),
            any_global_status(),
            any::<i32>(),
            any::<i64>(),
            ".*",
            ".*",
            ".*",
            ".*",
            ".*",
        )
            .prop_map(
                |(id, status, timeout, begin, xid, app, group, name, data)| {
                    Record::GlobalAdd(GlobalSession {
                        transaction_id: TransactionId(id),
                        xid,
                        status,
                        application_id: app,
                        transaction_service_group: group,
                        transaction_name: name,
                        timeout_ms: timeout,
                        begin_time_ms: begin,
                        application_data: data,
                    })
                },
            );
        let branch = (
            any::<i64>(),
            any::<i64>(),
            proptest::sample::select(BranchType::ALL),
            any_branch_status(),
            ".*",
            ".*",
            ".*",
            ".*",
        )
            .prop_map(|(tx, id, ty, status, res, lock, client, data)| {
                Record::BranchAdd(BranchSession {
                    branch_id: BranchId(id),
                    transaction_id: TransactionId(tx),
                    resource_id: res,
                    lock_key: lock,
                    branch_type: ty,
                    status,
                    client_id: client,
                    application_data: data,
                })
            });
        prop_oneof![
            global,
            (any::<i64>(), any_global_status()).prop_map(|(id, status)| {
                Record::GlobalUpdate {
                    transaction_id: TransactionId(id),
                    status,
                }
            }),
            any::<i64>().prop_map(|id| Record::GlobalRemove {
                transaction_id: TransactionId(id)
            }),
            branch,
            (
                any::<i64>(),
                any::<i64>(),
                any_branch_status(),
                proptest::option::of(".*")
            )
                .prop_map(|(tx, id, status, application_data)| {
                    Record::BranchUpdate {
                        transaction_id: TransactionId(tx),
                        branch_id: BranchId(id),
                        status,
                        application_data,
                    }
                }),
            (any::<i64>(), any::<i64>()).prop_map(|(tx, id)| {
                Record::BranchRemove {
                    transaction_id: TransactionId(tx),
                    branch_id: BranchId(id),
                }
            }),
            any::<i64>().prop_map(|next_free_id| Record::IdReserve { next_free_id }),
        ]
    }

    proptest! {
        #[test]
        fn batch_frame_round_trips(records in proptest::collection::vec(any_record(), 0..20)) {
            let mut buf = Vec::new();
            let mut frame = BatchFrame::begin(&mut buf);
            for r in &records {
                frame.push(&mut buf, r).unwrap();
            }
            frame.finish(&mut buf).unwrap();

            let len = u32::from_be_bytes(buf[0..4].try_into().unwrap());
            let crc = u32::from_be_bytes(buf[4..8].try_into().unwrap());
            prop_assert_eq!(len as usize, buf.len() - FRAME_HEADER_LEN);
            prop_assert_eq!(crc, frame_crc(len.to_be_bytes(), &buf[FRAME_HEADER_LEN..]));

            let mut reader = Reader::new(&buf[FRAME_HEADER_LEN..]);
            prop_assert_eq!(reader.u8().unwrap(), KIND_BATCH);
            prop_assert_eq!(reader.u32().unwrap() as usize, records.len());
            for r in &records {
                prop_assert_eq!(&reader.record().unwrap(), r);
            }
            prop_assert!(reader.is_empty());
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut reader = Reader::new(&bytes);
            while !reader.is_empty() {
                if reader.record().is_err() {
                    break;
                }
            }
        }
    }

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let header = encode_header(42, FLAG_CHECKPOINT);
        let decoded = decode_header(&header).unwrap();
        assert_eq!(decoded.version, FORMAT_VERSION);
        assert_eq!(decoded.sequence, 42);
        assert!(decoded.is_checkpoint());
        for i in 0..SEGMENT_HEADER_LEN {
            let mut damaged = header;
            damaged[i] ^= 0x40;
            assert!(decode_header(&damaged).is_err(), "byte {i}");
        }
    }
}
