//! The CUDA execution provider, registered through ONNX Runtime's C API.
//!
//! `ort`'s own `ep::CUDA` sits behind its `cuda` cargo feature, which this crate does not enable
//! (the feature only adds this registration code; the provider library itself comes from the
//! `onnxruntime-gpu` wheel at run time). This is the same call sequence as `ort` 2.0.0-rc.15's
//! `ep/cuda.rs`: `CreateCUDAProviderOptions` → `UpdateCUDAProviderOptions` →
//! `SessionOptionsAppendExecutionProvider_CUDA_V2` → `ReleaseCUDAProviderOptions`. On the CPU
//! wheel the append call returns an error status (the CUDA provider library cannot be loaded),
//! which callers turn into a fallback or a clear error.

use std::ffi::{CStr, CString};

use ort::session::builder::SessionBuilder;
use ort::AsPointer as _;

pub(crate) struct CudaExecutionProvider {
    pub device_id: i32,
}

/// Turns an `OrtStatus*` into a result, releasing the status.
fn check(status: ort::sys::OrtStatusPtr) -> ort::Result<()> {
    if status.0.is_null() {
        return Ok(());
    }
    let api = ort::api();
    // SAFETY: a non-null status from the C API is valid until released; the message pointer is a
    // NUL-terminated string owned by the status, copied before release.
    let message = unsafe {
        let text = CStr::from_ptr((api.GetErrorMessage)(status.0))
            .to_string_lossy()
            .into_owned();
        (api.ReleaseStatus)(status.0);
        text
    };
    Err(ort::Error::new(message))
}

impl ort::ep::ExecutionProvider for CudaExecutionProvider {
    const NAME: &'static str = "CUDAExecutionProvider";

    fn register(&self, session_builder: &mut SessionBuilder) -> ort::Result<()> {
        let api = ort::api();
        let mut options: *mut ort::sys::OrtCUDAProviderOptionsV2 = std::ptr::null_mut();
        // SAFETY: `options` is an out-pointer filled by the API on success.
        check(unsafe { (api.CreateCUDAProviderOptions)(&mut options) })?;
        if options.is_null() {
            return Err(ort::Error::new("CreateCUDAProviderOptions returned null"));
        }
        let key = CString::new("device_id").map_err(ort::Error::from)?;
        let value = CString::new(self.device_id.to_string()).map_err(ort::Error::from)?;
        let keys = [key.as_ptr()];
        let values = [value.as_ptr()];
        // SAFETY: `options` is valid (created above, released below exactly once); the key and
        // value arrays hold one NUL-terminated string each and outlive the calls; the session
        // builder pointer is valid for the builder's lifetime.
        let result = unsafe {
            check((api.UpdateCUDAProviderOptions)(
                options,
                keys.as_ptr(),
                values.as_ptr(),
                keys.len(),
            ))
            .and_then(|()| {
                check((api.SessionOptionsAppendExecutionProvider_CUDA_V2)(
                    session_builder.ptr_mut(),
                    options,
                ))
            })
        };
        // SAFETY: created by CreateCUDAProviderOptions above; ONNX Runtime copies the options on
        // append, so releasing here is what ort itself does.
        unsafe { (api.ReleaseCUDAProviderOptions)(options) };
        result
    }
}
