//! Facebook ATC shaping presets (JSON, one per link type): rate kbit/s, one-way
//! delay and jitter in ms, loss, corruption and reorder in percent, per direction.
//! The caller reads the file; this parses its text.

use std::time::Duration;

use serde_json::Value;

use super::model::{Capacity, LinkConfig, LossSpec, QueueLimit};

/// netem's default queue limit, which ATC leaves in place.
pub const NETEM_QUEUE_PACKETS: usize = 1000;

#[derive(Debug, Clone)]
pub struct AtcPreset {
    pub name: String,
    /// Client → gateway.
    pub up: LinkConfig,
    /// Gateway → client.
    pub down: LinkConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AtcError {
    #[error("not JSON: {0}")]
    Json(String),
    #[error("missing or invalid field {0}")]
    Field(String),
}

impl AtcPreset {
    /// Loss correlation, delay correlation and the reorder gap are not modelled
    /// (every shipped preset sets them to 0); corruption counts as loss, since a
    /// corrupted datagram fails its checksum or AEAD and is dropped.
    pub fn parse(text: &str) -> Result<Self, AtcError> {
        let v: Value = serde_json::from_str(text).map_err(|e| AtcError::Json(e.to_string()))?;
        let name = v.get("name").and_then(Value::as_str).unwrap_or("unnamed").to_string();
        let content = v.get("content").ok_or_else(|| AtcError::Field("content".into()))?;
        Ok(AtcPreset { name, up: direction(content, "up")?, down: direction(content, "down")? })
    }
}

fn direction(content: &Value, dir: &str) -> Result<LinkConfig, AtcError> {
    let d = content.get(dir).ok_or_else(|| AtcError::Field(format!("content.{dir}")))?;
    let num = |path: &[&str]| -> Result<f64, AtcError> {
        let mut x = d;
        for p in path {
            x = match x.get(p) {
                Some(v) => v,
                None => return Ok(0.0),
            };
        }
        let f = match x {
            Value::Number(n) => n.as_f64(),
            Value::String(s) if s.trim().is_empty() => Some(0.0),
            Value::String(s) => s.trim().parse().ok(),
            Value::Null => Some(0.0),
            _ => None,
        };
        match f {
            Some(f) if f.is_finite() && f >= 0.0 => Ok(f),
            _ => Err(AtcError::Field(format!("content.{dir}.{}", path.join(".")))),
        }
    };
    let rate = num(&["rate"])?;
    let loss = ((num(&["loss", "percentage"])? + num(&["corruption", "percentage"])?) / 100.0).min(1.0);
    Ok(LinkConfig {
        // ATC's rate 0 means "not shaped".
        capacity: if rate > 0.0 { Capacity::Rate { kbps: rate } } else { Capacity::Unlimited },
        queue: QueueLimit::Packets(NETEM_QUEUE_PACKETS),
        delay: Duration::from_micros((num(&["delay", "delay"])? * 1000.0) as u64),
        jitter: Duration::from_micros((num(&["delay", "jitter"])? * 1000.0) as u64),
        loss: if loss > 0.0 { LossSpec::Bernoulli { p: loss } } else { LossSpec::None },
        reorder: (num(&["reorder", "percentage"])? / 100.0).min(1.0),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RURAL: &str = r#"{"content": {
        "down": {"corruption": {"correlation": 0, "percentage": 0}, "delay": {"correlation": 0, "delay": "650", "jitter": 0},
                 "iptables_options": [], "loss": {"correlation": 0, "percentage": "2"}, "rate": "20",
                 "reorder": {"correlation": 0, "gap": 0, "percentage": 0}},
        "up": {"corruption": {"correlation": 0, "percentage": 0}, "delay": {"correlation": 0, "delay": "650", "jitter": 10},
               "loss": {"correlation": 0, "percentage": 1.5}, "rate": 18, "reorder": {"percentage": 0}}},
        "id": 6, "name": "2G - Developing Rural"}"#;

    #[test]
    fn an_atc_preset_becomes_two_link_configs() {
        let p = AtcPreset::parse(RURAL).unwrap();
        assert_eq!(p.name, "2G - Developing Rural");
        assert!(matches!(p.down.capacity, Capacity::Rate { kbps } if kbps == 20.0));
        assert!(matches!(p.up.capacity, Capacity::Rate { kbps } if kbps == 18.0));
        assert_eq!(p.down.delay, Duration::from_millis(650));
        assert_eq!(p.up.jitter, Duration::from_millis(10));
        assert_eq!(p.down.loss, LossSpec::Bernoulli { p: 0.02 });
        assert_eq!(p.up.loss, LossSpec::Bernoulli { p: 0.015 });
    }

    #[test]
    fn broken_presets_are_errors() {
        assert!(matches!(AtcPreset::parse("{"), Err(AtcError::Json(_))));
        assert!(matches!(AtcPreset::parse("{}"), Err(AtcError::Field(_))));
        let bad = RURAL.replace("\"rate\": \"20\"", "\"rate\": \"fast\"");
        assert!(matches!(AtcPreset::parse(&bad), Err(AtcError::Field(f)) if f.contains("rate")));
    }
}
