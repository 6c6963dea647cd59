//! The FFI boundary: the shim's extern "C" functions (`shim/shim.cc`) and
//! safe wrappers around them. The only module with `unsafe` code.
//!
//! LoadGen calls back into Rust through four C callbacks that receive an
//! opaque context: a pointer to a `&dyn Callbacks` that lives on the stack
//! of [`start_test`] for exactly as long as LoadGen's `StartTest` runs.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int};

/// LoadGen's `QuerySample` (`{ResponseId id; QuerySampleIndex index;}`);
/// the shim static_asserts the size.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RawSample {
    /// LoadGen's response id (a pointer to its sample metadata).
    pub id: usize,
    /// The QSL index.
    pub index: usize,
}

/// LoadGen's `QuerySampleResponse` (`{id; data; size; n_tokens}`); the shim
/// static_asserts the size.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RawResponse {
    /// The sample's response id.
    pub id: usize,
    /// Address of the response bytes (valid during the call).
    pub data: usize,
    /// Their length.
    pub size: usize,
    /// Output tokens.
    pub n_tokens: i64,
}

impl RawResponse {
    /// A response pointing at `data`, which must outlive the call it is
    /// passed to (the wrappers below take both together).
    pub fn new(id: usize, data: &[u8], n_tokens: i64) -> RawResponse {
        RawResponse {
            id,
            data: data.as_ptr() as usize,
            size: data.len(),
            n_tokens,
        }
    }
}

/// What LoadGen calls, on its own threads, while [`start_test`] runs.
pub trait Callbacks: Sync {
    /// `SystemUnderTest::IssueQuery`.
    fn issue_query(&self, samples: &[RawSample]);
    /// `SystemUnderTest::FlushQueries`.
    fn flush_queries(&self);
    /// `QuerySampleLibrary::LoadSamplesToRam`.
    fn load_samples(&self, indices: &[usize]);
    /// `QuerySampleLibrary::UnloadSamplesFromRam`.
    fn unload_samples(&self, indices: &[usize]);
}

type IssueCb = extern "C" fn(usize, *const RawSample, usize);
type FlushCb = extern "C" fn(usize);
type SamplesCb = extern "C" fn(usize, *const usize, usize);

/// LoadGen's `TestSettings` (opaque).
#[repr(C)]
struct RawSettings {
    _private: [u8; 0],
}

unsafe extern "C" {
    fn hlg_settings_new(scenario: c_int, mode: c_int) -> *mut RawSettings;
    fn hlg_settings_free(settings: *mut RawSettings);
    fn hlg_settings_from_config(
        settings: *mut RawSettings,
        path: *const c_char,
        model: *const c_char,
        scenario: *const c_char,
    ) -> c_int;
    fn hlg_settings_set_target_qps(settings: *mut RawSettings, qps: f64);
    fn hlg_settings_set_min_duration_ms(settings: *mut RawSettings, value: u64);
    fn hlg_settings_set_min_query_count(settings: *mut RawSettings, value: u64);
    fn hlg_settings_set_max_duration_ms(settings: *mut RawSettings, value: u64);
    fn hlg_start_test(
        ctx: usize,
        sut_name: *const c_char,
        qsl_name: *const c_char,
        total_samples: usize,
        performance_samples: usize,
        issue: IssueCb,
        flush: FlushCb,
        load: SamplesCb,
        unload: SamplesCb,
        settings: *const RawSettings,
        outdir: *const c_char,
        enable_trace: c_int,
        audit_config: *const c_char,
    ) -> c_int;
    fn hlg_query_samples_complete(responses: *mut RawResponse, count: usize);
    fn hlg_first_token_complete(responses: *mut RawResponse, count: usize);
    fn hlg_version() -> *const c_char;
    fn hlg_git_revision() -> *const c_char;
}

/// LoadGen's `TestSettings`, owned.
#[derive(Debug)]
pub struct Settings(*mut RawSettings);

// SAFETY: the settings object is plain data owned by this handle; LoadGen
// only reads it during `StartTest`, which borrows the handle.
unsafe impl Send for Settings {}

impl Settings {
    /// Default settings for a scenario and mode (LoadGen's enum values:
    /// scenario SingleStream 0, MultiStream 1, Server 2, Offline 3; mode
    /// SubmissionRun 0, AccuracyOnly 1, PerformanceOnly 2).
    pub fn new(scenario: i32, mode: i32) -> Settings {
        // SAFETY: the shim allocates a fresh TestSettings; freed in Drop.
        Settings(unsafe { hlg_settings_new(scenario, mode) })
    }

    /// LoadGen's `FromConfig(path, model, scenario)`: its embedded
    /// mlperf.conf, then the user.conf at `path`. Returns FromConfig's
    /// result (0 when read), -1 when it threw.
    pub fn read_config(&mut self, path: &CStr, model: &CStr, scenario: &CStr) -> i32 {
        // SAFETY: self.0 is live; the strings are NUL-terminated and outlive
        // the call, which copies what it keeps.
        unsafe {
            hlg_settings_from_config(self.0, path.as_ptr(), model.as_ptr(), scenario.as_ptr())
        }
    }

    /// Server target QPS or Offline expected QPS, by scenario.
    pub fn set_target_qps(&mut self, qps: f64) {
        // SAFETY: self.0 is live.
        unsafe { hlg_settings_set_target_qps(self.0, qps) }
    }

    /// `min_duration_ms`.
    pub fn set_min_duration_ms(&mut self, value: u64) {
        // SAFETY: self.0 is live.
        unsafe { hlg_settings_set_min_duration_ms(self.0, value) }
    }

