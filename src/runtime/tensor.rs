//! Model inputs and outputs as plain `ndarray` arrays, so stages never touch `ort` types: a
//! stage builds [`Input`]s, [`LoadedSession::run_f32`] turns them into ort values, runs the
//! session and copies the requested float32 outputs out. This is the only place where tensors
//! cross into ort.

use ndarray::{Array, Array2, ArrayD, Dimension};
use ort::value::{DynValue, Tensor};

use super::env::LoadedSession;
use super::manifest::DType;
use super::RuntimeError;

/// One input tensor, owned, in the dtype the model declares.
#[derive(Debug, Clone)]
pub enum Input {
    F32(ArrayD<f32>),
    I64(ArrayD<i64>),
    I32(ArrayD<i32>),
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

    fn into_value(self) -> Result<DynValue, ort::Error> {
        Ok(match self {
            Input::F32(a) => Tensor::from_array(a)?.into_dyn(),
            Input::I64(a) => Tensor::from_array(a)?.into_dyn(),
            Input::I32(a) => Tensor::from_array(a)?.into_dyn(),
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
        let path = self.path.clone();
        let values = inputs
            .into_iter()
            .map(|(name, input)| {
                input
                    .into_value()
                    .map(|v| (name.clone(), v))
                    .map_err(|e| RuntimeError::run(&path, format!("input {name:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let results = self
            .session
            .run(values)
            .map_err(|e| RuntimeError::run(&path, e))?;
        outputs
            .iter()
            .map(|name| {
                let value = results.get(*name).ok_or_else(|| {
                    RuntimeError::run(&path, format!("output {name:?} missing from the results"))
                })?;
                let view = value
                    .try_extract_array::<f32>()
                    .map_err(|e| RuntimeError::run(&path, format!("output {name:?}: {e}")))?;
                Ok(view.to_owned())
            })
            .collect()
    }
}
