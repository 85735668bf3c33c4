//! A decision record as JSON, written by hand: byte for byte what
//! `serde_json` writes for a [`Record`] (a test in the parent module holds
//! the two together), without serde's per-key escaping and dispatch; this
//! runs on the request path for every record logged. And the object added
//! to a written record, masked.

use regorus::Value;

use super::{mask, Record};

impl Record<'_> {
    /// Writes the record as one JSON object, without a newline, to `out`
    /// (appended): byte for byte what `serde_json` writes for it (a test
    /// holds the two together), without its per-key escaping and
    /// dispatch. This runs on the request path for every record logged.
    pub fn write(&self, out: &mut Vec<u8>) {
        let w = &mut Out(out);
        w.field(b"{\"time\":", &self.time);
        w.field(b",\"decision_id\":", &self.decision_id);
        w.field(b",\"uid\":", self.uid);
        w.field(b",\"webhook\":", self.webhook);
        w.field(b",\"operation\":", self.operation);
        w.field(b",\"kind\":{\"group\":", self.kind.group);
        w.field(b",\"version\":", self.kind.version);
        w.field(b",\"kind\":", self.kind.kind);
        w.field(b"},\"resource\":{\"group\":", self.resource.group);
        w.field(b",\"version\":", self.resource.version);
        w.field(b",\"resource\":", self.resource.resource);
        w.raw(b"}");
        w.optional(b",\"sub_resource\":", self.sub_resource);
        w.field(b",\"namespace\":", self.namespace);
        w.field(b",\"name\":", self.name);
        w.field(b",\"user\":{\"username\":", self.user.username);
        w.raw(b",\"groups\":");
        w.strs(self.user.groups.iter().copied());
        w.raw(b"},\"dry_run\":");
        w.bool(self.dry_run);
        w.raw(b",\"allowed\":");
        w.bool(self.allowed);
        if let Some(code) = self.code {
            w.raw(b",\"code\":");
            w.num(u64::from(code));
        }
        w.raw(b",\"violations\":");
        w.objects(&self.violations, |w, v| {
            w.field(b"{\"policy\":", v.policy);
            w.field(b",\"enforcement\":", v.enforcement);
            w.field(b",\"message\":", &v.message);
            w.optional(b",\"path\":", v.path);
            w.optional(b",\"control\":", v.control);
        });
        w.raw(b",\"warnings\":");
        w.strs(self.warnings.iter().map(String::as_str));
        w.raw(b",\"exceptions\":");
        w.objects(&self.exceptions, |w, e| {
            w.field(b"{\"exception\":", e.exception);
            w.field(b",\"policy\":", e.policy);
            w.field(b",\"owner\":", e.owner);
            w.field(b",\"expires\":", e.expires);
            w.optional(b",\"path\":", e.path);
        });
        if let Some(patch) = &self.patch {
            w.raw(b",\"patch\":{\"operations\":");
            w.num(patch.operations as u64);
            w.raw(b",\"policies\":");
            w.strs(patch.policies.iter().map(String::as_str));
            w.raw(b"}");
        }
        if !self.policy_errors.is_empty() {
            w.raw(b",\"policy_errors\":");
            w.strs(self.policy_errors.iter().map(String::as_str));
        }
        w.optional(b",\"error\":", self.error.as_deref());
        w.field(b",\"bundle_revision\":", self.bundle_revision);
        w.raw(b",\"duration_us\":");
        w.num(self.duration_us);
        w.field(b",\"replica\":", self.replica);
        w.raw(b"}");
    }
}

/// JSON written by hand for [`Record::write`]: keys are constants written
/// with their punctuation in one piece (nothing to escape); strings are
/// escaped exactly as `serde_json` escapes them, eight bytes at a time
/// where nothing needs escaping.
struct Out<'a>(&'a mut Vec<u8>);

impl Out<'_> {
    fn raw(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }

    /// `key` (written as it is: the key with its punctuation), then
    /// `value` as a JSON string.
    fn field(&mut self, key: &[u8], value: &str) {
        self.raw(key);
        self.str(value);
    }

    /// [`Out::field`] when there is a value; nothing when there is none.
    fn optional(&mut self, key: &[u8], value: Option<&str>) {
        if let Some(value) = value {
            self.field(key, value);
        }
    }

    /// An array of objects: `each` writes an item's fields from its `{`;
    /// the closing `}` and the commas are written here.
    fn objects<T>(&mut self, items: &[T], each: impl Fn(&mut Self, &T)) {
        self.0.push(b'[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.0.push(b',');
            }
            each(self, item);
            self.0.push(b'}');
        }
        self.0.push(b']');
    }

    fn bool(&mut self, b: bool) {
        self.raw(if b { b"true" } else { b"false" });
    }

    fn num(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.0.extend_from_slice(&digits[at..]);
    }

    fn strs<'s>(&mut self, items: impl Iterator<Item = &'s str>) {
        self.0.push(b'[');
        for (i, s) in items.enumerate() {
            if i > 0 {
                self.0.push(b',');
            }
            self.str(s);
        }
        self.0.push(b']');
    }

    /// A JSON string: `"` and `\` escaped with a backslash, control
    /// characters as `\b \f \n \r \t` or `\u00XX`, everything else as it
    /// is (as `serde_json` does).
    fn str(&mut self, s: &str) {
        const LO: u64 = 0x0101_0101_0101_0101;
        const HI: u64 = 0x8080_8080_8080_8080;
        // Whether any byte of `w` is below 0x20, a quote or a backslash.
        let special = |w: u64| {
            let zero = |v: u64| v.wrapping_sub(LO) & !v & HI;
            (w.wrapping_sub(LO * 0x20) & !w & HI) | zero(w ^ (LO * 0x22)) | zero(w ^ (LO * 0x5c))
                != 0
        };
        let bytes = s.as_bytes();
        self.0.push(b'"');
        let mut clean_from = 0;
        let mut i = 0;
        while i < bytes.len() {
            if let Some(chunk) = bytes[i..].first_chunk::<8>() {
                if !special(u64::from_le_bytes(*chunk)) {
                    i += 8;
                    continue;
                }
            }
            let b = bytes[i];
            let escape: &[u8] = match b {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0x08 => b"\\b",
                0x0c => b"\\f",
                0..=0x1f => b"",
                _ => {
                    i += 1;
                    continue;
                }
            };
            self.0.extend_from_slice(&bytes[clean_from..i]);
            if escape.is_empty() {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                self.0.extend_from_slice(b"\\u00");
                self.0.push(HEX[usize::from(b >> 4)]);
                self.0.push(HEX[usize::from(b & 0xf)]);
            } else {
                self.0.extend_from_slice(escape);
            }
            i += 1;
            clean_from = i;
        }
        self.0.extend_from_slice(&bytes[clean_from..]);
        self.0.push(b'"');
    }
}

/// Adds the `object` field to a record written by [`Record::write`] (the
/// last byte of `line` must be that record's closing brace): the object,
/// converted from the engine's value, with what `masks` name removed (JSON
/// pointers; `*` matches any key or index). On an error `line` is as it
/// was.
pub fn append_object(
    line: &mut Vec<u8>,
    object: &Value,
    masks: &[String],
) -> Result<(), serde_json::Error> {
    let mut json = serde_json::to_value(object)?;
    for m in masks {
        mask(&mut json, m);
    }
    let written = serde_json::to_vec(&json)?;
    if line.last() == Some(&b'}') {
        line.pop();
        line.extend_from_slice(b",\"object\":");
        line.extend_from_slice(&written);
        line.push(b'}');
    }
    Ok(())
}
