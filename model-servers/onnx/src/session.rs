//! One ONNX graph behind a small pool of `ort` sessions: typed inputs in, named outputs out.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ort::session::Session;
use ort::value::{DynValue, Tensor as OrtTensor, TensorElementType, ValueType};
use seldon_protocol::v1::MessageMetadata;
use seldon_serving::{ModelError, Tensor, Values};

use crate::error::OnnxError;
use crate::runtime::{RuntimeConfig, environment};

/// Input elements from which inference moves to the blocking pool.
pub const BLOCKING_ELEMENTS: usize = 16 * 1024;

/// Element type of a graph input or output, as far as serving cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemType {
    F32,
    F64,
    I64,
    I32,
    Bool,
    Str,
    /// Any other type (f16, u8, maps, sequences): accepted in metadata, refused at run time.
    Other,
}

impl ElemType {
    fn from_ort(t: &ValueType) -> Self {
        match t {
            ValueType::Tensor { ty, .. } => match ty {
                TensorElementType::Float32 => ElemType::F32,
                TensorElementType::Float64 => ElemType::F64,
                TensorElementType::Int64 => ElemType::I64,
                TensorElementType::Int32 => ElemType::I32,
                TensorElementType::Bool => ElemType::Bool,
                TensorElementType::String => ElemType::Str,
                _ => ElemType::Other,
            },
            _ => ElemType::Other,
        }
    }

    /// The Open Inference Protocol datatype name.
    pub fn v2(self) -> &'static str {
        match self {
            ElemType::F32 => "FP32",
            ElemType::F64 => "FP64",
            ElemType::I64 => "INT64",
            ElemType::I32 => "INT32",
            ElemType::Bool => "BOOL",
            ElemType::Str | ElemType::Other => "BYTES",
        }
    }
}

/// A graph input or output: name, element type, declared shape (-1 = dynamic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoSpec {
    pub name: String,
    pub elem: ElemType,
    pub shape: Vec<i64>,
}

impl IoSpec {
    /// As Seldon v1 metadata (which the server also turns into v2 metadata).
    pub fn metadata(&self) -> MessageMetadata {
        MessageMetadata {
            messagetype: None,
            schema: None,
            name: Some(self.name.clone()),
            datatype: Some(self.elem.v2().to_string()),
            shape: Some(self.shape.clone()),
            extra: Default::default(),
        }
    }
}

fn spec(name: &str, t: &ValueType) -> IoSpec {
    let shape = match t {
        ValueType::Tensor { shape, .. } => shape.iter().copied().collect(),
        _ => Vec::new(),
    };
    IoSpec {
        name: name.to_string(),
        elem: ElemType::from_ort(t),
        shape,
    }
}

/// A loaded ONNX graph. `ort`'s `Session::run` takes `&mut`, so each session serves one
/// inference at a time; the pool gives `sessions` concurrent inferences.
#[derive(Debug)]
pub struct OnnxSession {
    path: PathBuf,
    sessions: Vec<Mutex<Session>>,
    next: AtomicUsize,
    pub inputs: Vec<IoSpec>,
    pub outputs: Vec<IoSpec>,
}

impl OnnxSession {
    /// Loads `path` (external data next to it resolves) into `config.sessions` sessions.
    pub fn load(path: &Path, config: &RuntimeConfig) -> Result<Self, OnnxError> {
        let env = environment(config)?;
        let err = |message: String| OnnxError::Session {
            path: path.to_path_buf(),
            message,
        };
        if !path.is_file() {
            return Err(err("file not found".into()));
        }
        let mut sessions = Vec::with_capacity(config.sessions.max(1));
        for _ in 0..config.sessions.max(1) {
            let mut builder = Session::builder(&env)
                .map_err(|e| err(e.to_string()))?
                .with_intra_threads(config.intra_threads.max(1))
                .map_err(|e| err(e.to_string()))?;
            if config.cuda {
                builder = with_cuda(builder).map_err(|e| match e {
                    CudaError::NotBuilt => OnnxError::CudaNotBuilt,
                    CudaError::Ort(m) => err(m),
                })?;
            }
            sessions.push(Mutex::new(
                builder
                    .commit_from_file(path)
                    .map_err(|e| err(e.to_string()))?,
            ));
        }
        let first = sessions[0]
            .lock()
            .map_err(|_| err("session lock poisoned".into()))?;
        let inputs = first
            .inputs()
            .iter()
            .map(|o| spec(o.name(), o.dtype()))
            .collect();
        let outputs = first
            .outputs()
            .iter()
            .map(|o| spec(o.name(), o.dtype()))
            .collect();
        drop(first);
        Ok(OnnxSession {
            path: path.to_path_buf(),
            sessions,
            next: AtomicUsize::new(0),
            inputs,
            outputs,
        })
    }

