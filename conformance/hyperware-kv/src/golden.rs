//! `--golden PATH`: check these types on kvruntime's golden vectors, offline.
//!
//! For every body vector (`canonical` and `accepted`), its `meaning` is
//! turned into the serde JSON of the `plain` types (PROTOCOL.md's two
//! readability substitutions undone: a `"name:publisher"` PackageId, or a
//! `"process:name:publisher"` ProcessId, back to its map; a hex byte string
//! back to its bytes), read into kvruntime's types, and:
//!
//! - decoding `hex` with rmp-serde into the `bin` types must give that value;
//! - for a `canonical` vector, `rmp_serde::to_vec_named` of the value in the
//!   `bin` types must give `hex` byte for byte;
//! - when the vector gives its JSON form (`json`) and its ARRAY form
//!   (`array_hex`), the `plain` types must read each into that value, and
//!   `serde_json::to_vec` / `rmp_serde::to_vec_named` of the value must write
//!   each byte for byte;
//! - when the value is one Hyperware's own types can hold, the same checks
//!   run on process_lib's declaration.
//!
//! Every `hyperware_answers` vector (the answer to one of Hyperware's actions
//! in the JSON and ARRAY forms) must be read by process_lib's own
//! `KvResponse` and by kvruntime's, and written back byte for byte.
//!
//! One JSON line per vector on stdout; exit status 0 when every check held.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::extensions as ext;
use crate::forms::{decode, encode, Form};
use crate::hyperware as hw;

/// Fields and newtype tags whose string payload is a byte string.
const BYTE_FIELDS: [&str; 5] = ["key", "prefix", "start", "end", "cursor"];
const BYTE_TAGS: [&str; 2] = ["Get", "Exists"];

