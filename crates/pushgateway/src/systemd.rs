//! `--web.systemd-socket`: the listening sockets systemd passes to a socket-activated service
//! (`LISTEN_PID`, `LISTEN_FDS`, descriptors from 3 on; `sd_listen_fds(3)`).

use std::os::fd::{FromRawFd, RawFd};

/// The first descriptor systemd passes.
const SD_LISTEN_FDS_START: RawFd = 3;

/// Takes the inherited listening sockets (and removes the variables, so that child processes
/// do not see them). Fails if there are none or they are not meant for this process.
pub fn listeners() -> Result<Vec<std::net::TcpListener>, String> {
    let pid = std::env::var("LISTEN_PID").unwrap_or_default();
    let fds = std::env::var("LISTEN_FDS").unwrap_or_default();
    for v in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(v);
    }
    if pid.is_empty() || fds.is_empty() {
        return Err(
            "--web.systemd-socket: no socket activation file descriptors found \
                    (LISTEN_FDS is not set; start the gateway from a systemd .socket unit)"
                .into(),
        );
    }
    if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
        return Err(format!(
            "--web.systemd-socket: the inherited sockets are for process {pid}, not this one"
        ));
    }
    let n: RawFd = fds
        .trim()
        .parse()
        .ok()
        .filter(|n| *n > 0 && *n < 1024)
        .ok_or_else(|| format!("--web.systemd-socket: invalid LISTEN_FDS={fds:?}"))?;
    let mut out = Vec::new();
    for fd in SD_LISTEN_FDS_START..SD_LISTEN_FDS_START + n {
        // SAFETY: systemd passes these descriptors to this process (LISTEN_PID checked above)
        // and nothing else in the process uses them; ownership moves to the listener.
        let l = unsafe { std::net::TcpListener::from_raw_fd(fd) };
        l.local_addr().map_err(|e| {
            format!("--web.systemd-socket: descriptor {fd} is not a TCP socket: {e}")
        })?;
        l.set_nonblocking(true)
            .map_err(|e| format!("--web.systemd-socket: descriptor {fd}: {e}"))?;
        out.push(l);
    }
    Ok(out)
}
