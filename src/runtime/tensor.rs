//! Model inputs and outputs as plain `ndarray` arrays, so stages never touch `ort` types: a
//! stage builds [`Input`]s, [`LoadedSession::run_f32`] turns them into ort values, runs the
//! session and copies the requested float32 outputs out. This is the only place where tensors
//! cross into ort.
//!
//! Where a copy would cost real time, a stage keeps an output in ONNX Runtime's memory instead
//! ([`LoadedSession::run_held`] → [`HeldTensor`]): it reads it through a view, and feeds it to
//! later runs as [`Input::Held`] without copying it back in (SAM's image embedding, 4 MiB for
//! ViT-B, goes to one decoder run per box; an OFA decoder's `[n, t, vocab]` logits are read at
//! the last position only). Must not know what the tensors mean.

use std::sync::Arc;

use ndarray::{Array, Array2, ArrayD, ArrayViewD, Dimension};
use ort::session::SessionInputValue;
use ort::value::{DynValue, Tensor, TensorElementType, ValueType};

use super::env::LoadedSession;
use super::manifest::DType;
use super::RuntimeError;

/// One input tensor, owned, in the dtype the model declares, or a float32 tensor already held
/// by ONNX Runtime (shared, never copied).
#[derive(Debug, Clone)]
pub enum Input {
    F32(ArrayD<f32>),
    I64(ArrayD<i64>),
    I32(ArrayD<i32>),
    /// An output of an earlier run, fed as is.
    Held(Arc<HeldTensor>),
}

impl Input {
    /// A float32 input of any rank.
    pub fn f32<D: Dimension>(values: Array<f32, D>) -> Input {
        Input::F32(values.into_dyn())
    }

    /// An integer input in the dtype the model declares (int64, or int32 for some exports).
    pub fn int(values: Array2<i64>, dtype: DType) -> Input {
        match dtype {
            DType::Int32 => Input::I32(values.mapv(|v| v as i32).into_dyn()),
            _ => Input::I64(values.into_dyn()),
        }
    }
}

/// An input ready for ort: a value made from an owned array, or a shared held one.
enum Prepared {
    Owned(DynValue),
    Held(Arc<HeldTensor>),
}

impl Prepared {
    fn new(input: Input) -> Result<Prepared, ort::Error> {
        Ok(match input {
            Input::F32(a) => Prepared::Owned(Tensor::from_array(a)?.into_dyn()),
            Input::I64(a) => Prepared::Owned(Tensor::from_array(a)?.into_dyn()),
            Input::I32(a) => Prepared::Owned(Tensor::from_array(a)?.into_dyn()),
            Input::Held(h) => Prepared::Held(h),
        })
    }

    fn as_session_input(&self) -> SessionInputValue<'_> {
        match self {
            Prepared::Owned(v) => v.into(),
            Prepared::Held(h) => (&h.value).into(),
        }
    }
}

/// A float32 tensor left in ONNX Runtime's memory by [`LoadedSession::run_held`]: read it with
/// [`view`](HeldTensor::view), feed it again with [`Input::Held`] (an `Arc`, so feeding it to
/// several runs shares one buffer).
pub struct HeldTensor {
    value: DynValue,
    shape: Vec<usize>,
}

impl std::fmt::Debug for HeldTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldTensor")
            .field("shape", &self.shape)
            .finish()
    }
}

impl HeldTensor {
    /// Checks that `value` is a float32 tensor with a known shape.
    fn new(value: DynValue) -> Result<HeldTensor, String> {
        match value.dtype() {
            ValueType::Tensor {
                ty: TensorElementType::Float32,
                shape,
                ..
            } => {
                let shape = shape
                    .iter()
                    .map(|&d| usize::try_from(d).map_err(|_| format!("dimension {d} in {shape:?}")))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(HeldTensor { value, shape })
            }
            other => Err(format!("expected a float32 tensor, got {other:?}")),
        }
    }

    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The values, without copying them. (The dtype was checked when the run returned; ort
    /// could still refuse memory the CPU cannot read, so this stays fallible.)
    pub fn view(&self) -> Result<ArrayViewD<'_, f32>, RuntimeError> {
        self.value
            .try_extract_array::<f32>()
            .map_err(|e| RuntimeError::Other {
                what: format!(
                    "cannot read a float32 output of shape {:?}: {e}",
                    self.shape
                ),
                hint: "outputs are read on the CPU; report this with the model and provider".into(),
            })
    }
}

impl LoadedSession {
    /// Runs the session on named inputs and copies out the named float32 outputs, in order.
    pub fn run_f32(
        &mut self,
        inputs: Vec<(String, Input)>,
        outputs: &[&str],
    ) -> Result<Vec<ArrayD<f32>>, RuntimeError> {
        self.run_held(inputs, outputs)?
            .iter()
            .map(|held| held.view().map(|v| v.to_owned()))
            .collect()
    }

    /// Runs the session on named inputs and keeps the named float32 outputs in ONNX Runtime's
    /// memory, in order (no copy).
    pub fn run_held(
        &mut self,
        inputs: Vec<(String, Input)>,
        outputs: &[&str],
    ) -> Result<Vec<HeldTensor>, RuntimeError> {
        let path = self.path.clone();
        let prepared = inputs
            .into_iter()
            .map(|(name, input)| {
                Prepared::new(input)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| RuntimeError::run(&path, format!("input {name:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let values: Vec<(&str, SessionInputValue<'_>)> = prepared
            .iter()
            .map(|(name, v)| (name.as_str(), v.as_session_input()))
            .collect();
        let mut results = self
            .session
            .run(values)
            .map_err(|e| RuntimeError::run(&path, e))?;
        outputs
            .iter()
            .map(|name| {
                let value = results.remove(*name).ok_or_else(|| {
                    RuntimeError::run(&path, format!("output {name:?} missing from the results"))
                })?;
                HeldTensor::new(value)
                    .map_err(|e| RuntimeError::run(&path, format!("output {name:?}: {e}")))
            })
            .collect()
    }
}
