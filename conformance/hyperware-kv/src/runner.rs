//! Running one step: encode the request in a form, send it through the
//! link, decode the answer into the sender's types, compare it with what
//! PROTOCOL.md says it must be, and record the outcome.

use std::io::{Read, Write};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_bytes::ByteBuf;
use serde_json::{json, Value};

use crate::bridge::Link;
use crate::extensions as ext;
use crate::forms::{decode, encode, Form};
use crate::hyperware as hw;

/// A family of declared types: Hyperware's (process_lib's) or kvruntime's.
pub trait Family {
    /// The family's name in the report.
    const NAME: &'static str;
    /// The request, `plain` and `bin`.
    type Request: Serialize;
    type RequestBin: Serialize + DeserializeOwned;
    /// The answer, `plain` and `bin`.
    type Response: Serialize + DeserializeOwned + std::fmt::Debug;
    type ResponseBin: Serialize + DeserializeOwned;
}

/// process_lib's kv types.
pub struct Hyperware;

impl Family for Hyperware {
    const NAME: &'static str = "hyperware";
    type Request = hw::plain::KvRequest;
    type RequestBin = hw::bin::KvRequest;
    type Response = hw::plain::KvResponse;
    type ResponseBin = hw::bin::KvResponse;
}

/// kvruntime's kv types (the extensions).
pub struct Kvruntime;

impl Family for Kvruntime {
    const NAME: &'static str = "kvruntime";
    type Request = ext::plain::KvRequest;
    type RequestBin = ext::bin::KvRequest;
    type Response = ext::plain::KvResponse;
    type ResponseBin = ext::bin::KvResponse;
}

/// The blob an answer must carry.
#[derive(Clone, Debug)]
pub enum Blob {
    /// No blob.
    None,
    /// These bytes (a Get's value, a CasMismatch's current value).
    Raw(Vec<u8>),
    /// A msgpack array of `bin` or nil (a GetMany's values, a Scan's page).
    List(Vec<Option<Vec<u8>>>),
}

/// What the answer to a step must be.
pub enum Expect<R> {
    /// This answer, with this blob.
    Answer(R, Blob),
    /// `BeginTx { tx_id }` with any id (remembered for the later steps).
    NewTx,
}

/// The outcome of one step.
#[derive(Clone, Debug)]
pub struct Record {
    pub step: String,
    pub family: &'static str,
    /// The answer decoded into the sender's types and equal to the expected one.
    pub ok: bool,
    /// The decoded answer (Debug, transaction ids as `<tx>`) and its blob,
    /// or why there is none; compared across forms.
    pub answer: String,
    /// What went wrong, when not `ok`.
    pub problem: Option<String>,
}

/// Runs steps in one form against kv:distro:sys through `link`.
pub struct Runner<'a, R: Read, W: Write> {
    link: &'a mut Link<R, W>,
    pub form: Form,
    pub package: hw::plain::PackageId,
    pub records: Vec<Record>,
    tx_ids: Vec<u64>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn describe_blob(blob: Option<&[u8]>) -> String {
    match blob {
        None => "none".to_string(),
        Some(bytes) => format!("0x{}", hex(bytes)),
    }
}

/// Whether `actual` is the blob `expected` describes; if not, why.
fn check_blob(expected: &Blob, actual: Option<&[u8]>) -> Result<(), String> {
    match (expected, actual) {
        (Blob::None, None) => Ok(()),
        (Blob::Raw(want), Some(got)) if want.as_slice() == got => Ok(()),
        (Blob::List(want), Some(got)) => {
            let got: Vec<Option<ByteBuf>> = rmp_serde::from_slice(got)
                .map_err(|e| format!("blob is not a msgpack array of bin or nil: {e}"))?;
            let got: Vec<Option<Vec<u8>>> = got
                .into_iter()
                .map(|item| item.map(ByteBuf::into_vec))
                .collect();
            if &got == want {
                Ok(())
            } else {
                Err(format!("blob holds {got:?}, expected {want:?}"))
            }
        }
        (want, got) => Err(format!("blob is {}, expected {want:?}", describe_blob(got))),
    }
}

