//! The protobuf wire format, small and hand-written: enough to read and write the messages of
//! `proto/` without generated code (so the wasm filter stays small). Shared by [`crate::grpc`]
//! (Seldon) and [`crate::grpc_v2`] (Open Inference Protocol).
//!
//! Reading is lenient the way protobuf parsers must be: unknown fields are skipped by the
//! callers, and repeated scalars are accepted packed or unpacked.

use crate::ProtocolError;

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn put_tag(out: &mut Vec<u8>, number: u32, wire: u8) {
    put_varint(out, (u64::from(number) << 3) | u64::from(wire));
}

pub(crate) fn put_varint_field(out: &mut Vec<u8>, number: u32, v: u64) {
    put_tag(out, number, 0);
    put_varint(out, v);
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, number: u32, b: &[u8]) {
    put_tag(out, number, 2);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

pub(crate) fn put_message(out: &mut Vec<u8>, number: u32, m: &[u8]) {
    put_bytes(out, number, m);
}

/// A field's value by wire type.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(&'a [u8]),
    Fixed32(u32),
}

pub(crate) fn truncated(context: &'static str, field: &'static str) -> ProtocolError {
    ProtocolError::Field {
        context,
        field,
        reason: "is truncated".into(),
    }
}

/// The fields of one message, in order; an error ends the iteration. `context` names the
/// message family in errors (e.g. `"SeldonMessage (gRPC)"`).
pub(crate) struct Fields<'a> {
    rest: &'a [u8],
    failed: bool,
    context: &'static str,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(pb: &'a [u8], context: &'static str) -> Self {
        Self {
            rest: pb,
            failed: false,
            context,
        }
    }

    fn next_field(&mut self) -> Result<(u32, Wire<'a>), ProtocolError> {
        let cx = self.context;
        let key = read_varint(&mut self.rest, cx)?;
        let number = u32::try_from(key >> 3).map_err(|_| truncated(cx, "field number"))?;
        let wire = match key & 7 {
            0 => Wire::Varint(read_varint(&mut self.rest, cx)?),
            1 => {
                let (b, rest) = self
                    .rest
                    .split_first_chunk::<8>()
                    .ok_or_else(|| truncated(cx, "fixed64 field"))?;
                self.rest = rest;
                Wire::Fixed64(u64::from_le_bytes(*b))
            }
            2 => {
                let len = usize::try_from(read_varint(&mut self.rest, cx)?)
                    .map_err(|_| truncated(cx, "length"))?;
                if self.rest.len() < len {
                    return Err(truncated(cx, "length-delimited field"));
                }
                let (b, rest) = self.rest.split_at(len);
                self.rest = rest;
                Wire::Len(b)
            }
            5 => {
                let (b, rest) = self
                    .rest
                    .split_first_chunk::<4>()
                    .ok_or_else(|| truncated(cx, "fixed32 field"))?;
                self.rest = rest;
                Wire::Fixed32(u32::from_le_bytes(*b))
            }
            w => {
                return Err(ProtocolError::Field {
                    context: cx,
                    field: "wire type",
                    reason: format!("{w} is not supported (groups are not used by Seldon)"),
                });
            }
        };
        Ok((number, wire))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Wire<'a>), ProtocolError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let field = self.next_field();
        self.failed = field.is_err();
        Some(field)
    }
}

/// The varints of a packed field.
pub(crate) struct Varints<'a> {
    rest: &'a [u8],
    context: &'static str,
}

impl<'a> Varints<'a> {
    pub(crate) fn new(packed: &'a [u8], context: &'static str) -> Self {
        Self {
            rest: packed,
            context,
        }
    }
}

impl Iterator for Varints<'_> {
    type Item = Result<u64, ProtocolError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let v = read_varint(&mut self.rest, self.context);
        if v.is_err() {
            self.rest = &[];
        }
        Some(v)
    }
}

pub(crate) fn read_varint(buf: &mut &[u8], context: &'static str) -> Result<u64, ProtocolError> {
    let mut v = 0u64;
    for i in 0..10 {
        let (&b, rest) = buf
            .split_first()
            .ok_or_else(|| truncated(context, "varint"))?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err(truncated(context, "varint (longer than 10 bytes)"))
}
