//! The three encodings a sender of these types may use, and the decoding of
//! an answer into the sender's own types.
//!
//! | form | encoder | byte fields |
//! |---|---|---|
//! | `bin` | `rmp_serde::to_vec_named` on the `bin` types | msgpack `bin` (serde_bytes): the golden vectors' canonical form |
//! | `array` | `rmp_serde::to_vec_named` on the `plain` types | msgpack arrays of ints (rmp-serde's default for `Vec<u8>`) |
//! | `json` | `serde_json::to_vec` on the `plain` types | JSON arrays of numbers: what process_lib sends |
//!
//! `to_vec_named` writes structs as maps keyed by field name (plain
//! `rmp_serde::to_vec` would write them as arrays, which no kv module reads).
//! An answer is decoded with the decoder of its request's form into that
//! form's types: `rmp_serde::from_slice` into the `bin` or `plain` types,
//! `serde_json::from_slice` into the `plain` types, as process_lib does.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// One of the three encodings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    Bin,
    Array,
    Json,
}

impl Form {
    /// Every form, the canonical one first.
    pub const ALL: [Form; 3] = [Form::Bin, Form::Array, Form::Json];

    /// The form's name on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Form::Bin => "bin",
            Form::Array => "array",
            Form::Json => "json",
        }
    }

    /// The form called `name`.
    pub fn parse(name: &str) -> Option<Form> {
        Form::ALL.into_iter().find(|form| form.name() == name)
    }
}

/// The same value in another declaration of the same shape (`plain` <->
/// `bin`), through serde's data model. Only for building and comparing
/// values: the bytes on the wire are always written and read directly.
fn convert<A: Serialize, B: DeserializeOwned>(value: &A) -> Result<B, String> {
    let tree = serde_json::to_value(value).map_err(|e| format!("convert: {e}"))?;
    serde_json::from_value(tree).map_err(|e| format!("convert: {e}"))
}

/// `request` (a value of the `plain` types `P`) encoded in `form`; `B` is the
/// `bin` declaration of the same type.
pub fn encode<P, B>(form: Form, request: &P) -> Result<Vec<u8>, String>
where
    P: Serialize,
    B: Serialize + DeserializeOwned,
{
    match form {
        Form::Bin => {
            let request: B = convert(request)?;
            rmp_serde::to_vec_named(&request).map_err(|e| format!("rmp-serde encode: {e}"))
        }
        Form::Array => {
            rmp_serde::to_vec_named(request).map_err(|e| format!("rmp-serde encode: {e}"))
        }
        Form::Json => serde_json::to_vec(request).map_err(|e| format!("serde_json encode: {e}")),
    }
}

/// `body` decoded as the sender of `form` decodes it: into `B` (`bin`) or
/// `P` (`plain`); returned as `P` for comparison.
pub fn decode<P, B>(form: Form, body: &[u8]) -> Result<P, String>
where
    P: Serialize + DeserializeOwned,
    B: Serialize + DeserializeOwned,
{
    match form {
        Form::Bin => {
            let answer: B =
                rmp_serde::from_slice(body).map_err(|e| format!("rmp-serde decode: {e}"))?;
            convert(&answer)
        }
        Form::Array => rmp_serde::from_slice(body).map_err(|e| format!("rmp-serde decode: {e}")),
        Form::Json => serde_json::from_slice(body).map_err(|e| format!("serde_json decode: {e}")),
    }
}
