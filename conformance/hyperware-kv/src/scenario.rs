//! The steps, in order, each with the answer PROTOCOL.md gives it.
//!
//! [`core`] speaks only process_lib's types (every Hyperware action, and the
//! errors a Hyperware sender meets); [`extensions`] speaks kvruntime's types
//! (`Exists`, scans, batches, atomics, pipelined transactions, revoke,
//! capabilities, and their errors). Each form runs on dbs of its own
//! (`core-<form>`, `ext-<form>`), so the forms see the same states.

use std::io::{self, Read, Write};

use serde_bytes::ByteBuf;

use crate::extensions as ext;
use crate::hyperware::plain::{KvAction, KvError, KvRequest, KvResponse, PackageId};
use crate::runner::{Blob, Expect, Hyperware, Kvruntime, Runner};

fn ok() -> Expect<KvResponse> {
    Expect::Answer(KvResponse::Ok, Blob::None)
}

fn err(error: KvError) -> Expect<KvResponse> {
    Expect::Answer(KvResponse::Err(error), Blob::None)
}

fn got(key: &[u8], value: &[u8]) -> Expect<KvResponse> {
    Expect::Answer(KvResponse::Get(key.to_vec()), Blob::Raw(value.to_vec()))
}

/// Every Hyperware action and the errors a process_lib sender meets.
pub fn core<R: Read, W: Write>(run: &mut Runner<'_, R, W>) -> io::Result<()> {
    let db = format!("core-{}", run.form.name());
    let package = run.package.clone();
    let on = |db: &str, action: KvAction| KvRequest {
        package_id: package.clone(),
        db: db.to_string(),
        action,
    };
    let set = |key: &[u8], tx_id: Option<u64>| KvAction::Set {
        key: key.to_vec(),
        tx_id,
    };
    let delete = |key: &[u8], tx_id: Option<u64>| KvAction::Delete {
        key: key.to_vec(),
        tx_id,
    };
    let get = |key: &[u8]| KvAction::Get(key.to_vec());
    let no_db = KvError::NoDb(package.clone(), db.clone());

    run.step::<Hyperware>("open", &on(&db, KvAction::Open), None, ok())?;
    run.step::<Hyperware>("open again", &on(&db, KvAction::Open), None, ok())?;
    run.step::<Hyperware>(
        "set",
        &on(&db, set(b"alice", None)),
        Some(b"1990-04-01"),
        ok(),
    )?;
    run.step::<Hyperware>(
        "get",
        &on(&db, get(b"alice")),
        None,
        got(b"alice", b"1990-04-01"),
    )?;
    run.step::<Hyperware>(
        "get a binary key",
        &on(&db, get(b"\x00\xff\x80")),
        None,
        err(KvError::KeyNotFound),
    )?;
    run.step::<Hyperware>(
        "set without its blob",
        &on(&db, set(b"bob", None)),
        None,
        err(KvError::MalformedRequest),
    )?;
    run.step::<Hyperware>("delete", &on(&db, delete(b"alice", None)), None, ok())?;
    run.step::<Hyperware>(
        "get a deleted key",
        &on(&db, get(b"alice")),
        None,
        err(KvError::KeyNotFound),
    )?;
    run.step::<Hyperware>(
        "delete a missing key",
        &on(&db, delete(b"bob", None)),
        None,
        ok(),
    )?;
    run.step::<Hyperware>(
        "set an empty value",
        &on(&db, set(b"dave", None)),
        Some(b""),
        ok(),
    )?;
    run.step::<Hyperware>(
        "get an empty value",
        &on(&db, get(b"dave")),
        None,
        got(b"dave", b""),
    )?;

    run.step::<Hyperware>(
        "begin a transaction",
        &on(&db, KvAction::BeginTx),
        None,
        Expect::NewTx,
    )?;
    let tx = run.last_tx();
    run.step::<Hyperware>(
        "set in the transaction",
        &on(&db, set(b"carol", Some(tx))),
        Some(b"1985-12-24"),
        ok(),
    )?;
    run.step::<Hyperware>(
        "delete in the transaction",
        &on(&db, delete(b"dave", Some(tx))),
        None,
        ok(),
    )?;
    run.step::<Hyperware>(
        "get before the commit",
        &on(&db, get(b"carol")),
        None,
        err(KvError::KeyNotFound),
    )?;
    run.step::<Hyperware>(
        "commit",
        &on(&db, KvAction::Commit { tx_id: tx }),
        None,
        ok(),
    )?;
    run.step::<Hyperware>(
        "get a committed set",
        &on(&db, get(b"carol")),
        None,
        got(b"carol", b"1985-12-24"),
    )?;
    run.step::<Hyperware>(
        "get a committed delete",
        &on(&db, get(b"dave")),
        None,
        err(KvError::KeyNotFound),
    )?;
    run.step::<Hyperware>(
        "commit twice",
        &on(&db, KvAction::Commit { tx_id: tx }),
        None,
        err(KvError::NoTx(tx)),
    )?;
    run.step::<Hyperware>(
        "set in an unknown transaction",
        &on(&db, set(b"erin", Some(12345))),
        Some(b"x"),
        err(KvError::NoTx(12345)),
    )?;

    let foreign = KvRequest {
        package_id: PackageId {
            package_name: "someone-else".to_string(),
            publisher_node: package.publisher_node.clone(),
        },
        db: db.clone(),
        action: KvAction::Open,
    };
    run.step::<Hyperware>(
        "open another package's db",
        &foreign,
        None,
        err(KvError::MismatchingPackageId),
    )?;
    run.step::<Hyperware>(
        "open a db named a/b",
        &on("a/b", KvAction::Open),
        None,
        err(KvError::MalformedRequest),
    )?;
    run.step::<Hyperware>(
        "get from a db never opened",
        &on("never-opened", get(b"alice")),
        None,
        err(KvError::NoDb(package.clone(), "never-opened".to_string())),
    )?;
    run.step::<Hyperware>("remove the db", &on(&db, KvAction::RemoveDb), None, ok())?;
    run.step::<Hyperware>(
        "get from a removed db",
        &on(&db, get(b"carol")),
        None,
        err(no_db.clone()),
    )?;
    run.step::<Hyperware>(
        "remove a removed db",
        &on(&db, KvAction::RemoveDb),
        None,
        err(no_db),
    )?;
    Ok(())
}

