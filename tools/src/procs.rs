//! Starting lowband's own binaries as child processes, the way a user would.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context};

/// A binary built next to this one (same cargo profile directory).
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("executable has no directory")?;
    // Under `cargo test` the current exe is in target/<profile>/deps.
    for d in [dir, dir.parent().unwrap_or(dir)] {
        let p = d.join(name);
        if p.exists() {
            return Ok(p);
        }
    }
    bail!("{name} not found next to {}: build the workspace first (cargo build --release)", exe.display())
}

/// A free UDP port on loopback (bound and released; fine for local tests).
pub fn free_udp_port() -> anyhow::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running gateway process; killed when dropped.
pub struct GatewayProcess {
    child: Child,
    pub addr: String,
    pub fingerprint: String,
}

impl GatewayProcess {
    pub fn start(state_dir: &Path, log: &Path) -> anyhow::Result<Self> {
        Self::start_with(state_dir, log, None, &[])
    }

    /// With a config file, started through `prefix` (e.g. `nice -n -5`,
    /// `taskset -c 0`: both exec, so the child's id stays the gateway's).
    pub fn start_with(state_dir: &Path, log: &Path, config: Option<&Path>, prefix: &[String]) -> anyhow::Result<Self> {
        let port = free_udp_port()?;
        let addr = format!("127.0.0.1:{port}");
        let binary = sibling_binary("lowband-gateway")?;
        let mut command = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        if let Some(c) = config {
            command.arg("--config").arg(c);
        }
        let mut child = command
            .args(["--listen", &addr, "--state-dir"])
            .arg(state_dir)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .context("starting lowband-gateway")?;
        let stdout = child.stdout.take().context("gateway stdout")?;
        let mut fingerprint = None;
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let line = line?;
            if let Some(fp) = line.strip_prefix("fingerprint: ") {
                fingerprint = Some(fp.trim().to_string());
                break;
            }
        }
        // Keep reading: a closed pipe would kill the gateway at its next line.
        std::thread::spawn(move || lines.for_each(drop));
        let fingerprint = fingerprint.with_context(|| format!("gateway exited before printing its fingerprint; see {}", log.display()))?;
        Ok(GatewayProcess { child, addr, fingerprint })
    }
}

impl GatewayProcess {
    /// The gateway's process id (taskset execs it, so the id is the gateway's).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
