//! The crate's error: every failure names the file, the key or input, what was expected and what was
//! found.

use std::fmt;
use std::path::{Path, PathBuf};

/// The first tensor where a checkpoint differs from the variant asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDifference {
    /// The tensor name.
    pub key: String,
    /// Its shape in the variant asked for.
    pub expected: Vec<usize>,
    /// Its shape in the file (`None`: absent).
    pub found: Option<Vec<usize>>,
}

/// Everything that can go wrong while loading a model or running it.
#[derive(Debug)]
pub enum Error {
    /// A file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done ("read", "write").
        action: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a valid safetensors file (truncated, corrupt header, bad offsets).
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A tensor the model needs is absent.
    MissingKey {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        key: String,
        /// The shape that was expected.
        expected: Vec<usize>,
    },
    /// A tensor has another shape than the configuration implies.
    WrongShape {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        key: String,
        /// The shape the configuration implies.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor has a dtype that is not f32, f16 or bf16.
    WrongDtype {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        key: String,
        /// The dtype in the file.
        found: String,
    },
    /// The file holds a tensor the model does not use (most often: another architecture).
    UnexpectedKey {
        /// The file.
        path: PathBuf,
        /// The tensor name.
        key: String,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// The checkpoint holds another variant than the one requested.
    WrongVariant {
        /// The file.
        path: PathBuf,
        /// The requested variant, described.
        expected: String,
        /// What the checkpoint's shapes describe.
        found: String,
        /// The first tensor that differs.
        first_difference: Option<Box<KeyDifference>>,
    },
    /// The checkpoint's shapes describe no RepViT.
    NotRepVit {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The checkpoint's shapes describe no network of a timm MobileNet family (MobileNetV3,
    /// MobileNetV2, EfficientNet; MobileNetV4).
    NotMobileNet {
        /// The file.
        path: PathBuf,
        /// The families the checkpoint was read as (`MobileNetV4`).
        family: &'static str,
        /// Why.
        reason: String,
    },
    /// No variant of that name.
    UnknownVariant {
        /// The name given.
        name: String,
        /// The names accepted, described (each family names its own; see `families/mod.rs`).
        expected: String,
    },
    /// An invalid custom configuration.
    Config {
        /// What is wrong.
        reason: String,
    },
    /// An input (image batch, output buffer, npy file) of the wrong shape or type.
    Input {
        /// Which input.
        what: String,
        /// What was expected.
        expected: String,
        /// What was found.
        found: String,
    },
    /// Memory for a forward pass (a workspace, the input or output of a batch) that would not
    /// fit: the allocator refused it, or its size overflows `usize`.
    OutOfMemory {
        /// What was to be allocated.
        what: String,
        /// Bytes asked for (`None`: more than `usize` can count).
        bytes: Option<usize>,
        /// The NCHW input shape it was for.
        input: [usize; 4],
    },
    /// A kernel refused its arguments (a bug in this crate if the input was validated) or the
    /// requested ISA / thread count is unavailable.
    Kernel {
        /// The layer.
        layer: String,
        /// The kernel crate's error.
        source: mobile_cnn_kernels::Error,
    },
}

fn shape(s: &[usize]) -> String {
    let parts: Vec<String> = s.iter().map(usize::to_string).collect();
    format!("[{}]", parts.join(", "))
}

/// The bytes of the file at `path`, or [`Error::Io`] naming it.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        action: "read",
        source,
    })
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io {
                path,
                action,
                source,
            } => write!(f, "{}: cannot {action}: {source}", path.display()),
            Error::Format { path, reason } => {
                write!(
                    f,
                    "{}: not a valid safetensors file: {reason}",
                    path.display()
                )
            }
            Error::MissingKey {
                path,
                key,
                expected,
            } => write!(
                f,
                "{}: missing tensor `{key}`: expected shape {}, found no such key",
                path.display(),
                shape(expected)
            ),
            Error::WrongShape {
                path,
                key,
                expected,
                found,
            } => write!(
                f,
                "{}: tensor `{key}`: expected shape {}, found {}",
                path.display(),
                shape(expected),
                shape(found)
            ),
            Error::WrongDtype { path, key, found } => write!(
                f,
                "{}: tensor `{key}`: expected dtype F32, F16 or BF16, found {found}",
                path.display()
            ),
            Error::UnexpectedKey {
                path,
                key,
                shape: s,
            } => write!(
                f,
                "{}: unexpected tensor `{key}` (shape {}): expected only the keys of the detected architecture",
                path.display(),
                shape(s)
            ),
            Error::WrongVariant {
                path,
                expected,
                found,
                first_difference,
            } => {
                write!(
                    f,
                    "{}: checkpoint of another variant: expected {expected}, found {found}",
                    path.display()
                )?;
                match first_difference.as_deref() {
                    Some(KeyDifference {
                        key,
                        expected: e,
                        found: Some(fd),
                    }) => {
                        write!(
                            f,
                            "; first difference: `{key}` expected shape {}, found {}",
                            shape(e),
                            shape(fd)
                        )
                    }
                    Some(KeyDifference {
                        key,
                        expected: e,
                        found: None,
                    }) => {
                        write!(
                            f,
                            "; first difference: `{key}` expected shape {}, found no such key",
                            shape(e)
                        )
                    }
                    None => Ok(()),
                }
            }
            Error::NotRepVit { path, reason } => {
                write!(f, "{}: not a RepViT checkpoint: {reason}", path.display())
            }
            Error::NotMobileNet {
                path,
                family,
                reason,
            } => write!(
                f,
                "{}: not a timm {family} checkpoint: {reason}",
                path.display()
            ),
            Error::UnknownVariant { name, expected } => {
                write!(f, "unknown architecture `{name}`: expected {expected}")
            }
            Error::Config { reason } => write!(f, "invalid network configuration: {reason}"),
            Error::Input {
                what,
                expected,
                found,
            } => write!(f, "{what}: expected {expected}, found {found}"),
            Error::OutOfMemory {
                what,
                bytes: Some(bytes),
                input,
            } => write!(
                f,
                "{what} for NCHW input {input:?}: {bytes} bytes ({:.1} GiB) could not be allocated",
                *bytes as f64 / f64::from(1u32 << 30)
            ),
            Error::OutOfMemory {
                what,
                bytes: None,
                input,
            } => write!(
                f,
                "{what} for NCHW input {input:?}: more bytes than fit in usize ({})",
                usize::MAX
            ),
            Error::Kernel { layer, source } => write!(f, "{layer}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Kernel { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Attaches a layer name to a kernel error.
pub(crate) trait KernelContext<T> {
    fn layer(self, layer: impl FnOnce() -> String) -> Result<T, Error>;
}

impl<T> KernelContext<T> for Result<T, mobile_cnn_kernels::Error> {
    fn layer(self, layer: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|source| Error::Kernel {
            layer: layer(),
            source,
        })
    }
}
