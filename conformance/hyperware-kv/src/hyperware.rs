//! Hyperware's kv types, declared as hyperware-ai/process_lib declares them
//! (`src/kv.rs`, and `PackageId`'s serde form in `src/types/package_id.rs`).
//!
//! The declaration is written once, in `hyperware_kv_types!`, and expanded
//! twice:
//!
//! - [`plain`]: exactly process_lib's types, every byte field a plain
//!   `Vec<u8>` (rmp-serde writes it as an array of ints, serde_json as an
//!   array of numbers);
//! - [`bin`]: the same types with `#[serde(with = "serde_bytes")]` on every
//!   byte field, so that rmp-serde writes msgpack `bin`: the canonical form
//!   of kvruntime's golden vectors.
//!
//! process_lib derives only `Clone, Debug, Serialize, Deserialize` (and
//! thiserror's `Error` on `KvError`, left out here: thiserror is no part of
//! the wire form). `PackageId` is a wit-bindgen struct there with a
//! hand-written `Serialize` (`serialize_struct` with the fields
//! `package_name`, `publisher_node`) and a map-reading `Deserialize`; the
//! derive below gives the same serialization.

/// The declaration of process_lib's kv types; `$bytes` is put before every
/// byte field.
macro_rules! hyperware_kv_types {
    ($(#[$bytes:meta])*) => {
        use serde::{Deserialize, Serialize};

        /// A package: `package_name:publisher_node`, a map on the wire.
        #[derive(Clone, Debug, Serialize, Deserialize)]
        pub struct PackageId {
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

        /// What to do (process_lib's `KvAction`).
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
            BeginTx,
            Commit { tx_id: u64 },
        }

        /// The answer (process_lib's `KvResponse`).
        #[derive(Clone, Debug, Serialize, Deserialize)]
        pub enum KvResponse {
            Ok,
            BeginTx { tx_id: u64 },
            Get($(#[$bytes])* Vec<u8>),
            Err(KvError),
        }

        /// An error (process_lib's `KvError`).
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
            RocksDBError(String),
            IOError(String),
        }
    };
}

/// process_lib's types exactly: byte fields are plain `Vec<u8>`.
pub mod plain {
    hyperware_kv_types!();
}

/// process_lib's types with every byte field as msgpack `bin` (serde_bytes).
pub mod bin {
    hyperware_kv_types!(#[serde(with = "serde_bytes")]);
}
