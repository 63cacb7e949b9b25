//! What lands of personal data: the PII policy. Columns a schema marks `pii = true` are kept,
//! hashed or dropped, by `--pii` or the column's own `pii_action`.
//!
//! - `hash` is HMAC-SHA256 with the key from `CXLAKE_PII_KEY`, as lowercase hex: the same value
//!   gives the same hash in every dataset and source, so joins still work, and without the key
//!   nobody can test a guess. Before hashing, a `pii_kind = "email"` value is trimmed and
//!   lowercased, a `"phone"` value reduced to its digits and `+`, any other trimmed. A list is
//!   hashed item by item.
//! - `drop` lands the column as nulls (the schema stays the same for every reader).
//! - Free text (`pii_kind = "text"`: messages, comments, notes) is kept or dropped, never
//!   half-masked: under `hash` it is dropped, unless its `pii_action` keeps it.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, ListArray, StringArray};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ColumnType, DatasetSchema};

/// What happens to a personal column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum PiiAction {
    #[default]
    Keep,
    Hash,
    Drop,
}

impl PiiAction {
    pub fn name(self) -> &'static str {
        match self {
            PiiAction::Keep => "keep",
            PiiAction::Hash => "hash",
            PiiAction::Drop => "drop",
        }
    }
}

/// What a personal column holds, for normalising before hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    /// A name, an identifier, an address: hashed as written (trimmed).
    #[default]
    Value,
    Email,
    Phone,
    /// Free text: kept or dropped, never hashed.
    Text,
}

/// The HMAC key, never printed.
#[derive(Clone)]
pub struct PiiKey(Vec<u8>);

impl std::fmt::Debug for PiiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PiiKey(***)")
    }
}

impl PiiKey {
    pub fn new(key: &str) -> PiiKey {
        PiiKey(key.as_bytes().to_vec())
    }

    /// The key in `CXLAKE_PII_KEY`, if set.
    pub fn from_env() -> Option<PiiKey> {
        crate::secrets::var("CXLAKE_PII_KEY").filter(|k| !k.trim().is_empty()).map(|k| PiiKey::new(k.trim()))
    }

    /// Names the key in window records without revealing it.
    pub fn fingerprint(&self) -> String {
        hex::encode(&hmac_sha256(&self.0, b"cxlake pii key fingerprint")[..8])
    }
}

/// The run's policy: the default action for personal columns, and the key when anything is hashed.
#[derive(Debug, Clone, Default)]
pub struct PiiPolicy {
    pub default: PiiAction,
    pub key: Option<PiiKey>,
}

/// A policy resolved for one dataset: the action of each personal column.
#[derive(Debug, Clone)]
pub struct DatasetPii {
    columns: Vec<(usize, PiiAction, PiiKind)>,
    key: Option<PiiKey>,
}

impl PiiPolicy {
    /// The action each personal column of `schema` gets, checked: a hash needs the key, and a
    /// column that must not be null cannot be dropped.
    pub fn for_dataset(&self, schema: &DatasetSchema) -> Result<DatasetPii, String> {
        let mut columns = Vec::new();
        for (index, column) in schema.columns.iter().enumerate().filter(|(_, c)| c.pii) {
            let mut action = column.pii_action.unwrap_or(self.default);
            if action == PiiAction::Hash
                && (column.pii_kind == PiiKind::Text || !hashable(&column.column_type))
            {
                action = PiiAction::Drop;
            }
            if action == PiiAction::Drop && !column.nullable {
                return Err(format!(
                    "{}.{} is personal and declared non-nullable: it cannot be dropped; hash or keep it (pii_action)",
                    schema.qualified_name(),
                    column.name
                ));
            }
            if action == PiiAction::Hash && self.key.is_none() {
                return Err("hashing personal columns needs a key: set CXLAKE_PII_KEY (keep it secret and the same for every run, or hashes will not join)".into());
            }
            if action != PiiAction::Keep {
                columns.push((index, action, column.pii_kind));
            }
        }
        Ok(DatasetPii { columns, key: self.key.clone() })
    }
}

