//! mahimahi packet-delivery traces: one integer per line, the millisecond at
//! which one 1504-byte delivery opportunity occurs (repeated for several in
//! one millisecond); lines never decrease; the trace loops with a period
//! equal to its last value.

/// Bytes one delivery opportunity can carry.
pub const OPPORTUNITY_BYTES: usize = 1504;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MahimahiTrace {
    /// Opportunity times in ms, non-decreasing.
    pub opportunities_ms: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceError {
    #[error("line {line}: not a millisecond count: {text:?}")]
    NotANumber { line: usize, text: String },
    #[error("line {line}: {value} ms is earlier than the line before")]
    Decreasing { line: usize, value: u64 },
    #[error("the trace has no delivery opportunities")]
    Empty,
    #[error("the trace's period is zero (every opportunity at 0 ms)")]
    ZeroPeriod,
}

impl MahimahiTrace {
    pub fn parse(text: &str) -> Result<Self, TraceError> {
        let mut opportunities_ms = Vec::new();
        let mut last = 0;
        for (i, raw) in text.lines().enumerate() {
            let t = raw.trim();
            if t.is_empty() {
                continue;
            }
            let v: u64 = t.parse().map_err(|_| TraceError::NotANumber { line: i + 1, text: t.chars().take(40).collect() })?;
            if v < last {
                return Err(TraceError::Decreasing { line: i + 1, value: v });
            }
            last = v;
            opportunities_ms.push(v);
        }
        if opportunities_ms.is_empty() {
            return Err(TraceError::Empty);
        }
        if last == 0 {
            return Err(TraceError::ZeroPeriod);
        }
        Ok(MahimahiTrace { opportunities_ms })
    }

    /// The loop period in ms (the last value).
    pub fn period_ms(&self) -> u64 {
        *self.opportunities_ms.last().expect("parse guarantees one")
    }

    /// Mean capacity in kbit/s over one period.
    pub fn mean_kbps(&self) -> f64 {
        (self.opportunities_ms.len() * OPPORTUNITY_BYTES * 8) as f64 / self.period_ms() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_parses_and_knows_its_period_and_rate() {
        let t = MahimahiTrace::parse("1\n1\n5\n\n10\n").unwrap();
        assert_eq!(t.opportunities_ms, vec![1, 1, 5, 10]);
        assert_eq!(t.period_ms(), 10);
        assert!((t.mean_kbps() - 4.0 * 1504.0 * 8.0 / 10.0).abs() < 1e-9);
    }

    #[test]
    fn bad_traces_are_errors() {
        assert_eq!(MahimahiTrace::parse(""), Err(TraceError::Empty));
        assert_eq!(MahimahiTrace::parse("0\n0\n"), Err(TraceError::ZeroPeriod));
        assert!(matches!(MahimahiTrace::parse("3\n2\n"), Err(TraceError::Decreasing { line: 2, value: 2 })));
        assert!(matches!(MahimahiTrace::parse("3\nx\n"), Err(TraceError::NotANumber { line: 2, .. })));
        assert!(matches!(MahimahiTrace::parse("-1\n"), Err(TraceError::NotANumber { .. })));
    }
}
