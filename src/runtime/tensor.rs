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
use ort::memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{SessionInputValue, SessionOutputs};
use ort::value::{DynTensor, DynTensorValueType, DynValue, Tensor, TensorElementType, ValueType};

use super::env::{LoadedSession, Provider};
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

/// Where a bound output is put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMemory {
    /// Host memory (read through views, or fed to a session anywhere).
    Host,
    /// The memory of a CUDA device (fed to a session on that device without a copy; not
    /// readable on the host).
    Cuda { device_id: i32 },
}

impl OutputMemory {
    /// Where `producer` should put an output that `consumer` takes next: the CUDA device's
    /// memory when the producer binds and both run on that device, else host memory (which
    /// every session can take; a CPU session could not take CUDA memory).
    pub fn for_feeding(producer: SessionPlace, consumer: SessionPlace) -> OutputMemory {
        let same_cuda_device = producer.provider == Provider::Cuda
            && consumer.provider == Provider::Cuda
            && producer.cuda_device_id == consumer.cuda_device_id;
        if producer.binds && same_cuda_device {
            OutputMemory::Cuda {
                device_id: producer.cuda_device_id,
            }
        } else {
            OutputMemory::Host
        }
    }

    /// ONNX Runtime's description of this memory (what `BindOutputToDevice` takes).
    pub fn memory_info(self) -> Result<MemoryInfo<'static>, ort::Error> {
        match self {
            OutputMemory::Host => MemoryInfo::new(
                AllocationDevice::CPU,
                0,
                AllocatorType::Device,
                MemoryType::Default,
            ),
            OutputMemory::Cuda { device_id } => MemoryInfo::new(
                AllocationDevice::CUDA,
                device_id,
                AllocatorType::Device,
                MemoryType::Default,
            ),
        }
    }
}

impl std::fmt::Display for OutputMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutputMemory::Host => f.write_str("host"),
            OutputMemory::Cuda { device_id } => write!(f, "CUDA device {device_id}"),
        }
    }
}

/// What decides where a session's outputs go: its provider, whether it binds, its CUDA device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPlace {
    pub provider: Provider,
    pub binds: bool,
    pub cuda_device_id: i32,
}

/// A float32 tensor left in ONNX Runtime's memory by [`LoadedSession::run_held`]: read it with
/// [`view`](HeldTensor::view), feed it again with [`Input::Held`] (an `Arc`, so feeding it to
/// several runs shares one buffer).
pub struct HeldTensor {
    value: DynTensor,
    shape: Vec<usize>,
    /// ONNX Runtime's name of the memory holding it and the device id (e.g. `Cpu:0`, `Cuda:0`).
    location: String,
    /// Whether the host can read that memory.
    host_readable: bool,
}