    /// The graph file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Index of output `name`.
    pub fn output_index(&self, name: &str) -> Option<usize> {
        self.outputs.iter().position(|o| o.name == name)
    }

    /// Runs the graph on `inputs` (one tensor per graph input, in graph order, already
    /// checked by [`OnnxSession::prepare`]) and returns the outputs at `wanted` indices.
    pub fn run(&self, inputs: Vec<DynValue>, wanted: &[usize]) -> Result<Vec<Tensor>, ModelError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.sessions.len();
        let mut session = self.sessions[i]
            .lock()
            .map_err(|_| ModelError::internal("ONNX session lock poisoned by an earlier panic"))?;
        let names: Vec<String> = self.inputs.iter().map(|s| s.name.clone()).collect();
        let feed: Vec<(String, DynValue)> = names.into_iter().zip(inputs).collect();
        let outputs = session
            .run(feed)
            .map_err(|e| ModelError::internal(format!("ONNX Runtime failed: {e}")))?;
        wanted
            .iter()
            .map(|&k| {
                let spec = &self.outputs[k];
                extract(&spec.name, spec.elem, &outputs[spec.name.as_str()])
            })
            .collect()
    }

    /// [`OnnxSession::run`] off the async executor when the batch is large (ONNX Runtime
    /// holds the thread for its whole run; small batches cost less than the hop).
    pub async fn run_async(
        self: &Arc<Self>,
        inputs: Vec<DynValue>,
        wanted: Vec<usize>,
        elements: usize,
    ) -> Result<Vec<Tensor>, ModelError> {
        if elements < BLOCKING_ELEMENTS {
            return self.run(inputs, &wanted);
        }
        let me = Arc::clone(self);
        tokio::task::spawn_blocking(move || me.run(inputs, &wanted))
            .await
            .map_err(|e| ModelError::internal(format!("ONNX inference task failed: {e}")))?
    }

    /// Checks `tensors` against the graph inputs (count, feature count, dtype) and
    /// builds the `ort` values. A 1-D tensor is one row, as in Seldon's wrapper.
    pub fn prepare(&self, tensors: &[&Tensor]) -> Result<Vec<DynValue>, ModelError> {
        if tensors.len() != self.inputs.len() {
            return Err(ModelError::bad_data(format!(
                "the model takes {} input tensor(s) ({}), got {}",
                self.inputs.len(),
                self.inputs
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                tensors.len()
            )));
        }
        tensors
            .iter()
            .zip(&self.inputs)
            .map(|(t, s)| to_value(t, s))
            .collect()
    }
}

enum CudaError {
    #[cfg_attr(feature = "cuda", allow(dead_code))]
    NotBuilt,
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    Ort(String),
}

#[cfg(feature = "cuda")]
fn with_cuda(
    b: ort::session::builder::SessionBuilder,
) -> Result<ort::session::builder::SessionBuilder, CudaError> {
    // Without `error_on_failure`, ONNX Runtime logs a failed registration (no GPU, no
    // driver, missing CUDA libs) and runs on CPU: one binary serves both.
    b.with_execution_providers([ort::ep::CUDA::default().build()])
        .map_err(|e| CudaError::Ort(e.to_string()))
}

#[cfg(not(feature = "cuda"))]
fn with_cuda(
    _b: ort::session::builder::SessionBuilder,
) -> Result<ort::session::builder::SessionBuilder, CudaError> {
    Err(CudaError::NotBuilt)
}

/// The shape to feed: the tensor's own, or `[rows, cols]` when the graph declares rank 2
/// (so a 1-D `[x1, x2, x3]` becomes one row), checking every fixed dimension.
fn feed_shape(t: &Tensor, s: &IoSpec) -> Result<Vec<i64>, ModelError> {
    #[allow(clippy::cast_possible_wrap)]
    let shape: Vec<i64> = if s.shape.len() == 2 && t.shape.len() <= 2 {
        vec![t.rows() as i64, t.cols() as i64]
    } else {
        t.shape.iter().map(|d| *d as i64).collect()
    };
    if s.shape.len() == 2 && s.shape[1] > 0 {
        #[allow(clippy::cast_sign_loss)]
        t.expect_cols(s.shape[1] as usize)?;
    }
    if !s.shape.is_empty() && shape.len() != s.shape.len() {
        return Err(ModelError::bad_data(format!(
            "input `{}` needs rank {} (shape {:?}), got shape {:?}",
            s.name,
            s.shape.len(),
            s.shape,
            t.shape
        )));
    }
    for (i, (want, got)) in s.shape.iter().zip(&shape).enumerate() {
        if *want > 0 && want != got {
            return Err(ModelError::bad_data(format!(
                "input `{}` dimension {i} must be {want}, got shape {:?}",
                s.name, t.shape
            )));
        }
    }
    Ok(shape)
}