fn unhex(text: &str) -> Result<Value, String> {
    if text.len() % 2 != 0 {
        return Err(format!("odd-length hex {text:?}"));
    }
    (0..text.len())
        .step_by(2)
        .map(|at| {
            u8::from_str_radix(&text[at..at + 2], 16)
                .map(|byte| json!(byte))
                .map_err(|e| format!("hex {text:?}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

fn package(text: &str) -> Result<Value, String> {
    let (name, publisher) = text
        .split_once(':')
        .ok_or_else(|| format!("PackageId {text:?} has no ':'"))?;
    Ok(json!({"package_name": name, "publisher_node": publisher}))
}

fn process(text: &str) -> Result<Value, String> {
    let mut parts = text.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(process), Some(name), Some(publisher)) => Ok(json!({
            "process_name": process, "package_name": name, "publisher_node": publisher,
        })),
        _ => Err(format!(
            "ProcessId {text:?} is not process:package:publisher"
        )),
    }
}

/// The serde JSON of the plain types for a vector's `meaning`.
fn wire_tree(meaning: &Value) -> Result<Value, String> {
    match meaning {
        Value::Object(map) => {
            let mut out = Map::new();
            for (name, value) in map {
                let value = match (name.as_str(), value) {
                    (field, Value::String(text)) if BYTE_FIELDS.contains(&field) => unhex(text)?,
                    (tag, Value::String(text)) if BYTE_TAGS.contains(&tag) => unhex(text)?,
                    ("package_id", Value::String(text)) => package(text)?,
                    ("process", Value::String(text)) => process(text)?,
                    ("NoDb", Value::Array(items)) if items.len() == 2 => {
                        let id = items[0]
                            .as_str()
                            .ok_or("NoDb's PackageId is not a string")?;
                        json!([package(id)?, items[1]])
                    }
                    _ => wire_tree(value)?,
                };
                out.insert(name.clone(), value);
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => items
            .iter()
            .map(wire_tree)
            .collect::<Result<_, _>>()
            .map(Value::Array),
        other => Ok(other.clone()),
    }
}

/// A vector's body in each form it gives: the `hex` (`bin`), and for a
/// canonical vector its `array_hex` and `json`.
struct Bodies {
    bin: Vec<u8>,
    array: Option<Vec<u8>>,
    json: Option<Vec<u8>>,
}

/// The checks of one body in one form on one declaration (`P` plain, `B` bin):
/// it decodes to `tree`, and (when `canonical`) `tree` encodes to it.
fn check_form<P, B>(
    form: Form,
    value: &P,
    tree: &Value,
    body: &[u8],
    canonical: bool,
    problems: &mut Vec<String>,
) where
    P: Serialize + DeserializeOwned,
    B: Serialize + DeserializeOwned,
{
    let name = form.name();
    match decode::<P, B>(form, body) {
        Ok(decoded) => {
            let decoded = serde_json::to_value(&decoded).unwrap_or(Value::Null);
            if &decoded != tree {
                problems.push(format!("{name}: decodes to {decoded}, meaning {tree}"));
            }
        }
        Err(why) => problems.push(format!("{name}: {why}")),
    }
    if canonical {
        match encode::<P, B>(form, value) {
            Ok(encoded) if encoded == body => {}
            Ok(encoded) => problems.push(format!("{name}: encodes to {}", hex(&encoded))),
            Err(why) => problems.push(format!("{name}: {why}")),
        }
    }
}

/// The checks of one vector on one declaration (`P` plain, `B` bin); None
/// when the declaration cannot hold the value.
fn check<P, B>(tree: &Value, bodies: &Bodies, canonical: bool) -> Option<Vec<String>>
where
    P: Serialize + DeserializeOwned,
    B: Serialize + DeserializeOwned,
{
    let value: P = serde_json::from_value(tree.clone()).ok()?;
    let mut problems = Vec::new();
    check_form::<P, B>(
        Form::Bin,
        &value,
        tree,
        &bodies.bin,
        canonical,
        &mut problems,
    );
    if let Some(array) = &bodies.array {
        check_form::<P, B>(Form::Array, &value, tree, array, canonical, &mut problems);
    }
    if let Some(json) = &bodies.json {
        check_form::<P, B>(Form::Json, &value, tree, json, canonical, &mut problems);
    }
    Some(problems)
}

/// `body`, in `form`, read by the `plain` types `P` and written back byte for byte.
fn reads_back<P, B>(form: Form, body: &[u8]) -> Result<(), String>
where
    P: Serialize + DeserializeOwned,
    B: Serialize + DeserializeOwned,
{
    let value: P = decode::<P, B>(form, body)?;
    let again = encode::<P, B>(form, &value)?;
    if again == body {
        Ok(())
    } else {
        Err(format!("{}: writes back as {}", form.name(), hex(&again)))
    }
}

/// Check one `hyperware_answers` vector: its problems.
fn check_answer(vector: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let json = vector["json"].as_str().unwrap_or("").as_bytes().to_vec();
    let array = match unhex(vector["array_hex"].as_str().unwrap_or("")) {
        Ok(Value::Array(bytes)) => bytes
            .iter()
            .map(|b| b.as_u64().unwrap_or(0) as u8)
            .collect::<Vec<u8>>(),
        _ => Vec::new(),
    };
    for (form, body) in [(Form::Json, &json), (Form::Array, &array)] {
        if let Err(why) = reads_back::<hw::plain::KvResponse, hw::bin::KvResponse>(form, body) {
            problems.push(format!("hyperware: {why}"));
        }
        if let Err(why) = reads_back::<ext::plain::KvResponse, ext::bin::KvResponse>(form, body) {
            problems.push(format!("kvruntime: {why}"));
        }
    }
    problems
}

fn bytes_of(text: Option<&str>) -> Option<Vec<u8>> {
    match unhex(text?) {
        Ok(Value::Array(bytes)) => Some(
            bytes
                .iter()
                .map(|b| b.as_u64().unwrap_or(0) as u8)
                .collect(),
        ),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Check every body vector of the golden file at `path`; whether all held.
pub fn run(path: &str) -> Result<bool, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let file: Value = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    let mut all_ok = true;
    for list in ["canonical", "accepted"] {
        let vectors = file[list]
            .as_array()
            .ok_or_else(|| format!("{path}: no {list} list"))?;
        for vector in vectors {
            let name = vector["name"].as_str().unwrap_or("?");
            let kind = vector["kind"].as_str().unwrap_or("?");
            let body = Bodies {
                bin: bytes_of(vector["hex"].as_str()).unwrap_or_default(),
                array: bytes_of(vector["array_hex"].as_str()),
                json: vector["json"].as_str().map(|text| text.as_bytes().to_vec()),
            };
            let canonical = list == "canonical";
            let outcome = wire_tree(&vector["meaning"]).map(|tree| {
                let (kvruntime, hyperware) = if kind == "request" {
                    (
                        check::<ext::plain::KvRequest, ext::bin::KvRequest>(
                            &tree, &body, canonical,
                        ),
                        check::<hw::plain::KvRequest, hw::bin::KvRequest>(&tree, &body, canonical),
                    )
                } else {
                    (
                        check::<ext::plain::KvResponse, ext::bin::KvResponse>(
                            &tree, &body, canonical,
                        ),
                        check::<hw::plain::KvResponse, hw::bin::KvResponse>(
                            &tree, &body, canonical,
                        ),
                    )
                };
                let kvruntime = kvruntime
                    .unwrap_or_else(|| vec!["kvruntime's types cannot hold the meaning".into()]);
                (kvruntime, hyperware)
            });
            let (problems, hyperware) = match outcome {
                Ok((mut problems, hyperware)) => {
                    let held = hyperware.is_some();
                    problems.extend(
                        hyperware
                            .unwrap_or_default()
                            .into_iter()
                            .map(|p| format!("hyperware: {p}")),
                    );
                    (problems, held)
                }
                Err(why) => (vec![why], false),
            };
            all_ok &= problems.is_empty();
            println!(
                "{}",
                json!({
                    "list": list, "name": name, "kind": kind,
                    "ok": problems.is_empty(), "hyperware": hyperware, "problems": problems,
                })
            );
        }
    }
    let answers = file["hyperware_answers"]
        .as_array()
        .ok_or_else(|| format!("{path}: no hyperware_answers list"))?;
    for vector in answers {
        let problems = check_answer(vector);
        all_ok &= problems.is_empty();
        println!(
            "{}",
            json!({
                "list": "hyperware_answers", "name": vector["name"].as_str().unwrap_or("?"),
                "kind": "response", "ok": problems.is_empty(), "hyperware": true,
                "problems": problems,
            })
        );
    }
    Ok(all_ok)
}