impl std::fmt::Debug for HeldTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldTensor")
            .field("shape", &self.shape)
            .field("location", &self.location)
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
                let value = value
                    .downcast::<DynTensorValueType>()
                    .map_err(|e| e.to_string())?;
                let memory = value.memory_info();
                let location = format!(
                    "{}:{}",
                    memory.allocation_device().as_str(),
                    memory.device_id()
                );
                let host_readable = memory.is_cpu_accessible();
                Ok(HeldTensor {
                    value,
                    shape,
                    location,
                    host_readable,
                })
            }
            other => Err(format!("expected a float32 tensor, got {other:?}")),
        }
    }

    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Where the values are: ONNX Runtime's memory name and device id (`Cpu:0`, `Cuda:0`).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Whether the host can read the values ([`view`](HeldTensor::view) succeeds).
    pub fn host_readable(&self) -> bool {
        self.host_readable
    }

    /// The values, without copying them. A tensor kept in device memory for the next session
    /// ([`LoadedSession::run_feeding`]) cannot be read here: that is an error, never a panic.
    pub fn view(&self) -> Result<ArrayViewD<'_, f32>, RuntimeError> {
        if !self.host_readable {
            return Err(RuntimeError::Other {
                what: format!(
                    "a float32 tensor of shape {:?} is held in {} memory, for the next session; the host cannot read it",
                    self.shape, self.location
                ),
                hint: "a stage reads outputs from run_held or run_f32 (host memory), not from run_feeding; this is a bug in riveg-bench, please report it (run --io-binding off avoids it)".into(),
            });
        }
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
    /// Where this session's outputs can go, for [`OutputMemory::for_feeding`].
    pub fn place(&self) -> SessionPlace {
        SessionPlace {
            provider: self.provider,
            binds: self.binds(),
            cuda_device_id: self.cuda_device_id,
        }
    }

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
    /// memory, in order (no copy), in host memory: read them through [`HeldTensor::view`].
    pub fn run_held(
        &mut self,
        inputs: Vec<(String, Input)>,
        outputs: &[&str],
    ) -> Result<Vec<HeldTensor>, RuntimeError> {
        self.run_into(inputs, outputs, OutputMemory::Host)
    }

    /// Runs the session and keeps the named float32 outputs for `next`, which takes them as
    /// [`Input::Held`]: in `next`'s CUDA memory when this session binds and both run on the
    /// same CUDA device ([`OutputMemory::for_feeding`]), else in host memory. Only their shape
    /// is meant to be read here.
    pub fn run_feeding(
        &mut self,
        inputs: Vec<(String, Input)>,
        outputs: &[&str],
        next: &LoadedSession,
    ) -> Result<Vec<HeldTensor>, RuntimeError> {
        let memory = OutputMemory::for_feeding(self.place(), next.place());
        self.run_into(inputs, outputs, memory)
    }

    /// Runs plainly, or through I/O binding with every output bound to `memory`: when the
    /// session binds every run (`io_binding = "on"`), or binds (`auto` on CUDA) and `memory`
    /// is the device's. So with `auto` only the runs that keep outputs on the device take the
    /// binding path.
    fn run_into(
        &mut self,
        inputs: Vec<(String, Input)>,
        outputs: &[&str],
        memory: OutputMemory,
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
        let held = if run_binds(self.binds(), self.binds_every_run(), memory) {
            self.run_bound(&prepared, outputs, memory)?
        } else {
            let values: Vec<(&str, SessionInputValue<'_>)> = prepared
                .iter()
                .map(|(name, v)| (name.as_str(), v.as_session_input()))
                .collect();
            let results = self
                .session
                .run(values)
                .map_err(|e| RuntimeError::run(&path, e))?;
            take_outputs(&path, results, outputs)?
        };
        if let OutputMemory::Cuda { .. } = memory {
            self.note_placement(&held, outputs, memory);
        }
        Ok(held)
    }

    /// One run through a fresh `IoBinding` (see the module doc for why never a reused one).
    fn run_bound(
        &mut self,
        prepared: &[(String, Prepared)],
        outputs: &[&str],
        memory: OutputMemory,
    ) -> Result<Vec<HeldTensor>, RuntimeError> {
        let path = self.path.clone();
        let failed = |what: String, e: ort::Error| binding_failed(&path, what, e);
        let mut binding = self
            .session
            .create_binding()
            .map_err(|e| failed("creating the binding".into(), e))?;
        for (name, input) in prepared {
            // An owned or held value is bound as is (ort aliases it; a held tensor already on
            // the session's device is not copied, one in host memory is copied there once).
            let bound = match input {
                Prepared::Owned(v) => binding.bind_input(name.as_str(), v),
                Prepared::Held(h) => binding.bind_input(name.as_str(), &h.value),
            };
            bound.map_err(|e| failed(format!("binding input {name:?}"), e))?;
        }
        // ONNX Runtime queues the copies of host inputs to the device and leaves waiting for
        // them to the caller (its Run with a binding does not); a no-op on the CPU.
        binding
            .synchronize_inputs()
            .map_err(|e| failed("waiting for the inputs' copies".into(), e))?;
        let info = memory
            .memory_info()
            .map_err(|e| failed(format!("describing {memory} memory"), e))?;
        for name in outputs {
            binding
                .bind_output_to_device(*name, &info)
                .map_err(|e| failed(format!("binding output {name:?} to {memory} memory"), e))?;
        }
        let results = self.session.run_binding(&binding).map_err(|e| {
            failed(
                format!("running with outputs {outputs:?} bound to {memory} memory"),
                e,
            )
        })?;
        take_outputs(&path, results, outputs)
    }

    /// ONNX Runtime binds an output to host memory instead when the device named has no
    /// provider in the session, silently; say so once per session (the values are the same,
    /// only the copies this was meant to save come back).
    fn note_placement(&mut self, held: &[HeldTensor], outputs: &[&str], memory: OutputMemory) {
        if self.warned_placement {
            return;
        }
        for (tensor, name) in held.iter().zip(outputs) {
            if tensor.host_readable {
                log::warn!(
                    "{}: output {name:?} was bound to {memory} memory but ONNX Runtime put it in {} memory; it is copied to the device for every later run",
                    self.path.display(),
                    tensor.location
                );
                self.warned_placement = true;
                return;
            }
        }
    }
}

