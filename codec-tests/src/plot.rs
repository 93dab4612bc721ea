//! The report's quality-versus-bitrate PNG (plotters, bitmap backend).

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::channel::Mode;
use crate::report::Row;

const FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// plotters' ab_glyph backend needs a font registered once.
fn ensure_font() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        FONTS.iter().any(|p| match std::fs::read(p) {
            Ok(bytes) => register_font("sans-serif", FontStyle::Normal, Box::leak(bytes.into_boxed_slice())).is_ok(),
            Err(_) => false,
        })
    })
}

const COLORS: [RGBColor; 5] = [RGBColor(0, 0, 0), RGBColor(31, 119, 180), RGBColor(44, 160, 44), RGBColor(255, 127, 14), RGBColor(214, 39, 40)];

fn e(err: impl std::fmt::Display) -> String {
    format!("plot: {err}")
}

/// Two panels (PESQ-WB, ViSQOL) of quality against on-wire kbit/s: one colour
/// per loss pattern; lines join the protected profiles, hollow circles are
/// protection off, crosses plain concealment.
pub fn plot(path: &Path, rows: &[Row]) -> Result<(), String> {
    if !ensure_font() {
        return Err("no DejaVuSans.ttf found for plot labels (apt-get install fonts-dejavu-core)".into());
    }
    let root = BitMapBackend::new(path, (1400, 620)).into_drawing_area();
    root.fill(&WHITE).map_err(e)?;
    let root = root.titled("lowband link profiles: quality vs on-wire bitrate (IPv4, while talking)", ("sans-serif", 20)).map_err(e)?;
    let panels = root.split_evenly((1, 2));
    let x_max = rows.iter().map(|r| r.wire_kbps).fold(10.0, f64::max) * 1.08;
    let mut patterns: Vec<&str> = Vec::new();
    for r in rows {
        if !patterns.contains(&r.pattern.name) {
            patterns.push(r.pattern.name);
        }
    }
    let metrics: [(&str, fn(&Row) -> Option<f64>); 2] = [("PESQ-WB (MOS-LQO)", |r| Some(r.pesq_wb)), ("ViSQOL MOS (real speech only)", |r| r.visqol)];
    for (area, (title, metric)) in panels.iter().zip(metrics) {
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(44)
            .build_cartesian_2d(0.0..x_max, 1.0..4.7)
            .map_err(e)?;
        chart.configure_mesh().x_desc("kbit/s on the wire").y_desc("MOS").draw().map_err(e)?;
        for (i, name) in patterns.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let pts = |mode: Mode| -> Vec<(f64, f64)> {
                rows.iter().filter(|r| r.pattern.name == *name && r.mode == mode).filter_map(|r| metric(r).map(|v| (r.wire_kbps, v))).collect()
            };
            let prot = pts(Mode::Protected);
            chart
                .draw_series(LineSeries::new(prot.iter().copied(), color.stroke_width(2)))
                .map_err(e)?
                .label(format!("{name}: protected"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
            chart.draw_series(prot.iter().map(|&p| Circle::new(p, 5, color.filled()))).map_err(e)?;
            chart.draw_series(pts(Mode::Unprotected).into_iter().map(|p| Circle::new(p, 5, color.stroke_width(1)))).map_err(e)?;
            chart.draw_series(pts(Mode::PlainPlc).into_iter().map(|p| Cross::new(p, 5, color.stroke_width(2)))).map_err(e)?;
        }
        // Profile names next to the clean protected points.
        let clean = patterns.first().copied().unwrap_or("");
        chart
            .draw_series(rows.iter().filter(|r| r.pattern.name == clean && r.mode == Mode::Protected).filter_map(|r| {
                metric(r).map(|v| Text::new(r.profile.clone(), (r.wire_kbps, v + 0.08), ("sans-serif", 14).into_font()))
            }))
            .map_err(e)?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(e)?;
    }
    root.present().map_err(e)?;
    Ok(())
}
