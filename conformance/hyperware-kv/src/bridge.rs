//! The framed link to the harness process that relays to `kv:distro:sys`.
//!
//! This program cannot join kvruntime's in-process bus, so a Python process
//! spawned in a real runtime runs it as a subprocess and relays. They speak
//! frames on this program's stdin and stdout:
//!
//! ```text
//! frame  = kind:u8  length:u32be  payload[length]
//! field  = 0x00                          (absent)
//!        | 0x01  length:u32be  bytes     (present)
//! ```
//!
//! | kind | direction | payload |
//! |---|---|---|
//! | `Q` | client -> harness | field(body) field(blob): send this request, await its answer |
//! | `P` | client -> harness | one report line, a UTF-8 JSON object |
//! | `A` | harness -> client | field(body) field(blob) field(metadata): the answer |
//! | `X` | harness -> client | UTF-8 text: no answer (the send failed or timed out) |
//!
//! Nothing else is written to stdout; diagnostics go to stderr.

use std::io::{self, Read, Write};

/// An answer from kv:distro:sys as the harness relayed it.
#[derive(Clone, Debug)]
pub struct Answer {
    pub body: Vec<u8>,
    pub blob: Option<Vec<u8>>,
    pub metadata: Option<String>,
}

/// The client's end of the link.
pub struct Link<R: Read, W: Write> {
    reader: R,
    writer: W,
}

fn put_field(out: &mut Vec<u8>, field: Option<&[u8]>) {
    match field {
        None => out.push(0),
        Some(bytes) => {
            out.push(1);
            out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            out.extend_from_slice(bytes);
        }
    }
}

fn take_field(payload: &[u8], at: &mut usize) -> io::Result<Option<Vec<u8>>> {
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_string());
    let flag = *payload.get(*at).ok_or_else(|| bad("truncated field"))?;
    *at += 1;
    match flag {
        0 => Ok(None),
        1 => {
            let head = payload
                .get(*at..*at + 4)
                .ok_or_else(|| bad("truncated field length"))?;
            let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
            *at += 4;
            let bytes = payload
                .get(*at..*at + len)
                .ok_or_else(|| bad("truncated field bytes"))?;
            *at += len;
            Ok(Some(bytes.to_vec()))
        }
        _ => Err(bad("field flag is neither 0 nor 1")),
    }
}

impl<R: Read, W: Write> Link<R, W> {
    /// A link over `reader` (the harness's frames) and `writer` (ours).
    pub fn new(reader: R, writer: W) -> Self {
        Link { reader, writer }
    }

    fn write_frame(&mut self, kind: u8, payload: &[u8]) -> io::Result<()> {
        self.writer.write_all(&[kind])?;
        self.writer
            .write_all(&(payload.len() as u32).to_be_bytes())?;
        self.writer.write_all(payload)?;
        self.writer.flush()
    }

    fn read_frame(&mut self) -> io::Result<(u8, Vec<u8>)> {
        let mut head = [0u8; 5];
        self.reader.read_exact(&mut head)?;
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut payload = vec![0u8; len];
        self.reader.read_exact(&mut payload)?;
        Ok((head[0], payload))
    }

    /// Send one report line (a JSON object) to the harness.
    pub fn report(&mut self, line: &serde_json::Value) -> io::Result<()> {
        let text = serde_json::to_vec(line).map_err(|e| io::Error::new(io::ErrorKind::Other, e))?;
        self.write_frame(b'P', &text)
    }

    /// Send `body` (and `blob`) to kv:distro:sys; the answer, or why none came.
    pub fn request(
        &mut self,
        body: &[u8],
        blob: Option<&[u8]>,
    ) -> io::Result<Result<Answer, String>> {
        let mut payload = Vec::with_capacity(body.len() + 16);
        put_field(&mut payload, Some(body));
        put_field(&mut payload, blob);
        self.write_frame(b'Q', &payload)?;
        let (kind, payload) = self.read_frame()?;
        match kind {
            b'A' => {
                let mut at = 0;
                let body = take_field(&payload, &mut at)?.unwrap_or_default();
                let blob = take_field(&payload, &mut at)?;
                let metadata = take_field(&payload, &mut at)?
                    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
                Ok(Ok(Answer {
                    body,
                    blob,
                    metadata,
                }))
            }
            b'X' => Ok(Err(String::from_utf8_lossy(&payload).into_owned())),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unknown frame kind {other:#04x} from the harness"),
            )),
        }
    }
}
