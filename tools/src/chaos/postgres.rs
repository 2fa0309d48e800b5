//! A PostgreSQL server of the chaos run's own: `initdb` into a temporary directory and
//! `pg_ctl` on a free loopback port, so restarting it cannot disturb anything else on the
//! machine. Run as the `postgres` user when this process is root (initdb refuses root).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

pub struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Postgres {
    pub fn start() -> anyhow::Result<Self> {
        let bin = bindir()?;
        let dir = tempfile::Builder::new().prefix("snorq-chaos-pg-").tempdir()?;
        if is_root() {
            run(Command::new("chown").arg("postgres").arg(dir.path()))?;
        }
        let port = super::free_port()?;
        let pg = Postgres { bin, dir, port };
        pg.as_owner("initdb", |c| {
            c.args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
                .arg(pg.data())
        })?;
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            pg.dir.path().display()
        );
        pg.as_owner("pg_ctl", |c| {
            c.args(["-w", "-t", "60", "-D"])
                .arg(pg.data())
                .args(["-l"])
                .arg(pg.dir.path().join("server.log"))
                .args(["-o", &options, "start"])
        })?;
        Ok(pg)
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server as a crash would (no checkpoint) and starts it again.
    pub fn restart(&self) -> anyhow::Result<()> {
        self.as_owner("pg_ctl", |c| {
            // The log file again: without one the server would write to (and hold open) the
            // pipe this process reads pg_ctl's output from.
            c.args(["-w", "-t", "60", "-m", "immediate", "-D"])
                .arg(self.data())
                .arg("-l")
                .arg(self.dir.path().join("server.log"))
                .arg("restart")
        })
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn as_owner(&self, program: &str, args: impl FnOnce(&mut Command) -> &mut Command) -> anyhow::Result<()> {
        let path = self.bin.join(program);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        run(args(&mut command))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.as_owner("pg_ctl", |c| {
            c.args(["-w", "-m", "immediate", "-D"])
                .arg(self.data())
                .arg("stop")
        });
    }
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let output = command
        .output()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Where initdb and pg_ctl are: `pg_config --bindir`, else Debian's versioned directory.
fn bindir() -> anyhow::Result<PathBuf> {
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output()
        && output.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| Path::new(bin).join("initdb").exists())
        .collect();
    found.sort();
    found
        .pop()
        .context("no initdb found (install PostgreSQL's server package)")
}