fn ort_err(e: ort::Error) -> ModelError {
    ModelError::internal(format!("building the ONNX input: {e}"))
}

fn to_value(t: &Tensor, s: &IoSpec) -> Result<DynValue, ModelError> {
    if matches!(t.values, Values::Bytes(_)) && s.elem != ElemType::Str {
        return Err(ModelError::bad_data(format!(
            "input `{}` is {}, got BYTES",
            s.name,
            s.elem.v2()
        )));
    }
    let shape = feed_shape(t, s)?;
    #[allow(clippy::cast_possible_truncation)]
    let value = match s.elem {
        ElemType::F32 => OrtTensor::from_array((shape, t.as_f32()?.into_owned()))
            .map_err(ort_err)?
            .into_dyn(),
        ElemType::F64 => OrtTensor::from_array((shape, t.as_f64()?.into_owned()))
            .map_err(ort_err)?
            .into_dyn(),
        ElemType::I64 => OrtTensor::from_array((shape, integers(t, s)?))
            .map_err(ort_err)?
            .into_dyn(),
        ElemType::I32 => {
            let v: Vec<i32> = integers(t, s)?.into_iter().map(|x| x as i32).collect();
            OrtTensor::from_array((shape, v))
                .map_err(ort_err)?
                .into_dyn()
        }
        ElemType::Bool => {
            let v: Vec<bool> = t.as_f64()?.iter().map(|x| *x != 0.0).collect();
            OrtTensor::from_array((shape, v))
                .map_err(ort_err)?
                .into_dyn()
        }
        ElemType::Str => {
            let Values::Bytes(b) = &t.values else {
                return Err(ModelError::bad_data(format!(
                    "input `{}` is BYTES (strings), got numbers",
                    s.name
                )));
            };
            let v: Vec<String> = b
                .iter()
                .map(|x| String::from_utf8_lossy(x).into_owned())
                .collect();
            OrtTensor::from_string_array((shape, v.as_slice()))
                .map_err(ort_err)?
                .into_dyn()
        }
        ElemType::Other => {
            return Err(ModelError::bad_data(format!(
                "input `{}` has an element type this server cannot feed",
                s.name
            )));
        }
    };
    Ok(value)
}

#[allow(clippy::cast_possible_truncation)]
fn integers(t: &Tensor, s: &IoSpec) -> Result<Vec<i64>, ModelError> {
    let v = t.as_f64()?;
    if let Some(x) = v.iter().find(|x| x.fract() != 0.0 || !x.is_finite()) {
        return Err(ModelError::bad_data(format!(
            "input `{}` is {}, got the non-integer value {x}",
            s.name,
            s.elem.v2()
        )));
    }
    Ok(v.iter().map(|x| *x as i64).collect())
}

#[allow(clippy::cast_precision_loss, clippy::cast_sign_loss)]
fn extract(name: &str, elem: ElemType, v: &DynValue) -> Result<Tensor, ModelError> {
    let bad = |e: ort::Error| ModelError::internal(format!("reading ONNX output `{name}`: {e}"));
    let (shape, values) = match elem {
        ElemType::F32 => {
            let (s, d) = v.try_extract_tensor::<f32>().map_err(bad)?;
            (s.to_vec(), Values::F32(d.to_vec()))
        }
        ElemType::F64 => {
            let (s, d) = v.try_extract_tensor::<f64>().map_err(bad)?;
            (s.to_vec(), Values::F64(d.to_vec()))
        }
        ElemType::I64 => {
            let (s, d) = v.try_extract_tensor::<i64>().map_err(bad)?;
            (
                s.to_vec(),
                Values::F64(d.iter().map(|x| *x as f64).collect()),
            )
        }
        ElemType::I32 => {
            let (s, d) = v.try_extract_tensor::<i32>().map_err(bad)?;
            (
                s.to_vec(),
                Values::F64(d.iter().map(|x| f64::from(*x)).collect()),
            )
        }
        ElemType::Bool => {
            let (s, d) = v.try_extract_tensor::<bool>().map_err(bad)?;
            (
                s.to_vec(),
                Values::F32(d.iter().map(|x| if *x { 1.0 } else { 0.0 }).collect()),
            )
        }
        ElemType::Str => {
            let (s, d) = v.try_extract_strings().map_err(bad)?;
            (
                s.to_vec(),
                Values::Bytes(d.into_iter().map(String::into_bytes).collect()),
            )
        }
        ElemType::Other => {
            return Err(ModelError::internal(format!(
                "ONNX output `{name}` has an element type this server cannot return"
            )));
        }
    };
    let shape = shape.iter().map(|d| (*d).max(0) as usize).collect();
    Ok(Tensor::new(shape, values)?.with_name(name))
}