fn hashable(column_type: &ColumnType) -> bool {
    match column_type {
        ColumnType::Utf8 => true,
        ColumnType::List(item) => item.column_type == ColumnType::Utf8,
        _ => false,
    }
}

impl DatasetPii {
    /// What the policy did to this dataset, for its window record: each column not kept, and
    /// the key's fingerprint when something is hashed; `None` when every column lands as
    /// fetched. Equal texts mean equal landed values.
    pub fn recorded(&self, schema: &DatasetSchema) -> Option<String> {
        if self.columns.is_empty() {
            return None;
        }
        let mut parts: Vec<String> = self
            .columns
            .iter()
            .map(|(i, action, _)| format!("{}={}", schema.columns[*i].name, action.name()))
            .collect();
        if let (Some(key), true) = (&self.key, self.columns.iter().any(|(_, a, _)| *a == PiiAction::Hash)) {
            parts.push(format!("key={}", key.fingerprint()));
        }
        Some(parts.join(","))
    }

    pub fn is_noop(&self) -> bool {
        self.columns.is_empty()
    }

    /// The batch as the policy lands it.
    pub fn apply(&self, batch: RecordBatch) -> RecordBatch {
        if self.columns.is_empty() {
            return batch;
        }
        let mut arrays: Vec<ArrayRef> = batch.columns().to_vec();
        for (index, action, kind) in &self.columns {
            let array = &arrays[*index];
            arrays[*index] = match action {
                PiiAction::Keep => continue,
                PiiAction::Drop => arrow::array::new_null_array(array.data_type(), array.len()),
                PiiAction::Hash => {
                    let key = self.key.as_ref().expect("checked by for_dataset");
                    hash_array(array, *kind, key)
                }
            };
        }
        RecordBatch::try_new(batch.schema(), arrays).expect("same schema, same lengths")
    }
}

fn hash_array(array: &ArrayRef, kind: PiiKind, key: &PiiKey) -> ArrayRef {
    match array.as_string_opt::<i32>() {
        Some(strings) => {
            Arc::new(strings.iter().map(|v| v.map(|v| hash_value(key, kind, v))).collect::<StringArray>())
        }
        None => {
            let list = array.as_list::<i32>();
            let (field, offsets, values, nulls) = list.clone().into_parts();
            let hashed = hash_array(&values, kind, key);
            Arc::new(ListArray::new(field, offsets, hashed, nulls))
        }
    }
}

/// The normalised form a value is hashed in.
pub fn normalize(kind: PiiKind, value: &str) -> String {
    match kind {
        PiiKind::Email => value.trim().to_lowercase(),
        PiiKind::Phone => value.chars().filter(|c| c.is_ascii_digit() || *c == '+').collect(),
        PiiKind::Value | PiiKind::Text => value.trim().to_string(),
    }
}

/// HMAC-SHA256 of the normalised value, lowercase hex.
pub fn hash_value(key: &PiiKey, kind: PiiKind, value: &str) -> String {
    hex::encode(hmac_sha256(&key.0, normalize(kind, value).as_bytes()))
}

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(hex::encode(mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn emails_and_phones_are_normalised_before_hashing() {
        let key = PiiKey::new("k1");
        let email = |v| hash_value(&key, PiiKind::Email, v);
        assert_eq!(email(" Jane.Doe@Example.COM "), email("jane.doe@example.com"));
        let phone = |v| hash_value(&key, PiiKind::Phone, v);
        assert_eq!(phone("+32 (0)470 12-34-56"), phone("+320470123456"));
        assert_ne!(
            hash_value(&PiiKey::new("k2"), PiiKind::Email, "jane.doe@example.com"),
            email("jane.doe@example.com")
        );
        assert_eq!(email("x").len(), 64);
        assert!(email("x").chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }
}