/// Whether one run goes through I/O binding: every run of a session that binds every run
/// (`on`), else (`auto` on CUDA) only a run whose outputs go to device memory.
fn run_binds(session_binds: bool, every_run: bool, memory: OutputMemory) -> bool {
    session_binds && (every_run || matches!(memory, OutputMemory::Cuda { .. }))
}

/// The named outputs of a run, in order, as held tensors.
fn take_outputs(
    path: &std::path::Path,
    mut results: SessionOutputs<'_>,
    outputs: &[&str],
) -> Result<Vec<HeldTensor>, RuntimeError> {
    outputs
        .iter()
        .map(|name| {
            let value = results.remove(*name).ok_or_else(|| {
                RuntimeError::run(path, format!("output {name:?} missing from the results"))
            })?;
            HeldTensor::new(value)
                .map_err(|e| RuntimeError::run(path, format!("output {name:?}: {e}")))
        })
        .collect()
}

/// An I/O binding step that failed, with the way around it.
fn binding_failed(path: &std::path::Path, what: String, e: ort::Error) -> RuntimeError {
    RuntimeError::Run {
        model: path.to_path_buf(),
        why: format!("I/O binding: {what}: {e}"),
        hint: "set [runtime] io_binding = \"off\" in the suite (or run --io-binding off) to run without I/O binding; if that works, report this with the model and provider".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(provider: Provider, binds: bool, cuda_device_id: i32) -> SessionPlace {
        SessionPlace {
            provider,
            binds,
            cuda_device_id,
        }
    }

    #[test]
    fn auto_binds_only_the_runs_that_keep_outputs_on_the_device() {
        let cuda = OutputMemory::Cuda { device_id: 0 };
        // `auto` on CUDA: the hand-over binds, a run read on the host does not.
        assert!(run_binds(true, false, cuda));
        assert!(!run_binds(true, false, OutputMemory::Host));
        // `on`: every run binds; `off` (or `auto` on the CPU): none.
        assert!(run_binds(true, true, OutputMemory::Host));
        assert!(!run_binds(false, false, cuda));
        assert!(!run_binds(false, false, OutputMemory::Host));
    }

    #[test]
    fn held_outputs_go_to_cuda_memory_only_between_binding_sessions_on_one_device() {
        let cuda0 = place(Provider::Cuda, true, 0);
        assert_eq!(
            OutputMemory::for_feeding(cuda0, cuda0),
            OutputMemory::Cuda { device_id: 0 }
        );
        let cuda1 = place(Provider::Cuda, true, 1);
        assert_eq!(
            OutputMemory::for_feeding(cuda1, cuda1),
            OutputMemory::Cuda { device_id: 1 }
        );
        // Another device, a CPU consumer (CUDA fell back for one model), no binding, or CPU
        // sessions with binding forced on: host memory.
        assert_eq!(OutputMemory::for_feeding(cuda0, cuda1), OutputMemory::Host);
        let cpu_bound = place(Provider::Cpu, true, 0);
        assert_eq!(
            OutputMemory::for_feeding(cuda0, cpu_bound),
            OutputMemory::Host
        );
        let unbound = place(Provider::Cuda, false, 0);
        assert_eq!(
            OutputMemory::for_feeding(unbound, cuda0),
            OutputMemory::Host
        );
        assert_eq!(
            OutputMemory::for_feeding(cpu_bound, cpu_bound),
            OutputMemory::Host
        );
    }
}
