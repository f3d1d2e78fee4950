//! PDF extraction in a worker process. pdf-extract panics, loops or exhausts memory on some
//! real files, so the process that runs a bulk ingestion never calls it itself: it starts a
//! worker (normally the `memreader` binary re-executed with a hidden subcommand that calls
//! [`worker_main`]) under a time limit and a memory limit, and reads the worker's JSON answer.
//! A crash, a timeout or an exhausted limit becomes a [`PdfError`] for that one file.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::formats::pdf::{extract_pdf, PdfError, PdfText};

/// How to start a PDF worker and the limits it runs under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdfWorker {
    /// The program to run, e.g. the current `memreader` executable.
    pub program: PathBuf,
    /// Arguments before the file's path, e.g. `["__extract-pdf"]`.
    pub args: Vec<OsString>,
    /// Wall-clock limit for one file.
    pub timeout: Duration,
    /// Address-space limit for the worker (Unix `RLIMIT_AS`), in MiB.
    pub memory_limit_mib: u64,
}

impl PdfWorker {
    /// Default limits: 60 s and 2048 MiB per file.
    pub fn new(program: PathBuf, args: Vec<OsString>) -> PdfWorker {
        PdfWorker {
            program,
            args,
            timeout: Duration::from_secs(60),
            memory_limit_mib: 2048,
        }
    }

