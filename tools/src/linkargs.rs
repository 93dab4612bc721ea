//! Command-line description of a link, shared by `sim` and `netem`: a base
//! (mahimahi traces, an ATC preset or a recorded link) plus overrides.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use lowband_core::link::atc::AtcPreset;
use lowband_core::link::mahimahi::MahimahiTrace;
use lowband_core::link::record::{Dir, RecordedLink};
use lowband_core::link::{Capacity, LinkConfig, LossSpec, Outage, QueueLimit};
use lowband_core::Time;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct LinkArgs {
    /// mahimahi trace for the uplink (client → gateway), e.g. traces/mahimahi/TMobile-UMTS-driving.up.
    #[arg(long)]
    pub trace_up: Option<PathBuf>,
    /// mahimahi trace for the downlink (gateway → client).
    #[arg(long)]
    pub trace_down: Option<PathBuf>,
    /// ATC preset JSON (rate, delay, jitter, loss per direction), e.g. traces/atc/2G-DevelopingRural.json.
    #[arg(long)]
    pub preset: Option<PathBuf>,
    /// A link recorded by `lowband join --record-link` (replays its downlink; its uplink too if it has arrivals).
    #[arg(long)]
    pub recorded: Option<PathBuf>,
    /// One-way delay in ms, each direction (default: the preset's, else 0; recorded links: the base delay).
    #[arg(long)]
    pub delay_ms: Option<f64>,
    /// Delay varies uniformly by ± this many ms (order is kept).
    #[arg(long)]
    pub jitter_ms: Option<f64>,
    /// Random loss in percent, each direction.
    #[arg(long)]
    pub loss: Option<f64>,
    /// Mean loss burst length in packets (> 1 makes the loss Gilbert-Elliott).
    #[arg(long, default_value_t = 1.0)]
    pub burst: f64,
    /// Byte-rate limit in kbit/s, each direction (instead of a trace's opportunities).
    #[arg(long)]
    pub rate_kbps: Option<f64>,
    /// Percent of packets that skip the delay and overtake others.
    #[arg(long)]
    pub reorder: Option<f64>,
    /// Percent of packets delivered twice.
    #[arg(long)]
    pub duplicate: Option<f64>,
    /// Drop-tail queue limit in packets (default unbounded, presets: 1000).
    #[arg(long)]
    pub queue_packets: Option<usize>,
    /// Drop-tail queue limit in bytes.
    #[arg(long)]
    pub queue_bytes: Option<usize>,
    /// An outage, both directions: START_S+LENGTH_S (repeatable), e.g. 30+8.
    #[arg(long)]
    pub outage: Vec<String>,
}

/// The two directions of one client's link.
#[derive(Debug, Clone)]
pub struct LinkPair {
    pub up: LinkConfig,
    pub down: LinkConfig,
    pub description: String,
}

fn read(path: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

impl LinkArgs {
    pub fn build(&self) -> anyhow::Result<LinkPair> {
        let mut desc = Vec::new();
        let (mut up, mut down) = (LinkConfig::default(), LinkConfig::default());
        if let Some(p) = &self.preset {
            let preset = AtcPreset::parse(&read(p)?).with_context(|| format!("ATC preset {}", p.display()))?;
            desc.push(format!("ATC preset {}", preset.name));
            (up, down) = (preset.up, preset.down);
        }
        for (path, cfg, name) in [(&self.trace_up, &mut up, "up"), (&self.trace_down, &mut down, "down")] {
            if let Some(p) = path {
                let t = MahimahiTrace::parse(&read(p)?).with_context(|| format!("mahimahi trace {}", p.display()))?;
                desc.push(format!("{name}: trace {} ({:.0} kbit/s mean)", p.file_name().unwrap_or_default().to_string_lossy(), t.mean_kbps()));
                cfg.capacity = Capacity::Trace(Arc::new(t));
            }
        }
        if let Some(p) = &self.recorded {
            let rec = RecordedLink::parse(&read(p)?).with_context(|| format!("recorded link {}", p.display()))?;
            let base = Duration::from_secs_f64(self.delay_ms.unwrap_or(0.0) / 1000.0);
            down.recorded = Some(rec.fates(Dir::Down, base)?);
            match rec.fates(Dir::Up, base) {
                Ok(f) => up.recorded = Some(f),
                Err(e) => {
                    tracing::warn!("uplink not replayed ({e}); it gets the delay only");
                }
            }
            desc.push(format!("recorded link {} ({} down, {} up packets)", p.display(), rec.down.len(), rec.up.len()));
        }
        let outages = self
            .outage
            .iter()
            .map(|s| {
                let (a, b) = s.split_once('+').context("outage must be START_S+LENGTH_S")?;
                let (a, b): (f64, f64) = (a.trim().parse()?, b.trim().parse()?);
                if !(a >= 0.0 && b >= 0.0) {
                    bail!("outage times must be non-negative");
                }
                Ok(Outage { start: Time::from_micros((a * 1e6) as u64), length: Duration::from_secs_f64(b) })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        for cfg in [&mut up, &mut down] {
            if let Some(d) = self.delay_ms {
                cfg.delay = Duration::from_secs_f64(d.max(0.0) / 1000.0);
            }
            if let Some(j) = self.jitter_ms {
                cfg.jitter = Duration::from_secs_f64(j.max(0.0) / 1000.0);
            }
            if let Some(l) = self.loss {
                let p = (l / 100.0).clamp(0.0, 1.0);
                cfg.loss = if self.burst > 1.0 { LossSpec::GilbertElliott { loss: p, mean_burst: self.burst } } else { LossSpec::Bernoulli { p } };
            }
            if let Some(r) = self.rate_kbps {
                cfg.capacity = Capacity::Rate { kbps: r };
            }
            if let Some(r) = self.reorder {
                cfg.reorder = (r / 100.0).clamp(0.0, 1.0);
            }
            if let Some(d) = self.duplicate {
                cfg.duplicate = (d / 100.0).clamp(0.0, 1.0);
            }
            if let Some(n) = self.queue_packets {
                cfg.queue = QueueLimit::Packets(n);
            }
            if let Some(n) = self.queue_bytes {
                cfg.queue = QueueLimit::Bytes(n);
            }
            cfg.outages.extend(outages.iter().copied());
        }
        if let Some(d) = self.delay_ms {
            desc.push(format!("{d} ms one-way"));
        }
        if let Some(l) = self.loss {
            desc.push(format!("{l} % loss (burst {})", self.burst));
        }
        if desc.is_empty() {
            desc.push("perfect link".into());
        }
        Ok(LinkPair { up, down, description: desc.join(", ") })
    }
}
