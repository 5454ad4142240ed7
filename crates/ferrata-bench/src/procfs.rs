//! What the benchmark reads about processes and the machine from /proc (Linux only): CPU time,
//! resident set, the peak-RSS reset, and the machine's busy time, all as plain numbers.

use std::path::Path;
use std::time::Duration;

/// Clock ticks per second of /proc's CPU times: the kernel's USER_HZ, 100 on every Linux ABI.
pub const TICKS_PER_SEC: f64 = 100.0;

/// A process id; `Self_` reads the calling process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pid {
    Self_,
    Other(u32),
}

impl Pid {
    fn dir(self) -> String {
        match self {
            Pid::Self_ => "/proc/self".to_owned(),
            Pid::Other(pid) => format!("/proc/{pid}"),
        }
    }
}

/// The fields of /proc/PID/stat after the command name (field 3 onwards).
fn stat_fields(pid: Pid) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("{}/stat", pid.dir())).ok()?;
    // The command name may contain spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// user + system CPU time of a process in ticks (threads that ended included).
pub fn cpu_ticks(pid: Pid) -> Option<u64> {
    let fields = stat_fields(pid)?;
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPU ticks of a process and every process below it, ended children included: its own and
/// its live descendants' user + system time plus what each of them has reaped (a database
/// server whose work is done by the backends it forks).
pub fn tree_ticks(root: u32) -> Option<u64> {
    let mut parent_of = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // ppid is field 4 of the whole line, 2 after the name.
        if let Some(ppid) = stat_fields(Pid::Other(pid)).and_then(|f| f.get(1)?.parse::<u32>().ok())
        {
            parent_of.push((pid, ppid));
        }
    }
    let mut tree = vec![root];
    let mut next = 0;
    while next < tree.len() {
        let parent = tree[next];
        tree.extend(
            parent_of
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        next += 1;
    }
    let own_and_reaped = |pid: u32| -> Option<u64> {
        let fields = stat_fields(Pid::Other(pid))?;
        // utime, stime, cutime, cstime: fields 14 to 17 of the whole line.
        fields[11..15]
            .iter()
            .map(|f| f.parse::<u64>().ok())
            .sum::<Option<u64>>()
    };
    let root_ticks = own_and_reaped(root)?;
    Some(
        root_ticks
            + tree[1..]
                .iter()
                .filter_map(|p| own_and_reaped(*p))
                .sum::<u64>(),
    )
}

/// CPU seconds of a process so far.
pub fn cpu_seconds(pid: Pid) -> Option<f64> {
    cpu_ticks(pid).map(|t| t as f64 / TICKS_PER_SEC)
}

/// True while the process exists and has not exited (a zombie not yet reaped counts as gone).
pub fn alive(pid: Pid) -> bool {
    stat_fields(pid).is_some_and(|f| !matches!(f.first().map(String::as_str), Some("Z" | "X")))
}

/// A `kB` line of /proc/PID/status, e.g. `VmRSS` or `VmHWM`.
pub fn status_kb(pid: Pid, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("{}/status", pid.dir())).ok()?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// Resets the peak resident set (VmHWM) to the current one; best effort, as the measurement
/// then only over-reports the peak.
pub fn reset_hwm(pid: Pid) {
    let _ = std::fs::write(format!("{}/clear_refs", pid.dir()), "5");
}

/// Busy time of the whole machine (all cores) in ticks.
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineBusy {
    /// Charged to processes and kernel threads: user, nice, system, steal.
    pub tasks: u64,
    /// Interrupt and softirq context (on loopback mostly the network stack).
    pub irq: u64,
}

impl MachineBusy {
    pub fn read() -> MachineBusy {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let line = stat.lines().next().unwrap_or_default();
        let n: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        let get = |i: usize| n.get(i).copied().unwrap_or(0);
        // user nice system idle iowait irq softirq steal
        MachineBusy {
            tasks: get(0) + get(1) + get(2) + get(7),
            irq: get(5) + get(6),
        }
    }

    pub fn since(self, earlier: MachineBusy) -> MachineBusy {
        MachineBusy {
            tasks: self.tasks.saturating_sub(earlier.tasks),
            irq: self.irq.saturating_sub(earlier.irq),
        }
    }
}

/// Summed CPU ticks of some processes (a process that is gone counts 0).
pub fn ticks_of(pids: &[Pid]) -> u64 {
    pids.iter().map(|p| cpu_ticks(*p).unwrap_or(0)).sum()
}

/// Cores the rest of the machine used over about one second: all busy time (interrupts
/// included, as the kernel charges part of them to the process it interrupted) less the
/// ticks `measured_ticks` reads (the processes under test).
pub fn other_cores(measured_ticks: impl Fn() -> u64) -> f64 {
    let busy0 = MachineBusy::read();
    let own0 = measured_ticks();
    let started = std::time::Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let busy = MachineBusy::read().since(busy0);
    let own = measured_ticks().saturating_sub(own0);
    let secs = started.elapsed().as_secs_f64();
    let cores = (busy.tasks + busy.irq) as f64 / TICKS_PER_SEC - own as f64 / TICKS_PER_SEC;
    round2(cores / secs)
}

pub fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// The last `lines` lines of a text file, each cut to 300 characters, joined by spaces;
/// "(empty)" when there is nothing.
pub fn tail_of(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    let tail: Vec<String> = all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| l.chars().take(300).collect())
        .collect();
    let joined = tail.join(" ");
    if joined.trim().is_empty() {
        "(empty)".to_owned()
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        assert!(alive(Pid::Self_));
        assert!(cpu_ticks(Pid::Self_).is_some());
        assert!(status_kb(Pid::Self_, "VmRSS").is_some_and(|kb| kb > 0));
        assert_eq!(status_kb(Pid::Self_, "NoSuchKey"), None);
        assert!(!alive(Pid::Other(u32::MAX)));
        let busy = MachineBusy::read();
        assert!(busy.tasks > 0);
    }

    #[test]
    fn a_tree_counts_its_children() {
        let me = std::process::id();
        let own = cpu_ticks(Pid::Self_).expect("own ticks");
        // A child that burns CPU, then is reaped: its time moves into this process's cutime.
        let status = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"])
            .status()
            .expect("sh runs");
        assert!(status.success());
        let tree = tree_ticks(me).expect("tree ticks");
        let own_after = cpu_ticks(Pid::Self_).expect("own ticks");
        assert!(
            tree > own_after,
            "the reaped child's time counts: tree {tree}, own {own} -> {own_after}"
        );
        assert_eq!(tree_ticks(u32::MAX), None);
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        std::fs::write(&path, "one\ntwo\nthree\n").expect("write");
        assert_eq!(tail_of(&path, 2), "two three");
        assert_eq!(tail_of(&dir.path().join("none"), 2), "(empty)");
    }
}