    /// Extracts the PDF at `path` in a worker process.
    pub fn extract(&self, path: &Path) -> Result<PdfText, PdfError> {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .arg(path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        #[cfg(unix)]
        self.limit(&mut command);
        // From before the start: a parent held up after spawning must not see a worker that
        // ran past the limit as one that finished in time.
        let started = Instant::now();
        let mut child = command.spawn().map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOMEM) {
                PdfError::OutOfMemory {
                    mib: self.memory_limit_mib,
                }
            } else {
                PdfError::Worker(format!("cannot start {}: {e}", self.program.display()))
            }
        })?;
        let stdout = child.stdout.take().map(read_in_background);
        let stderr = child.stderr.take().map(read_in_background);
        let status = loop {
            match child.try_wait() {
                // Finishing late is not finishing in time, however the polling fell.
                Ok(Some(_)) if started.elapsed() > self.timeout => {
                    return Err(PdfError::Timeout {
                        millis: self.timeout.as_millis() as u64,
                    })
                }
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() >= self.timeout => {
                    // Killing fails only if it already exited; the wait below reaps it.
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(PdfError::Timeout {
                        millis: self.timeout.as_millis() as u64,
                    });
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(PdfError::Worker(format!("cannot wait for it: {e}"))),
            }
        };
        let stdout = stdout.map(join_output).unwrap_or_default();
        let stderr = stderr.map(join_output).unwrap_or_default();
        let stderr = String::from_utf8_lossy(&stderr);
        if status.success() {
            // The answer is the last line: anything a library printed comes before it.
            let answer = stdout
                .split(|&b| b == b'\n')
                .rfind(|line| !line.is_empty())
                .unwrap_or_default();
            return serde_json::from_slice::<Result<PdfText, PdfError>>(answer).map_err(|e| {
                PdfError::Worker(format!(
                    "its answer is not valid JSON ({e}); stderr: {stderr}"
                ))
            })?;
        }
        Err(self.failure(status, stderr.trim()))
    }

    /// What a worker's non-zero exit means.
    fn failure(&self, status: ExitStatus, stderr: &str) -> PdfError {
        let out_of_memory = stderr.contains("memory allocation of")
            || stderr.contains("out of memory")
            || stderr.contains("cannot allocate memory");
        if out_of_memory {
            return PdfError::OutOfMemory {
                mib: self.memory_limit_mib,
            };
        }
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            if status.signal() == Some(libc::SIGXCPU) {
                return PdfError::Timeout {
                    millis: self.timeout.as_millis() as u64,
                };
            }
            // Killed by a memory fault with nothing said: the address-space limit left the
            // loader or the allocator no room (a Rust panic, abort or stack overflow writes
            // a message first).
            let memory_fault = [libc::SIGSEGV, libc::SIGBUS, libc::SIGKILL];
            if status.signal().is_some_and(|s| memory_fault.contains(&s)) && stderr.is_empty() {
                return PdfError::OutOfMemory {
                    mib: self.memory_limit_mib,
                };
            }
            if let Some(signal) = status.signal() {
                return PdfError::Panicked(format!("the worker died of signal {signal}; {stderr}"));
            }
        }
        let last_line = stderr.lines().last().unwrap_or("no message");
        PdfError::Worker(format!("it exited with {status}: {last_line}"))
    }

    /// In the child, before exec: its own process group (a Ctrl-C on the terminal does not
    /// kill a worker mid-file; it finishes and the batch stops cleanly), an address-space
    /// limit, and a CPU-time limit as a backstop should the parent die without killing it.
    #[cfg(unix)]
    fn limit(&self, command: &mut Command) {
        use std::os::unix::process::CommandExt;
        let memory = self.memory_limit_mib.saturating_mul(1 << 20);
        let cpu = self.timeout.as_secs().saturating_add(5);
        // SAFETY: the closure runs in the forked child before exec and only makes
        // async-signal-safe system calls (setpgid, setrlimit) on values computed before fork.
        unsafe {
            command.pre_exec(move || {
                libc::setpgid(0, 0);
                let address_space = libc::rlimit {
                    rlim_cur: memory as libc::rlim_t,
                    rlim_max: memory as libc::rlim_t,
                };
                let cpu_time = libc::rlimit {
                    rlim_cur: cpu as libc::rlim_t,
                    rlim_max: cpu.saturating_add(5) as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &address_space) != 0
                    || libc::setrlimit(libc::RLIMIT_CPU, &cpu_time) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

fn read_in_background(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        // A read error leaves what was read so far; the exit status tells the rest.
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

fn join_output(handle: std::thread::JoinHandle<Vec<u8>>) -> Vec<u8> {
    handle.join().unwrap_or_default()
}

/// The last panic's message and location, set by the worker's panic hook.
static PANIC: Mutex<Option<String>> = Mutex::new(None);

/// Extracts a PDF in this process as the worker does, catching panics: a panic in the parser
/// becomes [`PdfError::Panicked`] with its message and location. The panic hook is replaced
/// for the call (a panic prints nothing) and put back after it.
pub fn extract_catching(bytes: &[u8]) -> Result<PdfText, PdfError> {
    let previous = panic::take_hook();
    panic::set_hook(Box::new(|info| {
        let message = info.to_string().replace('\n', " ");
        if let Ok(mut slot) = PANIC.lock() {
            *slot = Some(message);
        }
    }));
    let result = panic::catch_unwind(AssertUnwindSafe(|| extract_pdf(bytes)));
    panic::set_hook(previous);
    result.unwrap_or_else(|_| {
        let message = PANIC.lock().ok().and_then(|mut m| m.take());
        Err(PdfError::Panicked(
            message.unwrap_or_else(|| "a panic without a message".to_owned()),
        ))
    })
}

/// The worker's side: extracts the PDF at `path` in this process with [`extract_catching`],
/// and writes the result (`{"Ok": PdfText}` or `{"Err": PdfError}`) as one line of JSON to
/// stdout. Returns the process exit code: 0 when an answer was written, 2 when stdout failed.
pub fn worker_main(path: &Path) -> i32 {
    let result = match std::fs::read(path) {
        Err(e) => Err(PdfError::Worker(format!("cannot read the file: {e}"))),
        Ok(bytes) => extract_catching(&bytes),
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let written = out
        .write_all(b"\n")
        .map_err(serde_json::Error::io)
        .and_then(|()| serde_json::to_writer(&mut out, &result))
        .and_then(|()| out.write_all(b"\n").map_err(serde_json::Error::io));
    match written {
        Ok(()) => 0,
        Err(_) => 2,
    }
}