fn msgpack<T: serde::Serialize>(value: &T) -> Vec<u8> {
    rmp_serde::to_vec(value).expect("a blob of bins and nils always encodes")
}

fn bins(items: &[&[u8]]) -> Vec<ByteBuf> {
    items
        .iter()
        .map(|item| ByteBuf::from(item.to_vec()))
        .collect()
}

fn pairs(items: &[(&[u8], Option<&[u8]>)]) -> Vec<(ByteBuf, Option<ByteBuf>)> {
    items
        .iter()
        .map(|(key, value)| {
            (
                ByteBuf::from(key.to_vec()),
                value.map(|v| ByteBuf::from(v.to_vec())),
            )
        })
        .collect()
}

fn list(items: &[Option<&[u8]>]) -> Blob {
    Blob::List(items.iter().map(|item| item.map(<[u8]>::to_vec)).collect())
}

/// kvruntime's actions beyond Hyperware's, in kvruntime's own types.
pub fn extensions<R: Read, W: Write>(run: &mut Runner<'_, R, W>) -> io::Result<()> {
    use ext::plain::{
        KvAction as A, KvError as E, KvRequest as Req, KvResponse as Resp, ProcessId,
    };
    let db = format!("ext-{}", run.form.name());
    let package = run.package.clone();
    let on = |action: A| Req {
        package_id: package.clone(),
        db: db.clone(),
        action,
    };
    let answer = |response: Resp| Expect::Answer(response, Blob::None);
    let fail = |error: E| Expect::Answer(Resp::Err(error), Blob::None);
    let k = |key: &[u8]| key.to_vec();
    let exists = |key: &[u8]| A::Exists(key.to_vec());
    let range = |start: &[u8], end: &[u8], limit: Option<u64>| A::Scan {
        prefix: None,
        start: Some(start.to_vec()),
        end: Some(end.to_vec()),
        reverse: false,
        keys_only: false,
        limit,
        cursor: None,
        tx_id: None,
    };

    run.step::<Kvruntime>("open", &on(A::Open), None, answer(Resp::Ok))?;
    run.step::<Kvruntime>(
        "exists, missing",
        &on(exists(b"k")),
        None,
        answer(Resp::Exists(false)),
    )?;
    run.step::<Kvruntime>(
        "set",
        &on(A::Set {
            key: k(b"k"),
            tx_id: None,
        }),
        Some(b"v"),
        answer(Resp::Ok),
    )?;
    run.step::<Kvruntime>(
        "exists",
        &on(exists(b"k")),
        None,
        answer(Resp::Exists(true)),
    )?;
    run.step::<Kvruntime>(
        "capabilities",
        &on(A::Capabilities),
        None,
        answer(Resp::Capabilities {
            read: true,
            write: true,
        }),
    )?;
    let increment = |delta: i64| A::Increment {
        key: k(b"counter"),
        delta,
    };
    run.step::<Kvruntime>(
        "increment a missing key",
        &on(increment(41)),
        None,
        answer(Resp::Increment(41)),
    )?;
    run.step::<Kvruntime>(
        "increment",
        &on(increment(1)),
        None,
        answer(Resp::Increment(42)),
    )?;
    run.step::<Kvruntime>(
        "get a counter",
        &on(A::Get(k(b"counter"))),
        None,
        Expect::Answer(Resp::Get(k(b"counter")), Blob::Raw(b"42".to_vec())),
    )?;
    run.step::<Kvruntime>(
        "increment a non-integer",
        &on(A::Increment {
            key: k(b"k"),
            delta: 1,
        }),
        None,
        fail(E::NotAnInteger),
    )?;
    let cas = || A::CompareAndSwap { key: k(b"lock") };
    let cas_blob = |expected: Option<&[u8]>, new: Option<&[u8]>| {
        msgpack(&(
            expected.map(|e| ByteBuf::from(e.to_vec())),
            new.map(|n| ByteBuf::from(n.to_vec())),
        ))
    };
    run.step::<Kvruntime>(
        "compare-and-swap",
        &on(cas()),
        Some(&cas_blob(None, Some(b"v1"))),
        answer(Resp::Ok),
    )?;
    run.step::<Kvruntime>(
        "compare-and-swap, mismatch",
        &on(cas()),
        Some(&cas_blob(None, Some(b"v2"))),
        Expect::Answer(
            Resp::Err(E::CasMismatch { present: true }),
            Blob::Raw(b"v1".to_vec()),
        ),
    )?;
    run.step::<Kvruntime>(
        "compare-and-swap without its blob",
        &on(cas()),
        None,
        fail(E::MalformedRequest),
    )?;
    let set_items: Vec<(ByteBuf, ByteBuf)> = [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]
        .iter()
        .map(|(key, value)| (ByteBuf::from(key.to_vec()), ByteBuf::from(value.to_vec())))
        .collect();
    run.step::<Kvruntime>(
        "set many",
        &on(A::SetMany { count: 3 }),
        Some(&msgpack(&set_items)),
        answer(Resp::Ok),
    )?;
    run.step::<Kvruntime>(
        "get many",
        &on(A::GetMany { count: 3 }),
        Some(&msgpack(&bins(&[b"a", b"zz", b"c"]))),
        Expect::Answer(
            Resp::GetMany { count: 3 },
            list(&[Some(b"1"), None, Some(b"3")]),
        ),
    )?;
    run.step::<Kvruntime>(
        "delete many",
        &on(A::DeleteMany { count: 1 }),
        Some(&msgpack(&bins(&[b"a"]))),
        answer(Resp::Ok),
    )?;
    run.step::<Kvruntime>(
        "scan a range",
        &on(range(b"b", b"ca", None)),
        None,
        Expect::Answer(
            Resp::Scan {
                count: 2,
                cursor: None,
            },
            list(&[Some(b"b"), Some(b"2"), Some(b"c"), Some(b"3")]),
        ),
    )?;
    run.step::<Kvruntime>(
        "scan a page",
        &on(range(b"b", b"ca", Some(1))),
        None,
        Expect::Answer(
            Resp::Scan {
                count: 1,
                cursor: Some(k(b"b")),
            },
            list(&[Some(b"b"), Some(b"2")]),
        ),
    )?;
    run.step::<Kvruntime>(
        "delete a range",
        &on(A::DeleteRange {
            prefix: None,
            start: Some(k(b"b")),
            end: Some(k(b"ca")),
        }),
        None,
        answer(Resp::DeleteRange { count: 2 }),
    )?;

    run.step::<Kvruntime>("begin a transaction", &on(A::BeginTx), None, Expect::NewTx)?;
    let tx = run.last_tx();
    run.step::<Kvruntime>(
        "set in the transaction",
        &on(A::Set {
            key: k(b"t1"),
            tx_id: Some(tx),
        }),
        Some(b"x"),
        answer(Resp::Ok),
    )?;
    run.step::<Kvruntime>(
        "read in the transaction",
        &on(A::TxGet {
            key: k(b"t1"),
            tx_id: tx,
        }),
        None,
        Expect::Answer(Resp::Get(k(b"t1")), Blob::Raw(b"x".to_vec())),
    )?;
    run.step::<Kvruntime>(
        "exists in the transaction",
        &on(A::TxExists {
            key: k(b"t1"),
            tx_id: tx,
        }),
        None,
        answer(Resp::Exists(true)),
    )?;
    run.step::<Kvruntime>(
        "get many in the transaction",
        &on(A::TxGetMany {
            count: 2,
            tx_id: tx,
        }),
        Some(&msgpack(&bins(&[b"t1", b"k"]))),
        Expect::Answer(Resp::GetMany { count: 2 }, list(&[Some(b"x"), Some(b"v")])),
    )?;
    run.step::<Kvruntime>(
        "write a batch in the transaction",
        &on(A::WriteBatch {
            tx_id: Some(tx),
            count: 1,
        }),
        Some(&msgpack(&pairs(&[(b"t2", Some(b"y"))]))),
        answer(Resp::Ok),
    )?;
    run.step::<Kvruntime>(
        "roll back",
        &on(A::Rollback { tx_id: tx }),
        None,
        answer(Resp::Ok),
    )?;
    run.step::<Kvruntime>(
        "read in a rolled-back transaction",
        &on(A::TxGet {
            key: k(b"t1"),
            tx_id: tx,
        }),
        None,
        fail(E::NoTx(tx)),
    )?;
    run.step::<Kvruntime>(
        "exists after the rollback",
        &on(exists(b"t1")),
        None,
        answer(Resp::Exists(false)),
    )?;
    run.step::<Kvruntime>(
        "begin another transaction",
        &on(A::BeginTx),
        None,
        Expect::NewTx,
    )?;
    let tx = run.last_tx();
    run.step::<Kvruntime>(
        "commit a batch",
        &on(A::CommitBatch {
            tx_id: tx,
            count: 2,
        }),
        Some(&msgpack(&pairs(&[(b"t3", Some(b"z")), (b"k", None)]))),
        answer(Resp::Ok),
    )?;
    run.step::<Kvruntime>(
        "exists after the batch set",
        &on(exists(b"t3")),
        None,
        answer(Resp::Exists(true)),
    )?;
    run.step::<Kvruntime>(
        "exists after the batch delete",
        &on(exists(b"k")),
        None,
        answer(Resp::Exists(false)),
    )?;
    run.step::<Kvruntime>(
        "write a batch",
        &on(A::WriteBatch {
            tx_id: None,
            count: 1,
        }),
        Some(&msgpack(&pairs(&[(b"w", Some(b"1"))]))),
        answer(Resp::Ok),
    )?;
    run.step::<Kvruntime>(
        "set too many",
        &on(A::SetMany { count: 10_001 }),
        Some(&msgpack(&Vec::<ByteBuf>::new())),
        fail(E::BatchTooLarge {
            count: 10_001,
            max: 10_000,
        }),
    )?;
    // Exists, not Get: in the JSON and ARRAY forms a Get (one of Hyperware's
    // actions) is answered in Hyperware's errors, so KeyTooLarge would arrive
    // as RocksDBError there; an extension keeps kvruntime's errors in every form.
    run.step::<Kvruntime>(
        "exists with a key too large",
        &on(exists(&[b'k'; 65_537])),
        None,
        fail(E::KeyTooLarge {
            size: 65_537,
            max: 65_536,
        }),
    )?;
    let other = ProcessId {
        process_name: "reader".to_string(),
        package_name: package.package_name.clone(),
        publisher_node: package.publisher_node.clone(),
    };
    run.step::<Kvruntime>(
        "revoke",
        &on(A::Revoke { process: other }),
        None,
        answer(Resp::Ok),
    )?;
    run.step::<Kvruntime>("remove the db", &on(A::RemoveDb), None, answer(Resp::Ok))?;
    run.step::<Kvruntime>(
        "exists in a removed db",
        &on(exists(b"w")),
        None,
        fail(E::NoDb(package.clone(), db.clone())),
    )?;
    Ok(())
}
