//! kvruntime's kv types beyond Hyperware's, declared by the same serde rules
//! as process_lib's (externally tagged enums, `PackageId` and `ProcessId` as
//! maps, byte fields `Vec<u8>`), after kvruntime's `protocol/PROTOCOL.md`:
//! its whole `KvAction`, `KvResponse` and `KvError` (the core variants, then
//! `Exists`, which Hyperware's types lack, and every extension).
//!
//! As in `hyperware.rs`, the declaration is written once and expanded twice:
//! [`plain`] (`Vec<u8>`) and [`bin`] (`serde_bytes`).

/// The declaration of kvruntime's kv types; `$bytes` is put before every
/// byte field (`Vec<u8>` or `Option<Vec<u8>>`).
macro_rules! kvruntime_kv_types {
    ($(#[$bytes:meta])*) => {
        use serde::{Deserialize, Serialize};

        pub use crate::hyperware::plain::PackageId;

        /// A process: `process_name:package_name:publisher_node`, a map on the wire.
        #[derive(Clone, Debug, Serialize, Deserialize)]
        pub struct ProcessId {
            pub process_name: String,
            pub package_name: String,
            pub publisher_node: String,
        }

        /// A request to one db of `package_id`.
        #[derive(Clone, Debug, Serialize, Deserialize)]
        pub struct KvRequest {
            pub package_id: PackageId,
            pub db: String,
            pub action: KvAction,
        }

        /// Every action kvruntime serves, in PROTOCOL.md's order and field order.
        #[derive(Clone, Debug, Serialize, Deserialize)]
        pub enum KvAction {
            Open,
            RemoveDb,
            Set {
                $(#[$bytes])*
                key: Vec<u8>,
                tx_id: Option<u64>,
            },
            Delete {
                $(#[$bytes])*
                key: Vec<u8>,
                tx_id: Option<u64>,
            },
            Get($(#[$bytes])* Vec<u8>),
            Exists($(#[$bytes])* Vec<u8>),
            BeginTx,
            Commit { tx_id: u64 },
            Scan {
                $(#[$bytes])*
                prefix: Option<Vec<u8>>,
                $(#[$bytes])*
                start: Option<Vec<u8>>,
                $(#[$bytes])*
                end: Option<Vec<u8>>,
                reverse: bool,
                keys_only: bool,
                limit: Option<u64>,
                $(#[$bytes])*
                cursor: Option<Vec<u8>>,
                tx_id: Option<u64>,
            },
            TxGet {
                $(#[$bytes])*
                key: Vec<u8>,
                tx_id: u64,
            },
            TxExists {
                $(#[$bytes])*
                key: Vec<u8>,
                tx_id: u64,
            },
            GetMany { count: u64 },
            TxGetMany { count: u64, tx_id: u64 },
            SetMany { count: u64 },
            DeleteMany { count: u64 },
            Increment {
                $(#[$bytes])*
                key: Vec<u8>,
                delta: i64,
            },
            CompareAndSwap {
                $(#[$bytes])*
                key: Vec<u8>,
            },
            Rollback { tx_id: u64 },
            DeleteRange {
                $(#[$bytes])*
                prefix: Option<Vec<u8>>,
                $(#[$bytes])*
                start: Option<Vec<u8>>,
                $(#[$bytes])*
                end: Option<Vec<u8>>,
            },
            Revoke { process: ProcessId },
            Capabilities,
            WriteBatch { tx_id: Option<u64>, count: u64 },
            CommitBatch { tx_id: u64, count: u64 },
            SetExpiring {
                $(#[$bytes])*
                key: Vec<u8>,
                tx_id: Option<u64>,
                ttl_ms: u64,
            },
            SetManyExpiring { count: u64, ttl_ms: u64 },
            Expire {
                $(#[$bytes])*
                key: Vec<u8>,
                ttl_ms: u64,
            },
            Persist {
                $(#[$bytes])*
                key: Vec<u8>,
            },
            Ttl {
                $(#[$bytes])*
                key: Vec<u8>,
            },
            SetTtlPolicy { enabled: bool, max_ttl_ms: Option<u64> },
            Watch {
                $(#[$bytes])*
                prefix: Option<Vec<u8>>,
                $(#[$bytes])*
                start: Option<Vec<u8>>,
                $(#[$bytes])*
                end: Option<Vec<u8>>,
                since: Option<u64>,
                snapshot: bool,
            },
            WatchNext { watch_id: u64, after: u64 },
            Unwatch(u64),
        }

        /// Every answer kvruntime gives.
        #[derive(Clone, Debug, Serialize, Deserialize)]
        pub enum KvResponse {
            Ok,
            BeginTx { tx_id: u64 },
            Get($(#[$bytes])* Vec<u8>),
            Exists(bool),
            Err(KvError),
            Scan {
                count: u64,
                $(#[$bytes])*
                cursor: Option<Vec<u8>>,
            },
            GetMany { count: u64 },
            Increment(i64),
            DeleteRange { count: u64 },
            Capabilities { read: bool, write: bool },
            Ttl { ttl_ms: Option<u64> },
            Watch { watch_id: u64, position: u64, count: u64 },
            WatchChanges { count: u64, last: u64 },
        }

        /// Every error kvruntime answers.
        #[derive(Clone, Debug, Serialize, Deserialize)]
        pub enum KvError {
            NoDb(PackageId, String),
            KeyNotFound,
            NoTx(u64),
            NoWriteCap,
            NoReadCap,
            MismatchingPackageId,
            AddCapFailed,
            MalformedRequest,
            LevelDbError(String),
            IOError(String),
            KeyTooLarge { size: u64, max: u64 },
            ValueTooLarge { size: u64, max: u64 },
            TooManyTransactions { max: u64 },
            RemoteNotAllowed,
            TransactionTooLarge { size: u64, max: u64 },
            CasMismatch { present: bool },
            TransactionConflict(u64),
            NotAnInteger,
            IntegerOverflow,
            BatchTooLarge { count: u64, max: u64 },
            AnswerTooLarge { size: u64, max: u64 },
            KeyReserved,
            TtlDisabled,
            TtlTooLarge { ttl_ms: u64, max_ms: u64 },
            WatchCompacted { oldest: u64, last: u64 },
            WatchEnded(String),
            TooManyWatches { max: u64 },
            NoWatch(u64),
            /// Hyperware's own: in the JSON and ARRAY forms, the answer to one of
            /// Hyperware's actions holds only Hyperware's errors, and one its
            /// type lacks arrives as this (kvruntime's PROTOCOL.md, "Forms").
            RocksDBError(String),
        }
    };
}

/// kvruntime's types with plain `Vec<u8>` byte fields.
pub mod plain {
    kvruntime_kv_types!();
}

/// kvruntime's types with every byte field as msgpack `bin` (serde_bytes).
pub mod bin {
    kvruntime_kv_types!(#[serde(with = "serde_bytes")]);
}
