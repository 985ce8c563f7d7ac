//! The process-wide ONNX Runtime: which library to dlopen, threads, execution provider.

use std::path::PathBuf;
use std::sync::OnceLock;

use ort::environment::Environment;

use crate::error::OnnxError;

/// Env var naming `libonnxruntime.so.1.31.1` (the name the `ort` crate itself reads).
pub const ORT_DYLIB_PATH: &str = "ORT_DYLIB_PATH";
/// Env var: `true` registers the CUDA execution provider (crate feature `cuda`).
pub const SELDON_ONNX_CUDA: &str = "SELDON_ONNX_CUDA";
/// Env var: sessions per model (concurrent inferences), default min(cores, 4).
pub const SELDON_ONNX_SESSIONS: &str = "SELDON_ONNX_SESSIONS";
/// Env var: intra-op threads per session, default 1 (small tabular models gain nothing
/// from more, and sessions run in parallel instead).
pub const SELDON_ONNX_THREADS: &str = "SELDON_ONNX_THREADS";

/// How sessions are created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// `libonnxruntime.so` to load (`ORT_DYLIB_PATH`).
    pub library: Option<PathBuf>,
    /// Register the CUDA execution provider (falls back to CPU if it cannot register).
    pub cuda: bool,
    /// Sessions per model, each serving one inference at a time.
    pub sessions: usize,
    /// Intra-op threads of each session.
    pub intra_threads: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        RuntimeConfig {
            library: None,
            cuda: false,
            sessions: cores.clamp(1, 4),
            intra_threads: 1,
        }
    }
}

impl RuntimeConfig {
    /// Defaults overridden by `ORT_DYLIB_PATH`, `SELDON_ONNX_CUDA`, `SELDON_ONNX_SESSIONS`,
    /// `SELDON_ONNX_THREADS`.
    pub fn from_env() -> Result<Self, OnnxError> {
        let mut c = RuntimeConfig::default();
        if let Some(p) = std::env::var_os(ORT_DYLIB_PATH).filter(|p| !p.is_empty()) {
            c.library = Some(PathBuf::from(p));
        }
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        if let Some(v) = var(SELDON_ONNX_CUDA) {
            c.cuda = match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => {
                    return Err(OnnxError::Setting {
                        name: SELDON_ONNX_CUDA,
                        value: v,
                    });
                }
            };
        }
        for (name, slot) in [
            (SELDON_ONNX_SESSIONS, &mut c.sessions),
            (SELDON_ONNX_THREADS, &mut c.intra_threads),
        ] {
            if let Some(v) = var(name) {
                *slot = v
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(OnnxError::Setting { name, value: v })?;
            }
        }
        Ok(c)
    }
}

static ENVIRONMENT: OnceLock<Environment> = OnceLock::new();

/// The ONNX Runtime environment, loading the library on first use.
///
/// The library is loaded once per process; later calls with another path get the first
/// library (ONNX Runtime cannot be unloaded).
pub fn environment(config: &RuntimeConfig) -> Result<Environment, OnnxError> {
    if let Some(env) = ENVIRONMENT.get() {
        return Ok(env.clone());
    }
    let path = config.library.clone().ok_or(OnnxError::NoLibrary)?;
    if !path.is_file() {
        return Err(OnnxError::LibraryMissing(path));
    }
    let builder = ort::init_from(&path).map_err(|e| OnnxError::Library {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let env = builder
        .with_name("seldon-onnx")
        .build()
        .map_err(|e| OnnxError::Library {
            path: path.clone(),
            message: e.to_string(),
        })?;
    tracing::info!(library = %path.display(), "ONNX Runtime loaded");
    Ok(ENVIRONMENT.get_or_init(|| env).clone())
}
