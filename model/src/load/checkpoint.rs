//! Checkpoints: timm's `model.safetensors` (a `state_dict` saved with `safetensors.torch.save_file`)
//! read into named f32 tensors, with every failure reported against the file and the key.
//!
//! Wrapped state dicts: safetensors has no nesting, so a wrapped model's or a training script's
//! dict reaches a `.safetensors` file as flattened keys with a common prefix: `module.` (saved from
//! `DistributedDataParallel` or `DataParallel`), `model.` (a wrapper module, or
//! `{"model": state_dict}` flattened), `state_dict.`, `model_ema.`, ... When no key starts with a
//! RepViT root (`stem.`, `stages.`, `head.`, or the official `features.`, `classifier.`) and every
//! key shares its first dotted component, that component is removed, up to
//! [`MAX_WRAPPER_LEVELS`] times (so `state_dict.module.stem...` loads). timm's own loader strips
//! `module.` the same way (`timm.models.clean_state_dict`). Keys are otherwise kept as they are: a
//! file whose keys still match no root is then reported by the loader with the prefixes it found.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensorError, SafeTensors};

use crate::error::{Error, KeyDifference, read_file};
use crate::families::repvit::official;

/// One tensor of a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// PyTorch shape.
    pub shape: Vec<usize>,
    /// The dtype in the file (`F32`, `F16`, `BF16`, ...).
    pub dtype: String,
    /// The elements converted to f32, or `None` when the dtype is not a float the model accepts.
    pub data: Option<Vec<f32>>,
}

/// Named tensors (a PyTorch `state_dict`), in memory, all floats converted to f32.
///
/// Keys ending in `num_batches_tracked` (BatchNorm's training counter, any dtype) are dropped on
/// reading: inference never needs them. Files with the official RepViT repository's key names are
/// renamed to timm's on reading (`families::repvit::official`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateDict {
    path: PathBuf,
    tensors: BTreeMap<String, Entry>,
    wrapper: String,
}

/// Wrapper prefixes removed at most this many times (see the module docs).
pub const MAX_WRAPPER_LEVELS: usize = 4;

/// First dotted components of a RepViT state dict (timm's and the official repository's names).
const ROOTS: [&str; 5] = ["stem", "stages", "head", "features", "classifier"];

fn first_component(key: &str) -> Option<&str> {
    key.split_once('.').map(|(first, _)| first)
}

/// Removes wrapper prefixes (see the module docs); returns the removed prefix (`""`: none).
fn strip_wrappers(tensors: &mut BTreeMap<String, Entry>) -> String {
    let mut removed = String::new();
    for _ in 0..MAX_WRAPPER_LEVELS {
        let mut firsts = tensors.keys().map(|k| first_component(k));
        let Some(Some(first)) = firsts.next() else {
            break;
        };
        if ROOTS.contains(&first) || !firsts.all(|f| f == Some(first)) {
            break;
        }
        let first = format!("{first}.");
        *tensors = std::mem::take(tensors)
            .into_iter()
            .map(|(k, e)| (k[first.len()..].to_string(), e))
            .collect();
        removed.push_str(&first);
    }
    removed
}

/// Keys that inference never needs.
pub fn ignored_key(key: &str) -> bool {
    key.ends_with("num_batches_tracked")
}

fn convert(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    match dtype {
        Dtype::F32 => Some(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        ),
        Dtype::F16 => Some(
            bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
        ),
        Dtype::BF16 => Some(
            bytes
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
        ),
        _ => None,
    }
}

impl StateDict {
    /// An empty state dict whose errors will name `path`.
    pub fn new(path: impl Into<PathBuf>) -> StateDict {
        StateDict {
            path: path.into(),
            tensors: BTreeMap::new(),
            wrapper: String::new(),
        }
    }

    /// Reads a safetensors file.
    pub fn read(path: impl AsRef<Path>) -> Result<StateDict, Error> {
        let path = path.as_ref();
        let bytes = read_file(path)?;
        StateDict::from_bytes(path, &bytes)
    }

    /// Parses safetensors bytes; `path` only names the source in errors.
    pub fn from_bytes(path: impl Into<PathBuf>, bytes: &[u8]) -> Result<StateDict, Error> {
        let path = path.into();
        let st = SafeTensors::deserialize(bytes).map_err(|e| {
            let hint = match e {
                _ if bytes.len() < 8 => format!("{} bytes, shorter than the 8-byte header length", bytes.len()),
                SafeTensorError::InvalidHeaderLength => {
                    let declared = u64::from_le_bytes(bytes[..8].try_into().unwrap_or([0; 8]));
                    format!("header length {declared} exceeds the file's {} bytes (truncated?)", bytes.len())
                }
                SafeTensorError::MetadataIncompleteBuffer => {
                    format!("the tensors' data ends before the header says it should: {} bytes (truncated?)", bytes.len())
                }
                _ => format!("{} bytes", bytes.len()),
            };
            Error::Format { path: path.clone(), reason: format!("{e}; {hint}") }
        })?;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.iter() {
            if ignored_key(name) {
                continue;
            }
            let dtype = view.dtype();
            let entry = Entry {
                shape: view.shape().to_vec(),
                dtype: dtype.to_string(),
                data: convert(dtype, view.data()),
            };
            tensors.insert(name.to_string(), entry);
        }
        let wrapper = strip_wrappers(&mut tensors);
        // The official repository's names (`features.*`, `classifier.*`) become timm's.
        if official::is_official(tensors.keys().map(String::as_str)) {
            tensors = official::to_timm(&path, tensors)?;
        }
        Ok(StateDict {
            path,
            tensors,
            wrapper,
        })
    }