    /// `min_query_count`.
    pub fn set_min_query_count(&mut self, value: u64) {
        // SAFETY: self.0 is live.
        unsafe { hlg_settings_set_min_query_count(self.0, value) }
    }

    /// `max_duration_ms`.
    pub fn set_max_duration_ms(&mut self, value: u64) {
        // SAFETY: self.0 is live.
        unsafe { hlg_settings_set_max_duration_ms(self.0, value) }
    }
}

impl Drop for Settings {
    fn drop(&mut self) {
        // SAFETY: allocated by hlg_settings_new, freed once here.
        unsafe { hlg_settings_free(self.0) }
    }
}

/// Recovers the callbacks from the context pointer.
///
/// # Safety
/// `ctx` must be the address [`start_test`] passed, while it still runs.
unsafe fn callbacks<'a>(ctx: usize) -> &'a dyn Callbacks {
    // SAFETY: per the contract, ctx points at a `&dyn Callbacks` on
    // start_test's stack that outlives LoadGen's StartTest.
    unsafe { *(ctx as *const &dyn Callbacks) }
}

/// A C array as a slice (empty for a null pointer).
///
/// # Safety
/// `ptr` must point at `len` initialized values that stay valid for `'a`.
unsafe fn slice<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    if ptr.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: per the contract.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

extern "C" fn issue_trampoline(ctx: usize, samples: *const RawSample, count: usize) {
    // SAFETY: LoadGen calls this during StartTest with the context we gave
    // it and its own vector of `count` samples, valid for the call.
    let (cb, samples) = unsafe { (callbacks(ctx), slice(samples, count)) };
    cb.issue_query(samples);
}

extern "C" fn flush_trampoline(ctx: usize) {
    // SAFETY: called during StartTest with our context.
    unsafe { callbacks(ctx) }.flush_queries();
}

extern "C" fn load_trampoline(ctx: usize, indices: *const usize, count: usize) {
    // SAFETY: called during StartTest with our context and LoadGen's vector
    // of `count` indices, valid for the call.
    let (cb, indices) = unsafe { (callbacks(ctx), slice(indices, count)) };
    cb.load_samples(indices);
}

extern "C" fn unload_trampoline(ctx: usize, indices: *const usize, count: usize) {
    // SAFETY: as for load_trampoline.
    let (cb, indices) = unsafe { (callbacks(ctx), slice(indices, count)) };
    cb.unload_samples(indices);
}

/// What [`start_test`] needs besides the callbacks and settings.
#[derive(Debug)]
pub struct TestArgs<'a> {
    /// `SystemUnderTest::Name`.
    pub sut_name: &'a CStr,
    /// `QuerySampleLibrary::Name`.
    pub qsl_name: &'a CStr,
    /// `TotalSampleCount`.
    pub total_samples: usize,
    /// `PerformanceSampleCount`.
    pub performance_samples: usize,
    /// `LogOutputSettings::outdir`.
    pub outdir: &'a CStr,
    /// `LogSettings::enable_trace`.
    pub trace: bool,
    /// StartTest's `audit_config_filename` (a file that does not exist: none).
    pub audit_config: &'a CStr,
}

/// LoadGen's `StartTest`: blocks until the test ends, calling `callbacks`
/// from LoadGen's threads meanwhile. Returns false when LoadGen threw.
pub fn start_test(callbacks: &dyn Callbacks, settings: &Settings, args: &TestArgs<'_>) -> bool {
    let cb: &dyn Callbacks = callbacks;
    let ctx = &cb as *const &dyn Callbacks as usize;
    // SAFETY: `cb` lives on this frame until StartTest returns, and LoadGen
    // calls the trampolines only while StartTest runs; every string is
    // NUL-terminated and outlives the call; settings.0 is live.
    let rc = unsafe {
        hlg_start_test(
            ctx,
            args.sut_name.as_ptr(),
            args.qsl_name.as_ptr(),
            args.total_samples,
            args.performance_samples,
            issue_trampoline,
            flush_trampoline,
            load_trampoline,
            unload_trampoline,
            settings.0,
            args.outdir.as_ptr(),
            c_int::from(args.trace),
            args.audit_config.as_ptr(),
        )
    };
    rc == 0
}

/// LoadGen's `QuerySamplesComplete`. Each response's data must stay valid
/// during the call (the caller keeps the bytes alive beside the array).
/// Only for ids LoadGen issued in the test now running, each once.
pub fn query_samples_complete(responses: &mut [RawResponse]) {
    // SAFETY: the array and the bytes it points at are valid for the call;
    // LoadGen copies what it keeps. The caller guarantees the ids are live.
    unsafe { hlg_query_samples_complete(responses.as_mut_ptr(), responses.len()) }
}

/// LoadGen's `FirstTokenComplete`, under the same rules.
pub fn first_token_complete(responses: &mut [RawResponse]) {
    // SAFETY: as for query_samples_complete.
    unsafe { hlg_first_token_complete(responses.as_mut_ptr(), responses.len()) }
}

fn library_string(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: the shim returns c_str() of a function-static std::string,
    // valid for the life of the process.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// The library's `LoadgenVersion()` and `LoadgenGitRevision()`.
pub fn version() -> (String, String) {
    // SAFETY: both return pointers to static strings (see library_string).
    let (v, g) = unsafe { (hlg_version(), hlg_git_revision()) };
    (library_string(v), library_string(g))
}

/// A C string of a path or name (interior NULs are refused by the caller).
pub fn c_string(s: &str) -> Option<CString> {
    CString::new(s).ok()
}
