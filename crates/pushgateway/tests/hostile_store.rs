//! Issue 15, store side: hostile and unlucky input against the real binary over loopback
//! (full disk, two processes on one file, memory per push, write amplification, leaks,
//! rules the store must not let through). Each test is named after what it guards.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Gateway {
    child: Child,
    port: u16,
}

struct Reply {
    status: u16,
    body: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Gateway {
    fn start(extra: &[&str]) -> Gateway {
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(env!("CARGO_BIN_EXE_pushgateway"))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start pushgateway");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if let Ok(r) = request(port, "GET", "/-/ready", b"") {
                    if r.status == 200 {
                        return Gateway { child, port };
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("gateway did not become ready");
    }

    fn req(&self, method: &str, path: &str, body: &[u8]) -> Reply {
        request(self.port, method, path, body).expect("request")
    }

    fn scrape(&self) -> String {
        let r = self.req("GET", "/metrics", b"");
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn sigterm(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no exit after SIGTERM");
    }

    /// Resident memory in bytes (from /proc).
    #[allow(dead_code)]
    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        kb * 1024
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn request(port: u16, method: &str, path: &str, body: &[u8]) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok(Reply {
        status,
        body: body.to_string(),
    })
}

fn has_line(scrape: &str, line: &str) -> bool {
    scrape.lines().any(|l| l == line)
}

/// Sets the soft file-size limit of a running process (`None`: back to the hard limit).
fn set_fsize(pid: u32, limit: Option<u64>) {
    let arg = match limit {
        Some(n) => format!("--fsize={n}:"),
        None => "--fsize=unlimited:".to_string(),
    };
    let st = Command::new("prlimit")
        .arg("--pid")
        .arg(pid.to_string())
        .arg(arg)
        .status()
        .expect("prlimit (util-linux)");
    assert!(st.success());
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

/// The full-disk scenario, with `fill` making writes fail and `free` making them work again.
/// `tiny_writes_fail`: whether even a write of a few bytes fails (a file-size limit at the
/// current size); on a full tmpfs the last page of the file may still take one.
fn full_disk_scenario(
    gw: Gateway,
    file: &Path,
    fill: &dyn Fn(&Gateway),
    free: &dyn Fn(),
    tiny_writes_fail: bool,
) {
    let pfile = format!("--persistence.file={}", file.display());
    assert_eq!(gw.req("PUT", "/metrics/job/a", b"kept 1\n").status, 200);
    fill(&gw);
    let mut body = String::new();
    for i in 0..2000 {
        body.push_str(&format!("lost{{i=\"{i}\"}} 42\n"));
    }
    // A PUT, a POST to an existing group and a DELETE are refused with 503 and a reason,
    // and none of them is visible.
    let r = gw.req("PUT", "/metrics/job/b", body.as_bytes());
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("not applied"), "{}", r.body);
    let r = gw.req("POST", "/metrics/job/a", body.as_bytes());
    assert_eq!(r.status, 503, "{}", r.body);
    if tiny_writes_fail {
        let r = gw.req("DELETE", "/metrics/job/a", b"");
        assert_eq!(r.status, 503, "{}", r.body);
    }
    // Reads keep working and show exactly what was acknowledged.
    let s = gw.scrape();
    assert!(has_line(&s, "kept{instance=\"\",job=\"a\"} 1"), "{s}");
    assert!(!s.contains("lost"), "a refused push is not served");
    assert_eq!(gw.req("GET", "/api/v1/metrics", b"").status, 200);
    // Space returns: the gateway recovers by itself, without replaying the failed writes.
    free();
    assert_eq!(gw.req("PUT", "/metrics/job/c", b"after 3\n").status, 200);
    gw.sigterm();
    let gw = Gateway::start(&[&pfile]);
    let s = gw.scrape();
    assert!(has_line(&s, "kept{instance=\"\",job=\"a\"} 1"), "{s}");
    assert!(has_line(&s, "after{instance=\"\",job=\"c\"} 3"), "{s}");
    assert!(
        !s.contains("lost"),
        "failed writes never reach the file: {s}"
    );
}

#[test]
fn full_disk_refuses_with_503_changes_nothing_and_recovers_by_itself() {
    // A file-size limit makes the kernel fail the log's writes (EFBIG) as a full disk does.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.db");
    let pfile = format!("--persistence.file={}", file.display());
    let gw = Gateway::start(&[&pfile]);
    let pid = gw.pid();
    let f = file.clone();
    full_disk_scenario(
        gw,
        &file,
        &|_| set_fsize(pid, Some(file_len(&f))),
        &|| set_fsize(pid, None),
        true,
    );
}

#[test]
fn full_disk_on_a_small_tmpfs_refuses_and_recovers() {
    // A real ENOSPC on a 1 MiB tmpfs, filled up by another file and freed again.
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&mnt)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here (not root); the prlimit test covers it");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _u = Unmount(mnt.clone());
    let file = mnt.join("p.db");
    let filler = mnt.join("filler");
    let pfile = format!("--persistence.file={}", file.display());
    let gw = Gateway::start(&[&pfile]);
    let fill = |_: &Gateway| {
        // Fill the file system up to the last byte.
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        while f.write_all(&[0u8]).is_ok() {}
        let _ = f.sync_all();
    };
    let free = || std::fs::remove_file(&filler).unwrap();
    full_disk_scenario(gw, &file, &fill, &free, false);
}

#[test]
fn second_gateway_on_one_persistence_file_is_refused_and_names_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.db");
    let pfile = format!("--persistence.file={}", file.display());
    let first = Gateway::start(&[&pfile]);
    assert_eq!(first.req("PUT", "/metrics/job/a", b"x 1\n").status, 200);
    let out = Command::new(env!("CARGO_BIN_EXE_pushgateway"))
        .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
        .arg(&pfile)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("pid {}", first.pid())) && err.contains("in use"),
        "{err}"
    );
    // The first one is untouched, and the file is free again once it stops.
    assert!(has_line(&first.scrape(), "x{instance=\"\",job=\"a\"} 1"));
    first.sigterm();
    let again = Gateway::start(&[&pfile]);
    assert!(has_line(&again.scrape(), "x{instance=\"\",job=\"a\"} 1"));
}
