//! `ferrata-proto`: Seata's wire vocabulary and codec — frames (v1, accepting v2), the head map,
//! every SEATA-codec message (one file each), merged batches and bounded compressors. No I/O.

pub mod enums;
pub mod version;

pub use enums::{BranchStatus, BranchType, GlobalStatus, ResultCode, TransactionExceptionCode};
pub use version::ClientVersion;