impl<'a, R: Read, W: Write> Runner<'a, R, W> {
    /// A runner of `form` steps for a sender of `package`.
    pub fn new(link: &'a mut Link<R, W>, form: Form, package: hw::plain::PackageId) -> Self {
        Runner {
            link,
            form,
            package,
            records: Vec::new(),
            tx_ids: Vec::new(),
        }
    }

    /// The text of `value` with every transaction id of this run as `<tx>`
    /// and this form's db names (`core-<form>`, `ext-<form>`) as `-<form>`,
    /// so that the same answer reads the same in every form.
    fn normalise(&self, text: String) -> String {
        let own_db = format!("-{}\"", self.form.name());
        self.tx_ids
            .iter()
            .fold(text, |text, tx| text.replace(&tx.to_string(), "<tx>"))
            .replace(&own_db, "-<form>\"")
    }

    /// Run one step: send `request` with `blob`, check the answer against
    /// `expect`; the decoded answer when there is one.
    pub fn step<F: Family>(
        &mut self,
        name: &str,
        request: &F::Request,
        blob: Option<&[u8]>,
        expect: Expect<F::Response>,
    ) -> std::io::Result<Option<F::Response>> {
        let form = self.form;
        let mut record = Record {
            step: name.to_string(),
            family: F::NAME,
            ok: false,
            answer: String::new(),
            problem: None,
        };
        let body = match encode::<F::Request, F::RequestBin>(form, request) {
            Ok(body) => body,
            Err(why) => {
                record.answer = "not sent".to_string();
                record.problem = Some(why);
                self.finish(record)?;
                return Ok(None);
            }
        };
        let answer = match self.link.request(&body, blob)? {
            Ok(answer) => answer,
            Err(why) => {
                record.answer = "no answer".to_string();
                record.problem = Some(format!("no answer: {why}"));
                self.finish(record)?;
                return Ok(None);
            }
        };
        let decoded = match decode::<F::Response, F::ResponseBin>(form, &answer.body) {
            Ok(decoded) => decoded,
            Err(why) => {
                record.answer = format!("undecodable body 0x{}", hex(&answer.body));
                record.problem = Some(why);
                self.finish(record)?;
                return Ok(None);
            }
        };
        let tree = serde_json::to_value(&decoded).unwrap_or(Value::Null);
        let verdict = match &expect {
            Expect::NewTx => match tree.pointer("/BeginTx/tx_id").and_then(Value::as_u64) {
                Some(tx) => {
                    self.tx_ids.push(tx);
                    check_blob(&Blob::None, answer.blob.as_deref())
                }
                None => Err(format!("expected BeginTx {{ tx_id }}, got {decoded:?}")),
            },
            Expect::Answer(want, want_blob) => {
                let want_tree = serde_json::to_value(want).unwrap_or(Value::Null);
                if want_tree != tree {
                    Err(format!("expected {want:?}, got {decoded:?}"))
                } else {
                    check_blob(want_blob, answer.blob.as_deref())
                }
            }
        };
        record.answer = self.normalise(format!(
            "{decoded:?} blob={} metadata={:?}",
            describe_blob(answer.blob.as_deref()),
            answer.metadata,
        ));
        match verdict {
            Ok(()) => record.ok = true,
            Err(why) => record.problem = Some(self.normalise(why)),
        }
        self.finish(record)?;
        Ok(Some(decoded))
    }

    /// The transaction id the last `Expect::NewTx` step got (0 if none did).
    pub fn last_tx(&self) -> u64 {
        self.tx_ids.last().copied().unwrap_or(0)
    }

    fn finish(&mut self, record: Record) -> std::io::Result<()> {
        self.link.report(&json!({
            "kind": "step",
            "form": self.form.name(),
            "step": record.step,
            "family": record.family,
            "ok": record.ok,
            "answer": record.answer,
            "problem": record.problem,
        }))?;
        self.records.push(record);
        Ok(())
    }
}
