//! PNG plots of the per-second series (plotters, bitmap backend): one figure
//! per client with bitrate, loss, delay and concealment panels.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::anyhow;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::sim::Second;

const FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// plotters' ab_glyph backend needs a font registered once; DejaVu is everywhere Debian is.
fn ensure_font() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        FONTS.iter().any(|p| match std::fs::read(p) {
            Ok(bytes) => register_font("sans-serif", FontStyle::Normal, Box::leak(bytes.into_boxed_slice())).is_ok(),
            Err(_) => false,
        })
    })
}

type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

fn panel(area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>, title: &str, unit: &str, lines: &[Series<'_>], x_max: f64) -> anyhow::Result<()> {
    let y_max = lines.iter().flat_map(|l| l.2.iter().map(|p| p.1)).fold(0.0f64, f64::max).max(1.0) * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..x_max.max(1.0), 0.0..y_max)
        .map_err(|e| anyhow!("plot: {e}"))?;
    chart.configure_mesh().x_desc("call time, s").y_desc(unit).light_line_style(WHITE.mix(0.0)).draw().map_err(|e| anyhow!("plot: {e}"))?;
    for (name, color, pts) in lines {
        let color = *color;
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(|e| anyhow!("plot: {e}"))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(|e| anyhow!("plot: {e}"))?;
    Ok(())
}

/// Draws `rows` (one client's seconds) into a 1200×1000 PNG.
pub fn plot_client(path: &Path, title: &str, rows: &[&Second]) -> anyhow::Result<()> {
    if !ensure_font() {
        return Err(anyhow!("no DejaVuSans.ttf found for plot labels (apt-get install fonts-dejavu-core)"));
    }
    let root = BitMapBackend::new(path, (1200, 1000)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("plot: {e}"))?;
    let root = root.titled(title, ("sans-serif", 14)).map_err(|e| anyhow!("plot: {e}"))?;
    let areas = root.split_evenly((4, 1));
    let x_max = rows.last().map_or(1.0, |r| r.second as f64 + 1.0);
    let pts = |f: &dyn Fn(&Second) -> Option<f64>| -> Vec<(f64, f64)> { rows.iter().filter_map(|r| f(r).map(|v| (r.second as f64, v))).collect() };
    panel(&areas[0], "on-wire bitrate (audio datagrams + IP/UDP/QUIC)", "kbit/s", &[("up", BLUE, pts(&|r| Some(r.up_kbps))), ("down", RED, pts(&|r| Some(r.down_kbps)))], x_max)?;
    panel(&areas[1], "packet loss", "%", &[("up", BLUE, pts(&|r| Some(r.up_loss_pct))), ("down", RED, pts(&|r| Some(r.down_loss_pct)))], x_max)?;
    panel(
        &areas[2],
        "one-way delay, RTT (from ACKs) and jitter-buffer delay",
        "ms",
        &[
            ("up", BLUE, pts(&|r| r.up_delay_ms)),
            ("down", RED, pts(&|r| r.down_delay_ms)),
            ("RTT", BLACK, pts(&|r| r.rtt_ms)),
            ("jitter buffer", GREEN, pts(&|r| r.jitter_buffer_ms)),
        ],
        x_max,
    )?;
    panel(&areas[3], "concealment (share of played audio)", "%", &[("concealed", MAGENTA, pts(&|r| Some(r.concealed_pct)))], x_max)?;
    root.present().map_err(|e| anyhow!("plot: {e}"))?;
    Ok(())
}