    /// The wrapper prefix removed from every key on reading (`module.`, `state_dict.module.`, ...),
    /// or `""`.
    pub fn wrapper(&self) -> &str {
        &self.wrapper
    }

    /// A one-line summary of the keys for errors: how many, their first components, and the
    /// wrapper prefix removed if any.
    pub fn describe_keys(&self) -> String {
        let mut firsts: Vec<&str> = Vec::new();
        for k in self.tensors.keys() {
            let f = first_component(k).unwrap_or(k);
            if !firsts.contains(&f) {
                firsts.push(f);
            }
        }
        let shown: Vec<String> = firsts.iter().take(6).map(|f| format!("`{f}`")).collect();
        format!(
            "found {} tensors{}{}{}",
            self.tensors.len(),
            if shown.is_empty() {
                String::new()
            } else {
                format!(" under {}", shown.join(", "))
            },
            if firsts.len() > shown.len() {
                ", ..."
            } else {
                ""
            },
            if self.wrapper.is_empty() {
                String::new()
            } else {
                format!(" (after removing the wrapper prefix `{}`)", self.wrapper)
            }
        )
    }

    /// The file the tensors came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether there is no tensor.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Names, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// The shape of a tensor, if present.
    pub fn shape(&self, key: &str) -> Option<&[usize]> {
        self.tensors.get(key).map(|e| e.shape.as_slice())
    }

    /// [`Error::WrongVariant`] for this file: the variant asked for (`expected`, described), what
    /// the file's shapes describe (`found`), and the first of the asked-for variant's tensors
    /// (`expected_keys`, name and shape in their order) that is absent here or has another shape.
    pub fn wrong_variant(
        &self,
        expected: String,
        found: String,
        expected_keys: Vec<(String, Vec<usize>)>,
    ) -> Error {
        let first_difference =
            expected_keys
                .into_iter()
                .find_map(|(key, shape)| match self.shape(&key) {
                    Some(s) if s == shape.as_slice() => None,
                    s => Some(Box::new(KeyDifference {
                        key,
                        expected: shape,
                        found: s.map(<[usize]>::to_vec),
                    })),
                });
        Error::WrongVariant {
            path: self.path().to_path_buf(),
            expected,
            found,
            first_difference,
        }
    }

    /// A tensor, if present.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.tensors.get(key)
    }

    /// Adds (or replaces) an f32 tensor. Errors when `data` does not hold `shape`'s element count.
    pub fn insert(
        &mut self,
        key: impl Into<String>,
        shape: Vec<usize>,
        data: Vec<f32>,
    ) -> Result<(), Error> {
        let key = key.into();
        let want: usize = shape.iter().product();
        if want != data.len() {
            return Err(Error::Input {
                what: format!("tensor `{key}`"),
                expected: format!("{want} elements for shape {shape:?}"),
                found: format!("{} elements", data.len()),
            });
        }
        self.tensors.insert(
            key,
            Entry {
                shape,
                dtype: "F32".into(),
                data: Some(data),
            },
        );
        Ok(())
    }

    /// Removes a tensor.
    pub fn remove(&mut self, key: &str) -> Option<Entry> {
        self.tensors.remove(key)
    }

    /// Removes and returns the f32 data of `key`, checking its presence, dtype and shape.
    pub fn take(&mut self, key: &str, shape: &[usize]) -> Result<Vec<f32>, Error> {
        let Some(entry) = self.tensors.get(key) else {
            return Err(Error::MissingKey {
                path: self.path.clone(),
                key: key.to_string(),
                expected: shape.to_vec(),
            });
        };
        if entry.shape != shape {
            return Err(Error::WrongShape {
                path: self.path.clone(),
                key: key.to_string(),
                expected: shape.to_vec(),
                found: entry.shape.clone(),
            });
        }
        if entry.data.is_none() {
            return Err(Error::WrongDtype {
                path: self.path.clone(),
                key: key.to_string(),
                found: entry.dtype.clone(),
            });
        }
        let entry = self.tensors.remove(key).and_then(|e| e.data);
        Ok(entry.unwrap_or_default())
    }

    /// Serialises every tensor as f32 safetensors bytes (tensors of unsupported dtype are skipped).
    pub fn to_safetensors(&self) -> Result<Vec<u8>, Error> {
        let bytes: Vec<(&String, Vec<u8>, &Vec<usize>)> = self
            .tensors
            .iter()
            .filter_map(|(k, e)| {
                e.data.as_ref().map(|d| {
                    (
                        k,
                        d.iter().flat_map(|v| v.to_le_bytes()).collect(),
                        &e.shape,
                    )
                })
            })
            .collect();
        let mut views = Vec::with_capacity(bytes.len());
        for (k, b, shape) in &bytes {
            let view = safetensors::tensor::TensorView::new(Dtype::F32, shape.to_vec(), b)
                .map_err(|e| Error::Format {
                    path: self.path.clone(),
                    reason: format!("tensor `{k}`: {e}"),
                })?;
            views.push((k.as_str(), view));
        }
        safetensors::serialize(views, None).map_err(|e| Error::Format {
            path: self.path.clone(),
            reason: e.to_string(),
        })
    }

    /// Writes [`StateDict::to_safetensors`] to a file.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        let bytes = self.to_safetensors()?;
        std::fs::write(path, bytes).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            action: "write",
            source,
        })
    }
}
